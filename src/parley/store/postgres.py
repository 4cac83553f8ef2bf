"""The production store: PostgreSQL through asyncpg, safe with several nodes on one database.

Writes: one dedicated writer connection per process and a queue of operations. A writer task
drains what is queued and runs the batch in ONE transaction, then commits once and only then
resolves the callers' futures (group commit): a success answer means "committed", and a burst
of N sends costs one commit, not N. An operation that raises changes nothing and its neighbours
still commit: the batch runs without savepoints (they cost a round trip each), and when one
fails it is rolled back and replayed with a savepoint around that one (see `_run_batch`).

Round trips are what an operation costs here (each is a wait on the one writer connection while
it holds the clock row, below), so the hot path, `append_event`, is a single statement.

Reads: a small connection pool, so they never wait behind the writer. A read that follows an
awaited write sees it, because the write's answer is only given after its commit.

The clock and write lock (`parley_clock`, one row): every write transaction starts with
`SELECT ... FROM parley_clock FOR UPDATE` (sent with its BEGIN). That row lock is held until
COMMIT, so the writers of all nodes (and `parley admin`) run one at a time, like SQLite's single
writer:

- `order` values: while the batch holds the row, stamps are handed out in memory as
  max(now_us, last + 1) and the last one is written back just before COMMIT. The row's `last`
  is read when the batch first needs a stamp (`append_event` reads it inside its own statement). No other
  transaction can read or move the clock meanwhile, so stamps are strictly increasing across
  every chat and node, and they grow in commit order (a reader that has seen order N has seen
  every committed order below N: what resume-after-reconnect needs). `created_at` is the same
  stamp, assigned in the same serialised step (SPEC §12). Node clock skew cannot break this:
  `last + 1` wins over a clock that is behind.
- No deadlocks: the clock row is always the first lock a write transaction takes, so two
  writers never hold rows the other one waits for. Check-then-act steps (the active-chat limit,
  custom_id look-ups, group ids = max + 1) are race-free for the same reason.
- Stamps taken by an operation that then fails are simply skipped (gaps are allowed).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import asyncpg
import orjson

from parley import ids
from parley.protocol.errors import ApiError, ErrorType, not_found, validation
from parley.store import migrations
from parley.store.base import ChatCheck, ChatExport, PropsChange, Store
from parley.store.common import (
    agent_groups,
    apply_customer_changes,
    assign_thread,
    members_change,
    merge_properties,
    rescope,
    searchable,
    set_members,
    settle,
    system_event,
)
from parley.store.records import (
    Agent,
    Appended,
    Chat,
    Customer,
    License,
    MembersChange,
    NewEvent,
    ScopesChange,
    Started,
    StoredEvent,
    StoredFile,
    Thread,
)

log = logging.getLogger("parley.store")

R = TypeVar("R")
Conn = asyncpg.Connection
Op = Callable[..., Awaitable[Any]]
Row = asyncpg.Record
Item = tuple[Op, tuple, asyncio.Future]
Outcome = tuple[asyncio.Future, Any, BaseException | None]

# In a replayed batch each guarded operation that writes gets a subtransaction id from its
# savepoint. Past 64 of them in one transaction PostgreSQL's per-backend subxid cache overflows
# and every other session's snapshot checks get slower (pg_subtrans lookups) while the batch
# runs: stay under it. A batch of 64 still spreads one commit over 64 operations.
_BATCH_MAX = 64
# Any fixed 64-bit number: the session lock that lets one node at a time run migrations.
_MIGRATION_LOCK = 0x7061726C6579  # "parley"
_PING_TIMEOUT = 5.0

_CHAT_COLS = "id, license_id, customer_id, ord, scopes, properties, active_thread_id, agent_ids, threads_count"
_THREAD_COLS = (
    "id, chat_id, ord, active, user_ids, properties, events_count, agent_id, queued_at, closed_at, notes_count"
)
_EVENT_COLS = "id, chat_id, thread_id, ord, type, author_id, recipients, custom_id, body"
_AGENT_COLS = "id, license_id, email, name, password_hash, groups, routing_status, max_chats, avatar, last_seen"
_CUSTOMER_COLS = "id, license_id, name, email, monitoring, properties, last_seen, created_at, banned_until"
_NCHAT = _CHAT_COLS.count(",") + 1  # where the thread's columns start in a chat + thread row
_NTHREAD = _THREAD_COLS.count(",") + 1
_APPEND_DUP = _NCHAT + _NTHREAD  # where the duplicate event's columns start in an _APPEND row
_BEGIN = "BEGIN; SELECT 1 FROM parley_clock FOR UPDATE"

# append_event's common case in one round trip. $1 chat, $2 licence, $3 author, $4 custom_id,
# $5 proposed order stamp, $6 type, $7 recipients, $8 body. One row (none: no such chat in the
# licence): the chat; the thread (the active one, counters already moved, or the duplicate's,
# else NULLs); the duplicate event with this custom_id (else NULLs); the order stamp, which is
# $5 or the clock row's last + 1 if greater. The writes happen only when the chat has an active
# thread and the custom_id is new: the thread's counters move, the event, whose id is
# `<thread id>_<new events_count>`, goes in, and the chat's last_activity moves. Every part sees
# the statement's snapshot, so `dup` cannot see this statement's own insert.
_APPEND = (
    "WITH s AS (SELECT greatest($5::bigint, last + 1) AS ord FROM parley_clock),"
    f" c AS (SELECT {_CHAT_COLS} FROM chats WHERE id = $1 AND license_id = $2),"
    f" dup AS (SELECT {_EVENT_COLS} FROM events WHERE $4::text IS NOT NULL AND chat_id = $1"
    "  AND author_id IS NOT DISTINCT FROM $3::text AND custom_id = $4::text LIMIT 1),"
    " t AS (UPDATE threads SET events_count = events_count + 1,"
    "  notes_count = notes_count + CASE WHEN $7::text = 'agents' THEN 1 ELSE 0 END"
    f"  WHERE id = (SELECT active_thread_id FROM c) AND NOT EXISTS (SELECT 1 FROM dup) RETURNING {_THREAD_COLS}),"
    f" e AS (INSERT INTO events ({_EVENT_COLS}, license_id)"
    "  SELECT t.id || '_' || t.events_count, $1, t.id, s.ord, $6, $3, $7, $4, $8, $2 FROM t, s),"
    " a AS (UPDATE chats SET last_activity = (SELECT ord FROM s) WHERE id = $1 AND EXISTS (SELECT 1 FROM t)),"
    f" th AS (SELECT * FROM t UNION ALL SELECT {_THREAD_COLS} FROM threads WHERE id = (SELECT thread_id FROM dup))"
    " SELECT c.*, th.*, dup.*, s.ord FROM c CROSS JOIN s LEFT JOIN th ON true LEFT JOIN dup ON true"
)


def _cols(cols: str, alias: str) -> str:
    return ", ".join(f"{alias}.{col.strip()}" for col in cols.split(","))


def _chat(row: Row, at: int = 0) -> Chat:
    return Chat(
        id=row[at],
        license_id=row[at + 1],
        customer_id=row[at + 2],
        order=row[at + 3],
        scopes=list(row[at + 4]),
        properties=row[at + 5],
        active_thread_id=row[at + 6],
        agent_ids=list(row[at + 7]),
        threads_count=row[at + 8],
    )


def _thread(row: Row, at: int = 0) -> Thread:
    return Thread(
        id=row[at],
        chat_id=row[at + 1],
        order=row[at + 2],
        active=row[at + 3],
        user_ids=list(row[at + 4]),
        properties=row[at + 5],
        events_count=row[at + 6],
        agent_id=row[at + 7],
        queued=row[at + 8] is not None,
        closed_at=row[at + 9],
        notes_count=row[at + 10],
    )


def _event(row: Row) -> StoredEvent:
    return StoredEvent(*row)


def _agent(row: Row) -> Agent:
    return Agent(
        id=row[0],
        license_id=row[1],
        email=row[2],
        name=row[3],
        password_hash=row[4],
        groups=list(row[5]),
        routing_status=row[6],
        max_chats=row[7],
        avatar=row[8],
        last_seen_timestamp=row[9],
    )


def _customer(row: Row) -> Customer:
    return Customer(
        id=row[0],
        license_id=row[1],
        name=row[2],
        email=row[3],
        monitoring=row[4],
        properties=row[5],
        last_seen_timestamp=row[6],
        created_at=row[7],
        banned_until=row[8],
    )


# jsonb in binary format is a version byte (1) followed by the JSON text: orjson both ways, and
# no text round trip through asyncpg's default str codec.
def _jsonb_encode(value: Any) -> bytes:
    return b"\x01" + orjson.dumps(value)


def _jsonb_decode(data: bytes) -> Any:
    return orjson.loads(data[1:])


async def _setup_connection(conn: Conn) -> None:
    await conn.set_type_codec(
        "jsonb", schema="pg_catalog", encoder=_jsonb_encode, decoder=_jsonb_decode, format="binary"
    )


class DatabaseUnavailable(ConnectionError):
    """The database named by --database-url does not answer (or refuses us). An OSError, so
    `parley admin` prints it as its one-line error."""


def describe(dsn: str) -> str:
    """The database URL without its password, for error messages and logs."""
    try:
        parts = urlsplit(dsn)
        host = parts.hostname or "localhost"
        port = f":{parts.port}" if parts.port else ""
        user = f"{parts.username}@" if parts.username else ""
        return f"{parts.scheme}://{user}{host}{port}{parts.path}"
    except ValueError:
        return "the PostgreSQL database"


def _duplicate(exc: asyncpg.UniqueViolationError, new: NewEvent) -> Exception:
    """An event insert that broke a unique index: a custom_id used twice is the caller's error."""
    if exc.constraint_name == "events_by_custom_id":
        return validation(f"`custom_id` {new.custom_id!r} is used twice")
    return exc


def _translate(exc: Exception) -> Exception:
    """PostgreSQL cannot hold NUL characters in text or jsonb (SQLite can): say so as a
    validation error rather than an internal one."""
    if isinstance(exc, asyncpg.UntranslatableCharacterError | asyncpg.CharacterNotInRepertoireError):
        return validation("text must not contain NUL characters (\\u0000)")
    return exc


class PostgresStore(Store):
    def __init__(self, dsn: str, *, pool_size: int = 4, connect_wait: float = 10.0) -> None:
        """connect_wait: how long open() keeps retrying an unreachable database before it gives
        up (a node and its database often start together)."""
        self.dsn = dsn
        self.pool_size = pool_size
        self.connect_wait = connect_wait
        self._queue: asyncio.Queue[Item | None] = asyncio.Queue()
        self._writer: Conn | None = None
        self._pool: asyncpg.Pool | None = None
        self._task: asyncio.Task[None] | None = None
        # The clock while a batch holds parley_clock (see the module docstring); None until the
        # batch has read the row.
        self._last: int | None = None
        self._in_batch = False
        self._closing = False

    # -- connections -------------------------------------------------------------------

    async def _connect(self) -> Conn:
        """The writer connection. A node that freezes mid-batch (stopped, swapping) would hold
        the clock row and stall every node's writes: the server ends such a session after 30 s
        idle in a transaction, which our own writer never is (it only waits on the server)."""
        settings = {"application_name": "parley", "idle_in_transaction_session_timeout": "30000"}
        try:
            conn = await asyncpg.connect(self.dsn, timeout=5, server_settings=settings, command_timeout=None)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise DatabaseUnavailable(f"cannot connect to the database {describe(self.dsn)}: {exc}") from exc
        await _setup_connection(conn)
        return conn

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.connect_wait
        delay = 0.2
        while True:
            try:
                self._writer = await self._connect()
                break
            except DatabaseUnavailable as exc:
                # A wrong database name, user or password will not fix itself: fail at once.
                fatal = isinstance(
                    exc.__cause__, asyncpg.InvalidCatalogNameError | asyncpg.InvalidAuthorizationSpecificationError
                )
                if fatal or loop.time() + delay > deadline:
                    raise
                log.warning("database not reachable yet, retrying", extra={"database": describe(self.dsn)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        try:
            await self._migrate(self._writer)
            self._pool = await asyncpg.create_pool(
                self.dsn,
                min_size=1,
                max_size=self.pool_size,
                init=_setup_connection,
                server_settings={"application_name": "parley"},
            )
        except BaseException:
            await self._writer.close()
            self._writer = None
            raise
        self._closing = False
        self._task = loop.create_task(self._write_loop(), name="parley-postgres-writer")

    async def close(self) -> None:
        self._closing = True  # nothing may queue behind the stop sentinel: it would never run
        if self._task is not None:
            self._queue.put_nowait(None)
            await self._task
            self._task = None
        if self._writer is not None:
            await self._writer.close()
            self._writer = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def _migrate(self, conn: Conn) -> None:
        """Apply pending migrations, one transaction each, while holding a session advisory
        lock: nodes starting together wait for each other instead of racing on CREATE TABLE."""
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
        try:
            await conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text)")
            applied = {r[0] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            for version, name, statements in migrations.pending("postgres", applied):
                async with conn.transaction():
                    for statement in statements:
                        await conn.execute(statement)
                    await conn.execute("INSERT INTO schema_migrations VALUES ($1, $2)", version, name)
                log.info("migration applied", extra={"version": version, "migration": name})
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)

    @property
    def pool(self) -> asyncpg.Pool:
        assert self._pool is not None, "store is not open"
        return self._pool

    # -- the writer --------------------------------------------------------------------

    async def _call(self, fn: Callable[..., Awaitable[R]], *args: Any) -> R:
        if self._task is None or self._task.done() or self._closing:
            raise RuntimeError("store is not open")
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((fn, args, fut))
        return await fut

    async def _write_loop(self) -> None:
        while True:
            item = await self._queue.get()
            if item is None:
                return
            batch = [item]
            stop = False
            while len(batch) < _BATCH_MAX and not self._queue.empty():
                nxt = self._queue.get_nowait()
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            await self._run_batch(batch)
            if stop:
                return

    async def _begin(self) -> Conn:
        """BEGIN on the writer connection, with the clock row's lock in the same round trip. A
        connection the database dropped while we were idle (restart, failover, idle timeout) is
        only noticed here: nothing of the batch has run yet, so reconnecting and beginning again
        is safe."""
        if self._writer is not None and not self._writer.is_closed():
            try:
                await self._writer.execute(_BEGIN)
                return self._writer
            except (
                OSError,
                asyncpg.InterfaceError,
                asyncpg.PostgresConnectionError,
                asyncpg.AdminShutdownError,
            ) as exc:
                log.warning("writer connection lost, reconnecting", extra={"error": repr(exc)})
                self._writer.terminate()
        self._writer = await self._connect()
        await self._writer.execute(_BEGIN)
        return self._writer

    async def _run_batch(self, batch: list[Item]) -> None:
        # A caller that gave up (cancelled) never learns the outcome: skip its operation.
        pending = [item for item in batch if not item[2].cancelled()]
        outcomes: list[Outcome] = []
        # A savepoint costs a round trip per operation, and operations rarely fail, so a batch
        # first runs without any. When an unguarded operation fails, the transaction is rolled
        # back (undoing whatever it wrote) and the batch runs again with a savepoint around that
        # one, so that next time only it is undone. Each retry guards one more operation, so this
        # ends. The first operation needs no replay: it failed against committed data alone, so
        # its error stands as the answer, and only the rest run again.
        guarded: set[asyncio.Future] = set()
        while pending:
            result = await self._attempt(pending, guarded)
            if isinstance(result, list):
                outcomes.extend(result)
                break
            index, error = result
            if index == 0:
                outcomes.append((pending[0][2], None, error))
                pending = pending[1:]
            else:
                guarded.add(pending[index][2])
        settle(outcomes)

    async def _attempt(self, batch: list[Item], guarded: set[asyncio.Future]) -> list[Outcome] | tuple[int, Exception]:
        """Run batch in one transaction and commit it; the outcome of each operation, or
        (index, error) when an operation without a savepoint failed (and all was rolled back)."""
        outcomes: list[Outcome] = []
        conn: Conn | None = None
        try:
            self._last = None
            conn = await self._begin()
            self._in_batch = True
            release = False  # a guarded operation succeeded: its savepoint goes with the next one
            for index, (fn, args, fut) in enumerate(batch):
                if fut in guarded:
                    await conn.execute("RELEASE SAVEPOINT op; SAVEPOINT op" if release else "SAVEPOINT op")
                try:
                    result = await fn(conn, *args)
                except Exception as exc:
                    if fut not in guarded:
                        await conn.execute("ROLLBACK")
                        return index, _translate(exc)
                    await conn.execute("ROLLBACK TO SAVEPOINT op; RELEASE SAVEPOINT op")
                    release = False
                    outcomes.append((fut, None, _translate(exc)))
                else:
                    release = fut in guarded
                    outcomes.append((fut, result, None))
            finish = [] if self._last is None else [f"UPDATE parley_clock SET last = {int(self._last)}"]
            await conn.execute("; ".join([*finish, "COMMIT"]))
        except Exception as exc:
            log.warning("write batch failed", extra={"error": repr(exc), "ops": len(batch)})
            await self._abandon(conn)
            return [(fut, None, exc) for _, _, fut in batch]
        finally:
            self._in_batch = False
        return outcomes

    async def _abandon(self, conn: Conn | None) -> None:
        """Roll back a failed batch; a connection that cannot even do that is dropped."""
        if conn is None or conn.is_closed():
            return
        try:
            if conn.is_in_transaction():
                await conn.execute("ROLLBACK")
        except Exception:
            conn.terminate()

    async def _next(self, c: Conn) -> int:
        """The next order stamp (microseconds); only inside a write batch, which holds the clock."""
        assert self._in_batch, "order stamps are handed out inside a write batch only"
        if self._last is None:
            self._last = int(await c.fetchval("SELECT last FROM parley_clock"))
        stamp = max(ids.now_us(), self._last + 1)
        self._last = stamp
        return stamp

    # -- small things ------------------------------------------------------------------

    async def ping(self) -> None:
        # After a database restart the pool still holds connections the server dropped; the
        # first use of one fails, so one more try (on a fresh connection) tells the truth.
        for attempt in (1, 2):
            try:
                async with self.pool.acquire(timeout=_PING_TIMEOUT) as conn:
                    await conn.fetchval("SELECT 1", timeout=_PING_TIMEOUT)
                return
            except (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError, asyncpg.AdminShutdownError):
                if attempt == 2:
                    raise

    async def meta(self, key: str, default: Callable[[], str]) -> str:
        # Several nodes may start at once: the first INSERT wins, everyone reads the winner.
        async with self.pool.acquire() as c:
            value = await c.fetchval("SELECT value FROM meta WHERE key = $1", key)
            if value is None:
                await c.execute("INSERT INTO meta VALUES ($1, $2) ON CONFLICT (key) DO NOTHING", key, default())
                value = await c.fetchval("SELECT value FROM meta WHERE key = $1", key)
            return str(value)

    async def create_license(self, name: str) -> License:
        async def op(c: Conn) -> License:
            org = ids.user_id()
            license_id = await c.fetchval(
                "WITH l AS (INSERT INTO licenses (name, organization_id, created_at) VALUES ($1, $2, $3) RETURNING id),"
                " g AS (INSERT INTO groups SELECT id, 0, 'General' FROM l) SELECT id FROM l",
                name,
                org,
                ids.now_us(),
            )
            return License(id=int(license_id), name=name, organization_id=org)

        return await self._call(op)

    async def get_license(self, license_id: int) -> License | None:
        return await self._license_where("id", license_id)

    async def get_license_by_org(self, organization_id: str) -> License | None:
        return await self._license_where("organization_id", organization_id)

    async def update_license_settings(self, license_id: int, changes: dict[str, Any]) -> License:
        async def op(c: Conn) -> License:
            row = await c.fetchrow(
                "UPDATE licenses SET settings = settings || $1::jsonb WHERE id = $2"
                " RETURNING id, name, organization_id, settings",
                changes,
                license_id,
            )
            if row is None:
                raise ApiError(ErrorType.LICENSE_NOT_FOUND, f"licence {license_id} does not exist")
            return License(row[0], row[1], row[2], row[3])

        return await self._call(op)

    async def _license_where(self, column: str, value: Any) -> License | None:
        row = await self.pool.fetchrow(
            f"SELECT id, name, organization_id, settings FROM licenses WHERE {column} = $1", value
        )
        return License(row[0], row[1], row[2], row[3]) if row else None

    async def create_group(self, license_id: int, name: str, group_id: int | None = None) -> int:
        async def op(c: Conn) -> int:
            gid = group_id
            if gid is None:
                gid = await c.fetchval("SELECT coalesce(max(id), 0) + 1 FROM groups WHERE license_id = $1", license_id)
            await c.execute("INSERT INTO groups VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", license_id, gid, name)
            return int(gid)

        return await self._call(op)

    async def group_ids(self, license_id: int) -> set[int]:
        return await self._group_ids(self.pool, license_id)

    @staticmethod
    async def _group_ids(c: Conn | asyncpg.Pool, license_id: int) -> set[int]:
        return {r[0] for r in await c.fetch("SELECT id FROM groups WHERE license_id = $1", license_id)}

    async def create_agent(
        self, license_id: int, email: str, name: str, password_hash: str, groups: list[int], max_chats: int | None
    ) -> Agent:
        async def op(c: Conn) -> Agent:
            all_groups = agent_groups(groups, await self._group_ids(c, license_id))
            if await c.fetchval("SELECT 1 FROM agents WHERE license_id = $1 AND email = $2", license_id, email):
                raise validation(f"an agent with email {email} already exists")
            agent = Agent(ids.user_id(), license_id, email, name, password_hash, all_groups, max_chats=max_chats)
            await c.execute(
                "INSERT INTO agents (id, license_id, email, name, password_hash, groups, routing_status, max_chats,"
                " created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                agent.id,
                license_id,
                email,
                name,
                password_hash,
                all_groups,
                agent.routing_status,
                max_chats,
                ids.now_us(),
            )
            return agent

        return await self._call(op)

    async def list_agents(self, license_id: int) -> list[Agent]:
        rows = await self.pool.fetch(
            f"SELECT {_AGENT_COLS} FROM agents WHERE license_id = $1 ORDER BY email", license_id
        )
        return [_agent(r) for r in rows]

    async def get_agent_by_email(self, license_id: int, email: str) -> Agent | None:
        row = await self.pool.fetchrow(
            f"SELECT {_AGENT_COLS} FROM agents WHERE license_id = $1 AND email = $2", license_id, email
        )
        return _agent(row) if row else None

    async def get_agents(self, license_id: int, agent_ids: list[str]) -> list[Agent]:
        if not agent_ids:
            return []
        rows = await self.pool.fetch(
            f"SELECT {_AGENT_COLS} FROM agents WHERE license_id = $1 AND id = ANY($2::text[])", license_id, agent_ids
        )
        by_id = {a.id: a for a in map(_agent, rows)}
        return [by_id[i] for i in agent_ids if i in by_id]

    async def set_routing_status(self, license_id: int, agent_id: str, status: str) -> None:
        async def op(c: Conn) -> None:
            await c.execute(
                "UPDATE agents SET routing_status = $1 WHERE license_id = $2 AND id = $3", status, license_id, agent_id
            )

        await self._call(op)

    async def create_customer(self, license_id: int) -> Customer:
        async def op(c: Conn) -> Customer:
            customer = Customer(id=ids.user_id(), license_id=license_id, created_at=ids.now_us())
            await c.execute(
                "INSERT INTO customers (id, license_id, created_at) VALUES ($1, $2, $3)",
                customer.id,
                license_id,
                customer.created_at,
            )
            return customer

        return await self._call(op)

    async def get_customer(self, license_id: int, customer_id: str) -> Customer | None:
        found = await self._customers(self.pool, license_id, [customer_id])
        return found[0] if found else None

    async def get_customers(self, license_id: int, customer_ids: list[str]) -> list[Customer]:
        return await self._customers(self.pool, license_id, customer_ids)

    @staticmethod
    async def _customers(c: Conn | asyncpg.Pool, license_id: int, customer_ids: list[str]) -> list[Customer]:
        if not customer_ids:
            return []
        rows = await c.fetch(
            f"SELECT {_CUSTOMER_COLS} FROM customers WHERE license_id = $1 AND id = ANY($2::text[])",
            license_id,
            customer_ids,
        )
        return [_customer(r) for r in rows]

    async def update_customer(self, license_id: int, customer_id: str, changes: dict[str, Any]) -> Customer:
        async def op(c: Conn) -> Customer:
            found = await self._customers(c, license_id, [customer_id])
            if not found:
                raise not_found("customer")
            cur = found[0]
            apply_customer_changes(cur, changes)
            await c.execute(
                "UPDATE customers SET name = $1, email = $2, monitoring = $3, properties = $4 WHERE id = $5",
                cur.name,
                cur.email,
                cur.monitoring,
                cur.properties,
                customer_id,
            )
            return cur

        return await self._call(op)

    async def ban_customer(self, license_id: int, customer_id: str, until: int) -> None:
        async def op(c: Conn) -> None:
            status = await c.execute(
                "UPDATE customers SET banned_until = $1 WHERE license_id = $2 AND id = $3",
                until,
                license_id,
                customer_id,
            )
            if status.endswith(" 0"):
                raise not_found("customer")

        await self._call(op)

    async def set_last_seen(self, license_id: int, user_id: str, chat_id: str | None, timestamp: int) -> int:
        async def op(c: Conn) -> int:
            stored = await c.fetchval(
                "INSERT INTO last_seen VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, chat_id)"
                " DO UPDATE SET ts = greatest(last_seen.ts, excluded.ts) RETURNING ts",
                user_id,
                chat_id or "",
                license_id,
                timestamp,
            )
            if chat_id is None:
                await c.execute(
                    "WITH cu AS (UPDATE customers SET last_seen = $1 WHERE id = $2)"
                    " UPDATE agents SET last_seen = $1 WHERE id = $2",
                    stored,
                    user_id,
                )
            return int(stored)

        return await self._call(op)

    async def chat_last_seen(self, license_id: int, chat_id: str) -> dict[str, int]:
        rows = await self.pool.fetch(
            "SELECT user_id, ts FROM last_seen WHERE chat_id = $1 AND license_id = $2", chat_id, license_id
        )
        return {r[0]: r[1] for r in rows}

    # -- chats -------------------------------------------------------------------------

    @staticmethod
    async def _load_chat(c: Conn | asyncpg.Pool, license_id: int, chat_id: str) -> Chat | None:
        row = await c.fetchrow(f"SELECT {_CHAT_COLS} FROM chats WHERE id = $1 AND license_id = $2", chat_id, license_id)
        return _chat(row) if row else None

    async def _checked_chat(self, c: Conn, license_id: int, chat_id: str, check: ChatCheck) -> Chat:
        chat = await self._load_chat(c, license_id, chat_id)
        if chat is None:
            raise not_found("chat")
        check(chat)
        return chat

    @staticmethod
    async def _load_thread_row(c: Conn, thread_id: str) -> Row:
        row = await c.fetchrow(f"SELECT {_THREAD_COLS} FROM threads WHERE id = $1", thread_id)
        assert row is not None, f"thread {thread_id} is missing"
        return row

    async def _load_thread(self, c: Conn, thread_id: str) -> Thread:
        return _thread(await self._load_thread_row(c, thread_id))

    @staticmethod
    async def _check_active_limit(c: Conn, license_id: int, customer_id: str, limit: int) -> None:
        active = await c.fetchval(
            "SELECT count(*) FROM chats WHERE license_id = $1 AND customer_id = $2 AND active_thread_id IS NOT NULL",
            license_id,
            customer_id,
        )
        if active >= limit:
            raise ApiError(ErrorType.LIMIT_REACHED, f"a customer may have at most {limit} active chats")

    async def _open_thread(self, c: Conn, chat: Chat, properties: dict[str, Any]) -> Thread:
        thread = Thread(
            id=ids.short_id(),
            chat_id=chat.id,
            order=await self._next(c),
            active=True,
            user_ids=[chat.customer_id],
            properties=properties,
            queued=True,
        )
        chat.order = thread.order
        chat.active_thread_id = thread.id
        chat.threads_count += 1
        chat.agent_ids = []
        # A new thread waits in the queue from the moment it opens (queued_at = its order).
        await c.execute(
            "WITH t AS (INSERT INTO threads (id, chat_id, license_id, ord, active, user_ids, properties, queued_at)"
            " VALUES ($1, $2, $3, $4, true, $5, $6, $4))"
            " UPDATE chats SET ord = $4, active_thread_id = $1, threads_count = $7, last_activity = $4,"
            " agent_ids = '{}' WHERE id = $2",
            thread.id,
            chat.id,
            chat.license_id,
            thread.order,
            thread.user_ids,
            properties,
            chat.threads_count,
        )
        return thread

    async def _insert_event(self, c: Conn, chat: Chat, thread: Thread, new: NewEvent) -> StoredEvent:
        thread.events_count += 1
        if new.recipients == "agents":
            thread.notes_count += 1
        event = StoredEvent(
            id=f"{thread.id}_{thread.events_count}",
            chat_id=chat.id,
            thread_id=thread.id,
            order=await self._next(c),
            type=new.type,
            author_id=new.author_id,
            recipients=new.recipients,
            custom_id=new.custom_id,
            body=new.body,
        )
        try:
            # One round trip: the event, the thread's count and the chat's activity together.
            await c.execute(
                f"WITH e AS (INSERT INTO events ({_EVENT_COLS}, license_id)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)),"
                " t AS (UPDATE threads SET events_count = $11, notes_count = $12 WHERE id = $3)"
                " UPDATE chats SET last_activity = $4 WHERE id = $2",
                event.id,
                chat.id,
                thread.id,
                event.order,
                event.type,
                event.author_id,
                event.recipients,
                event.custom_id,
                event.body,
                chat.license_id,
                thread.events_count,
                thread.notes_count,
            )
        except asyncpg.UniqueViolationError as exc:
            raise _duplicate(exc, new) from None
        return event

    async def start_chat(
        self,
        license_id: int,
        customer_id: str,
        scopes: list[int],
        properties: dict[str, Any],
        thread_properties: dict[str, Any],
        events: list[NewEvent],
        active_limit: int,
    ) -> Started:
        async def op(c: Conn) -> Started:
            await self._check_active_limit(c, license_id, customer_id, active_limit)
            chat = Chat(
                id=ids.short_id(),
                license_id=license_id,
                customer_id=customer_id,
                order=0,
                scopes=scopes,
                properties=properties,
                active_thread_id=None,
            )
            now = ids.now_us()
            await c.execute(
                "INSERT INTO chats (id, license_id, customer_id, ord, scopes, properties, created_at, last_activity)"
                " VALUES ($1, $2, $3, 0, $4, $5, $6, $6)",
                chat.id,
                license_id,
                customer_id,
                scopes,
                properties,
                now,
            )
            thread = await self._open_thread(c, chat, thread_properties)
            stored = [await self._insert_event(c, chat, thread, e) for e in events]
            return Started(chat, thread, stored)

        return await self._call(op)

    async def append_event(
        self, license_id: int, chat_id: str, event: NewEvent, check: ChatCheck, active_limit: int
    ) -> Appended:
        async def op(c: Conn) -> Appended:
            # The hot path, in one statement: it writes before check() has seen the chat. A
            # refusal raises all the same, and the batch runner rolls the write back. The stamp
            # is _next()'s, computed in the statement when the batch has not read the clock yet.
            proposed = ids.now_us() if self._last is None else max(ids.now_us(), self._last + 1)
            try:
                row = await c.fetchrow(
                    _APPEND,
                    chat_id,
                    license_id,
                    event.author_id,
                    event.custom_id,
                    proposed,
                    event.type,
                    event.recipients,
                    event.body,
                )
            except asyncpg.UniqueViolationError as exc:
                raise _duplicate(exc, event) from None
            if row is None:
                raise not_found("chat")
            stamp = self._last = row[-1]
            chat = _chat(row)
            check(chat)
            if row[_APPEND_DUP] is not None:
                return Appended(chat, _thread(row, _NCHAT), _event(row[_APPEND_DUP:-1]), False, True)
            if row[_NCHAT] is not None:
                thread = _thread(row, _NCHAT)
                stored = StoredEvent(
                    f"{thread.id}_{thread.events_count}",
                    chat_id,
                    thread.id,
                    stamp,
                    event.type,
                    event.author_id,
                    event.recipients,
                    event.custom_id,
                    event.body,
                )
                return Appended(chat, thread, stored, False, False)
            # No active thread (and no duplicate): the statement wrote nothing, so open one.
            await self._check_active_limit(c, license_id, chat.customer_id, active_limit)
            thread = await self._open_thread(c, chat, {})
            return Appended(chat, thread, await self._insert_event(c, chat, thread, event), True, False)

        return await self._call(op)

    async def close_thread(self, license_id: int, chat_id: str, thread_id: str | None, check: ChatCheck) -> Thread:
        async def op(c: Conn) -> Thread:
            chat = await self._checked_chat(c, license_id, chat_id, check)
            if thread_id is not None and thread_id != chat.active_thread_id:
                if not await c.fetchval("SELECT 1 FROM threads WHERE id = $1 AND chat_id = $2", thread_id, chat_id):
                    raise not_found("thread")
                raise ApiError(ErrorType.CHAT_INACTIVE, f"thread {thread_id} is not active")
            if chat.active_thread_id is None:
                raise ApiError(ErrorType.CHAT_INACTIVE, "the chat has no active thread")
            thread = await self._load_thread(c, chat.active_thread_id)
            thread.active = False
            thread.queued = False
            thread.closed_at = await self._next(c)
            await c.execute(
                "WITH t AS (UPDATE threads SET active = false, closed_at = $1, queued_at = NULL WHERE id = $2)"
                " UPDATE chats SET active_thread_id = NULL, last_activity = $1 WHERE id = $3",
                thread.closed_at,
                thread.id,
                chat_id,
            )
            # Archives search closed threads only, so indexing waits until now: off the send path.
            events = (await self._thread_events(c, license_id, [thread.id]))[thread.id]
            texts = [text for text in map(searchable, events) if text]
            if texts:
                await c.execute(
                    "INSERT INTO events_fts SELECT $1, $2, $3, to_tsvector('simple', x) FROM unnest($4::text[]) x",
                    license_id,
                    chat_id,
                    thread.id,
                    texts,
                )
            return thread

        return await self._call(op)

    async def update_chat_scopes(
        self, license_id: int, chat_id: str, add: list[int], remove: list[int], check: ChatCheck
    ) -> ScopesChange:
        async def op(c: Conn) -> ScopesChange:
            chat = await self._checked_chat(c, license_id, chat_id, check)
            change = rescope(chat, add, remove, await self._group_ids(c, license_id))
            await c.execute("UPDATE chats SET scopes = $1 WHERE id = $2", chat.scopes, chat_id)
            return change

        return await self._call(op)

    async def update_chat_properties(
        self, license_id: int, chat_id: str, properties: dict[str, Any], check: ChatCheck
    ) -> PropsChange:
        async def op(c: Conn) -> PropsChange:
            chat = await self._checked_chat(c, license_id, chat_id, check)
            chat.properties, changed = merge_properties(chat.properties, properties)
            await c.execute("UPDATE chats SET properties = $1 WHERE id = $2", chat.properties, chat_id)
            return chat, changed

        return await self._call(op)

    async def update_thread_properties(
        self, license_id: int, chat_id: str, thread_id: str, properties: dict[str, Any], check: ChatCheck
    ) -> PropsChange:
        async def op(c: Conn) -> PropsChange:
            chat = await self._checked_chat(c, license_id, chat_id, check)
            current = await c.fetchval(
                "SELECT properties FROM threads WHERE id = $1 AND chat_id = $2", thread_id, chat_id
            )
            if current is None:
                raise not_found("thread")
            merged, changed = merge_properties(current, properties)
            await c.execute("UPDATE threads SET properties = $1 WHERE id = $2", merged, thread_id)
            return chat, changed

        return await self._call(op)

    async def get_chat(self, license_id: int, chat_id: str) -> Chat | None:
        return await self._load_chat(self.pool, license_id, chat_id)

    async def list_customer_chats(
        self, license_id: int, customer_id: str, offset: int, limit: int
    ) -> tuple[list[Chat], int]:
        async with self.pool.acquire() as c:
            total = await c.fetchval(
                "SELECT count(*) FROM chats WHERE license_id = $1 AND customer_id = $2", license_id, customer_id
            )
            rows = await c.fetch(
                f"SELECT {_CHAT_COLS} FROM chats WHERE license_id = $1 AND customer_id = $2"
                " ORDER BY ord DESC LIMIT $3 OFFSET $4",
                license_id,
                customer_id,
                limit,
                offset,
            )
        return [_chat(r) for r in rows], int(total)

    async def active_chats(self, license_id: int, customer_id: str) -> list[Chat]:
        rows = await self.pool.fetch(
            f"SELECT {_CHAT_COLS} FROM chats WHERE license_id = $1 AND customer_id = $2"
            " AND active_thread_id IS NOT NULL ORDER BY ord DESC",
            license_id,
            customer_id,
        )
        return [_chat(r) for r in rows]

    async def get_threads(self, license_id: int, chat_id: str, thread_ids: list[str]) -> list[Thread]:
        rows = await self.pool.fetch(
            f"SELECT {_THREAD_COLS} FROM threads WHERE chat_id = $1 AND license_id = $2 AND id = ANY($3::text[])"
            " ORDER BY ord",
            chat_id,
            license_id,
            thread_ids,
        )
        return [_thread(r) for r in rows]

    async def list_threads(
        self, license_id: int, chat_id: str, offset: int, limit: int, newest_first: bool
    ) -> tuple[list[Thread], int]:
        direction = "DESC" if newest_first else "ASC"
        async with self.pool.acquire() as c:
            total = await c.fetchval(
                "SELECT count(*) FROM threads WHERE chat_id = $1 AND license_id = $2", chat_id, license_id
            )
            rows = await c.fetch(
                f"SELECT {_THREAD_COLS} FROM threads WHERE chat_id = $1 AND license_id = $2"
                f" ORDER BY ord {direction} LIMIT $3 OFFSET $4",
                chat_id,
                license_id,
                limit,
                offset,
            )
        return [_thread(r) for r in rows], int(total)

    async def thread_events(self, license_id: int, thread_ids: list[str]) -> dict[str, list[StoredEvent]]:
        return await self._thread_events(self.pool, license_id, thread_ids)

    @staticmethod
    async def _thread_events(
        c: Conn | asyncpg.Pool, license_id: int, thread_ids: list[str]
    ) -> dict[str, list[StoredEvent]]:
        found: dict[str, list[StoredEvent]] = {t: [] for t in thread_ids}
        if not thread_ids:
            return found
        rows = await c.fetch(
            f"SELECT {_EVENT_COLS} FROM events WHERE license_id = $1 AND thread_id = ANY($2::text[]) ORDER BY ord",
            license_id,
            thread_ids,
        )
        for row in rows:
            found[row[2]].append(_event(row))
        return found

    # -- agents in chats, routing, archives ----------------------------------------------

    async def change_members(
        self,
        license_id: int,
        chat_id: str,
        agent_ids: list[str],
        check: ChatCheck,
        *,
        scopes: list[int] | None = None,
        system: tuple[str, str] | None = None,
        thread_id: str | None = None,
        only_if_unassigned: bool = False,
    ) -> MembersChange:
        async def op(c: Conn) -> MembersChange:
            chat = await self._checked_chat(c, license_id, chat_id, check)
            before = set_members(chat, agent_ids, scopes, thread_id, only_if_unassigned)
            await c.execute(
                "UPDATE chats SET agent_ids = $1, scopes = $2 WHERE id = $3", chat.agent_ids, chat.scopes, chat_id
            )
            thread = None
            event = None
            if chat.active_thread_id is not None:
                row = await self._load_thread_row(c, chat.active_thread_id)
                thread = _thread(row)
                if assign_thread(thread, chat):
                    queued_at: int | None = await self._next(c)
                else:
                    queued_at = row[8] if thread.queued else None
                await c.execute(
                    "UPDATE threads SET user_ids = $1, agent_id = $2, queued_at = $3 WHERE id = $4",
                    thread.user_ids,
                    thread.agent_id,
                    queued_at,
                    thread.id,
                )
                if system is not None:
                    event = await self._insert_event(c, chat, thread, system_event(system))
            return members_change(chat, thread, before, event)

        return await self._call(op)

    async def queued_threads(self, license_id: int) -> list[tuple[Chat, Thread]]:
        rows = await self.pool.fetch(
            f"SELECT {_cols(_CHAT_COLS, 'c')}, {_cols(_THREAD_COLS, 't')}"
            " FROM threads t JOIN chats c ON c.id = t.chat_id"
            " WHERE t.license_id = $1 AND t.active AND t.queued_at IS NOT NULL AND c.license_id = $1"
            " ORDER BY t.queued_at",
            license_id,
        )
        return [(_chat(r), _thread(r, _NCHAT)) for r in rows]

    async def agent_loads(self, license_id: int) -> dict[str, int]:
        rows = await self.pool.fetch(
            "SELECT a, count(*) FROM chats, unnest(chats.agent_ids) a"
            " WHERE chats.license_id = $1 AND chats.active_thread_id IS NOT NULL GROUP BY a",
            license_id,
        )
        return {r[0]: r[1] for r in rows}

    async def list_agent_chats(
        self, license_id: int, groups: list[int], status: str | None, member_id: str | None, offset: int, limit: int
    ) -> tuple[list[Chat], int]:
        where = "license_id = $1 AND scopes && $2::bigint[]"
        args: list[Any] = [license_id, groups]
        if status == "active":
            where += " AND active_thread_id IS NOT NULL"
        elif status == "closed":
            where += " AND active_thread_id IS NULL"
        elif status == "queued":
            where += (
                " AND EXISTS (SELECT 1 FROM threads t WHERE t.id = chats.active_thread_id AND t.queued_at IS NOT NULL)"
            )
        if member_id is not None:
            args.append(member_id)
            where += f" AND ${len(args)} = ANY(agent_ids)"
        async with self.pool.acquire() as c:
            total = await c.fetchval(f"SELECT count(*) FROM chats WHERE {where}", *args)
            rows = await c.fetch(
                f"SELECT {_CHAT_COLS} FROM chats WHERE {where}"
                f" ORDER BY ord DESC LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}",
                *args,
                limit,
                offset,
            )
        return [_chat(r) for r in rows], int(total)

    async def search_archives(
        self,
        license_id: int,
        groups: list[int],
        query: str | None,
        since_us: int,
        until_us: int,
        offset: int,
        limit: int,
    ) -> tuple[list[tuple[Chat, Thread]], int]:
        where = "c.license_id = $1 AND c.scopes && $2::bigint[] AND NOT t.active AND t.ord >= $3 AND t.ord < $4"
        args: list[Any] = [license_id, groups, since_us, until_us]
        if query:
            tsquery = _tsquery(query)
            if tsquery is None:
                return [], 0
            args.append(tsquery)
            where += (
                " AND t.id IN (SELECT thread_id FROM events_fts"
                f" WHERE license_id = $1 AND tsv @@ to_tsquery('simple', ${len(args)}))"
            )
        base = f"FROM threads t JOIN chats c ON c.id = t.chat_id WHERE {where}"
        async with self.pool.acquire() as conn:
            total = await conn.fetchval(f"SELECT count(*) {base}", *args)
            rows = await conn.fetch(
                f"SELECT {_cols(_CHAT_COLS, 'c')}, {_cols(_THREAD_COLS, 't')} {base}"
                f" ORDER BY t.ord DESC LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}",
                *args,
                limit,
                offset,
            )
        return [(_chat(r), _thread(r, _NCHAT)) for r in rows], int(total)

    # -- files -------------------------------------------------------------------------

    async def put_file(self, file: StoredFile) -> None:
        # Not through the writer: a large upload must not hold the hot write path, and it
        # touches no other row, so a single autocommit INSERT is already one atomic step.
        await self.pool.execute(
            "INSERT INTO files VALUES ($1, $2, $3, $4, $5, $6, $7)",
            file.token,
            file.license_id,
            file.name,
            file.content_type,
            file.size,
            file.data,
            ids.now_us(),
        )

    async def get_file(self, token: str) -> StoredFile | None:
        row = await self.pool.fetchrow(
            "SELECT token, license_id, name, content_type, size, data FROM files WHERE token = $1", token
        )
        return StoredFile(row[0], row[1], row[2], row[3], row[4], bytes(row[5])) if row else None

    # -- export ------------------------------------------------------------------------

    async def export_chats(self, license_id: int, since_us: int) -> AsyncIterator[ChatExport]:
        # One snapshot for the whole export, so a transcript never mixes two moments.
        async with self.pool.acquire() as c, c.transaction(isolation="repeatable_read", readonly=True):
            chat_ids = [
                r[0]
                for r in await c.fetch(
                    "SELECT id FROM chats WHERE license_id = $1 AND last_activity >= $2 ORDER BY created_at, id",
                    license_id,
                    since_us,
                )
            ]
            for chat_id in chat_ids:
                chat = await self._load_chat(c, license_id, chat_id)
                assert chat is not None
                threads = [
                    _thread(r)
                    for r in await c.fetch(
                        f"SELECT {_THREAD_COLS} FROM threads WHERE chat_id = $1 ORDER BY ord", chat_id
                    )
                ]
                yield chat, threads, await self._thread_events(c, license_id, [t.id for t in threads])


def _tsquery(query: str) -> str | None:
    """Every word must appear (prefix match), as in the SQLite store. Each word is quoted, so
    tsquery operators in user text stay inert; words with no letter or digit are dropped, and a
    query with none left matches nothing (None)."""
    words = [w for w in query.split() if any(ch.isalnum() for ch in w)]
    if not words:
        return None
    return " & ".join("'" + w.replace("\\", "\\\\").replace("'", "''") + "':*" for w in words)
