"""The embedded store: SQLite in WAL mode, driven by one thread that owns the connection.

Every operation is queued to that thread. The thread drains the queue and runs what it found
in ONE transaction, each operation inside its own savepoint (group commit): a success answer
means "committed and synced", while a burst of N sends costs one fsync, not N. An operation
that raises is rolled back to its savepoint and changes nothing.
"""

from __future__ import annotations

import asyncio
import copy
import fcntl
import os
import queue
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson

from parley import ids
from parley.protocol.errors import ApiError, ErrorType, not_found, validation
from parley.store import migrations
from parley.store.base import ChatCheck, ChatExport, PropsChange, Store
from parley.store.common import (
    agent_groups,
    apply_customer_changes,
    assign_thread,
    fts_query,
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

R = TypeVar("R")
Op = Callable[..., Any]
_Item = tuple[Op, tuple, asyncio.Future, bool]  # operation, its arguments, its future, keeps_hot

_BATCH_MAX = 512
_CHECKPOINT_EVERY_S = 1.0

_CHAT_COLS = "id, license_id, customer_id, ord, scopes, properties, active_thread_id, agent_ids, threads_count"
_THREAD_COLS = (
    "id, chat_id, ord, active, user_ids, properties, events_count, agent_id, queued_at, closed_at, notes_count"
)
_EVENT_COLS = "id, chat_id, thread_id, ord, type, author_id, recipients, custom_id, body"
_AGENT_COLS = "id, license_id, email, name, password_hash, groups, routing_status, max_chats, avatar, last_seen"
_CUSTOMER_COLS = "id, license_id, name, email, monitoring, properties, last_seen, created_at, banned_until"


def _j(value: Any) -> str:
    return orjson.dumps(value).decode()


_NCHAT = _CHAT_COLS.count(",") + 1  # where a thread's columns start in a chat + thread row


def _cols(cols: str, alias: str) -> str:
    return ", ".join(f"{alias}.{col.strip()}" for col in cols.split(","))


_CHAT_WITH_ACTIVE_THREAD = (
    f"SELECT {_cols(_CHAT_COLS, 'c')}, {_cols(_THREAD_COLS, 't')} FROM chats c"
    " LEFT JOIN threads t ON t.id = c.active_thread_id WHERE c.id = ? AND c.license_id = ?"
)


def _chat(row: tuple) -> Chat:
    return Chat(
        id=row[0],
        license_id=row[1],
        customer_id=row[2],
        order=row[3],
        scopes=orjson.loads(row[4]),
        properties=orjson.loads(row[5]),
        active_thread_id=row[6],
        agent_ids=orjson.loads(row[7]),
        threads_count=row[8],
    )


def _thread(row: tuple) -> Thread:
    return Thread(
        id=row[0],
        chat_id=row[1],
        order=row[2],
        active=bool(row[3]),
        user_ids=orjson.loads(row[4]),
        properties=orjson.loads(row[5]),
        events_count=row[6],
        agent_id=row[7],
        queued=row[8] is not None,
        closed_at=row[9],
        notes_count=row[10],
    )


def _event(row: tuple) -> StoredEvent:
    return StoredEvent(
        id=row[0],
        chat_id=row[1],
        thread_id=row[2],
        order=row[3],
        type=row[4],
        author_id=row[5],
        recipients=row[6],
        custom_id=row[7],
        body=orjson.loads(row[8]),
    )


def _agent(row: tuple) -> Agent:
    return Agent(
        id=row[0],
        license_id=row[1],
        email=row[2],
        name=row[3],
        password_hash=row[4],
        groups=orjson.loads(row[5]),
        routing_status=row[6],
        max_chats=row[7],
        avatar=row[8],
        last_seen_timestamp=row[9],
    )


def _customer(row: tuple) -> Customer:
    return Customer(
        id=row[0],
        license_id=row[1],
        name=row[2],
        email=row[3],
        monitoring=orjson.loads(row[4]),
        properties=orjson.loads(row[5]),
        last_seen_timestamp=row[6],
        created_at=row[7],
        banned_until=row[8],
    )


class SqliteStore(Store):
    def __init__(self, path: Path, synchronous: str = "FULL", *, serving: bool = False) -> None:
        self.path = path
        self.synchronous = synchronous
        # A serving node caches the chats it writes (`_hot`), which is true only while no other
        # server writes the same file: it holds an exclusive lock on `<db>.serve-lock` to make sure.
        self.serving = serving
        self._lock_fd: int | None = None
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: sqlite3.Connection | None = None
        self._clock = ids.OrderClock()
        self._checkpointer: threading.Thread | None = None
        self._stop = threading.Event()
        # chat id -> the chat and its active thread as this process last wrote them. Only the
        # writer thread touches it; see `_call` for what keeps it true.
        self._hot: dict[str, tuple[Chat, Thread]] = {}

    # -- the writer thread -------------------------------------------------------------

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.serving:
            self._lock_fd = _claim(self.path)
        self._thread = threading.Thread(target=self._run, name="parley-sqlite", daemon=True)
        self._thread.start()
        await self._call(self._migrate)
        self._checkpointer = threading.Thread(target=self._checkpoint, name="parley-sqlite-checkpoint", daemon=True)
        self._checkpointer.start()

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        if self._checkpointer is not None:
            self._stop.set()
            await loop.run_in_executor(None, self._checkpointer.join)
            self._checkpointer = None
        if self._thread is not None:
            self._queue.put(None)
            await loop.run_in_executor(None, self._thread.join)
            self._thread = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the lock (so does dying)
            self._lock_fd = None

    def _checkpoint(self) -> None:
        """Copy the WAL back into the database from a thread of its own. SQLite would otherwise
        do it inside whichever COMMIT crosses 1,000 pages, and that send would wait for it.
        PASSIVE never blocks the writer; the WAL restarts from its start once fully copied."""
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout=10000")
            while not self._stop.wait(_CHECKPOINT_EVERY_S):
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        finally:
            conn.close()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("PRAGMA foreign_keys=ON")
        # Pages stay in this process's cache (64 MiB) instead of being read back from the OS.
        conn.execute("PRAGMA cache_size=-65536")
        conn.execute("PRAGMA wal_autocheckpoint=0")  # the checkpoint thread does it
        return conn

    def _run(self) -> None:
        conn = self._conn = self._connect()
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    return
                batch = [item]
                while len(batch) < _BATCH_MAX:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        self._queue.put(None)
                        break
                    batch.append(nxt)
                self._run_batch(conn, batch)
        finally:
            conn.close()

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Item]) -> None:
        # Savepoints cost two statements per operation, and operations rarely fail, so the batch
        # first runs without them; if one fails, the whole batch is rolled back and replayed with
        # a savepoint each, so that only the failing one is undone.
        outcomes = self._attempt(conn, batch, savepoints=len(batch) == 1)
        if outcomes is None:
            outcomes = self._attempt(conn, batch, savepoints=True)
        assert outcomes is not None and self._loop is not None
        self._loop.call_soon_threadsafe(settle, outcomes)

    def _attempt(
        self, conn: sqlite3.Connection, batch: list[_Item], *, savepoints: bool
    ) -> list[tuple[asyncio.Future, Any, BaseException | None]] | None:
        """Run the batch in one transaction; None when an operation failed without a savepoint."""
        outcomes: list[tuple[asyncio.Future, Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for fn, args, fut, keeps_hot in batch:
                if savepoints:
                    conn.execute("SAVEPOINT op")
                try:
                    result = fn(conn, *args)
                except Exception as exc:
                    self._hot.clear()  # the op may have changed cached rows before it failed
                    if not savepoints:
                        conn.execute("ROLLBACK")
                        return None
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    outcomes.append((fut, None, exc))
                else:
                    if not keeps_hot:
                        self._hot.clear()
                    if savepoints:
                        conn.execute("RELEASE op")
                    outcomes.append((fut, result, None))
            conn.execute("COMMIT")
        except Exception as exc:
            self._hot.clear()
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return [(item[2], None, exc) for item in batch]
        return outcomes

    async def _call(self, fn: Callable[..., R], *args: Any, keeps_hot: bool = False) -> R:
        """Run fn(conn, *args) in the writer thread, in the next batch.

        `append_event` keeps the chats it writes to in `_hot`, so the hottest path skips loading
        and decoding the chat and thread rows. Every other operation empties that cache after it
        runs, unless it says `keeps_hot` (it reads, or writes no chat or thread row); so does any
        failure or rollback. Nothing else writes those rows: `parley admin` never does.
        """
        assert self._loop is not None, "store is not open"
        fut = self._loop.create_future()
        self._queue.put((fn, args, fut, keeps_hot))
        return await fut

    async def _read(self, fn: Callable[..., R], *args: Any) -> R:
        return await self._call(fn, *args, keeps_hot=True)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT)")
        applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for version, name, statements in migrations.pending("sqlite", applied):
            for statement in statements:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, name))
        row = conn.execute("SELECT max(max(ord), max(last_event_ord), coalesce(max(closed_at), 0)) FROM threads")
        self._clock.last = max(self._clock.last, row.fetchone()[0] or 0)

    # -- small things ------------------------------------------------------------------

    async def ping(self) -> None:
        await self._read(lambda c: c.execute("SELECT 1").fetchone())

    async def meta(self, key: str, default: Callable[[], str]) -> str:
        def op(c: sqlite3.Connection) -> str:
            row = c.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            if row:
                return row[0]
            value = default()
            c.execute("INSERT INTO meta VALUES (?, ?)", (key, value))
            return value

        return await self._call(op)

    async def create_license(self, name: str) -> License:
        def op(c: sqlite3.Connection) -> License:
            org = ids.user_id()
            cur = c.execute(
                "INSERT INTO licenses (name, organization_id, created_at) VALUES (?, ?, ?)", (name, org, ids.now_us())
            )
            license_id = int(cur.lastrowid or 0)
            c.execute("INSERT INTO groups VALUES (?, 0, 'General')", (license_id,))
            return License(id=license_id, name=name, organization_id=org)

        return await self._call(op)

    async def get_license(self, license_id: int) -> License | None:
        return await self._read(self._license_where, "id", license_id)

    async def get_license_by_org(self, organization_id: str) -> License | None:
        return await self._read(self._license_where, "organization_id", organization_id)

    async def update_license_settings(self, license_id: int, changes: dict[str, Any]) -> License:
        def op(c: sqlite3.Connection) -> License:
            license = self._license_where(c, "id", license_id)
            if license is None:
                raise ApiError(ErrorType.LICENSE_NOT_FOUND, f"licence {license_id} does not exist")
            license.settings = {**license.settings, **changes}
            c.execute("UPDATE licenses SET settings = ? WHERE id = ?", (_j(license.settings), license_id))
            return license

        return await self._call(op)

    @staticmethod
    def _license_where(c: sqlite3.Connection, column: str, value: Any) -> License | None:
        row = c.execute(
            f"SELECT id, name, organization_id, settings FROM licenses WHERE {column} = ?", (value,)
        ).fetchone()
        return License(row[0], row[1], row[2], orjson.loads(row[3])) if row else None

    async def create_group(self, license_id: int, name: str, group_id: int | None = None) -> int:
        def op(c: sqlite3.Connection) -> int:
            gid = group_id
            if gid is None:
                gid = c.execute("SELECT coalesce(max(id), 0) + 1 FROM groups WHERE license_id = ?", (license_id,))
                gid = gid.fetchone()[0]
            c.execute("INSERT OR IGNORE INTO groups VALUES (?, ?, ?)", (license_id, gid, name))
            return int(gid)

        return await self._call(op)

    @staticmethod
    def _group_set(c: sqlite3.Connection, license_id: int) -> set[int]:
        return {r[0] for r in c.execute("SELECT id FROM groups WHERE license_id = ?", (license_id,))}

    async def group_ids(self, license_id: int) -> set[int]:
        return await self._read(self._group_set, license_id)

    async def create_agent(
        self, license_id: int, email: str, name: str, password_hash: str, groups: list[int], max_chats: int | None
    ) -> Agent:
        def op(c: sqlite3.Connection) -> Agent:
            all_groups = agent_groups(groups, self._group_set(c, license_id))
            if c.execute("SELECT 1 FROM agents WHERE license_id = ? AND email = ?", (license_id, email)).fetchone():
                raise validation(f"an agent with email {email} already exists")
            agent = Agent(ids.user_id(), license_id, email, name, password_hash, all_groups, max_chats=max_chats)
            c.execute(
                "INSERT INTO agents (id, license_id, email, name, password_hash, groups, routing_status, max_chats,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    agent.id,
                    license_id,
                    email,
                    name,
                    password_hash,
                    _j(all_groups),
                    agent.routing_status,
                    max_chats,
                    ids.now_us(),
                ),
            )
            return agent

        return await self._call(op)

    async def list_agents(self, license_id: int) -> list[Agent]:
        return await self._read(
            lambda c: [
                _agent(r)
                for r in c.execute(
                    f"SELECT {_AGENT_COLS} FROM agents WHERE license_id = ? ORDER BY email", (license_id,)
                )
            ]
        )

    async def get_agent_by_email(self, license_id: int, email: str) -> Agent | None:
        def op(c: sqlite3.Connection) -> Agent | None:
            row = c.execute(
                f"SELECT {_AGENT_COLS} FROM agents WHERE license_id = ? AND email = ?", (license_id, email)
            ).fetchone()
            return _agent(row) if row else None

        return await self._read(op)

    async def get_agents(self, license_id: int, agent_ids: list[str]) -> list[Agent]:
        return await self._read(self._agents, license_id, agent_ids)

    @staticmethod
    def _agents(c: sqlite3.Connection, license_id: int, agent_ids: list[str]) -> list[Agent]:
        if not agent_ids:
            return []
        marks = ",".join("?" * len(agent_ids))
        rows = c.execute(
            f"SELECT {_AGENT_COLS} FROM agents WHERE license_id = ? AND id IN ({marks})", (license_id, *agent_ids)
        )
        by_id = {a.id: a for a in map(_agent, rows)}
        return [by_id[i] for i in agent_ids if i in by_id]

    async def set_routing_status(self, license_id: int, agent_id: str, status: str) -> None:
        await self._read(
            lambda c: c.execute(
                "UPDATE agents SET routing_status = ? WHERE license_id = ? AND id = ?", (status, license_id, agent_id)
            )
        )

    async def create_customer(self, license_id: int) -> Customer:
        def op(c: sqlite3.Connection) -> Customer:
            customer = Customer(id=ids.user_id(), license_id=license_id, created_at=ids.now_us())
            c.execute(
                "INSERT INTO customers (id, license_id, created_at) VALUES (?, ?, ?)",
                (customer.id, license_id, customer.created_at),
            )
            return customer

        return await self._read(op)

    async def get_customer(self, license_id: int, customer_id: str) -> Customer | None:
        found = await self._read(self._customers, license_id, [customer_id])
        return found[0] if found else None

    async def get_customers(self, license_id: int, customer_ids: list[str]) -> list[Customer]:
        return await self._read(self._customers, license_id, customer_ids)

    @staticmethod
    def _customers(c: sqlite3.Connection, license_id: int, customer_ids: list[str]) -> list[Customer]:
        if not customer_ids:
            return []
        marks = ",".join("?" * len(customer_ids))
        rows = c.execute(
            f"SELECT {_CUSTOMER_COLS} FROM customers WHERE license_id = ? AND id IN ({marks})",
            (license_id, *customer_ids),
        )
        return [_customer(r) for r in rows]

    async def update_customer(self, license_id: int, customer_id: str, changes: dict[str, Any]) -> Customer:
        def op(c: sqlite3.Connection) -> Customer:
            found = self._customers(c, license_id, [customer_id])
            if not found:
                raise not_found("customer")
            cur = found[0]
            apply_customer_changes(cur, changes)
            c.execute(
                "UPDATE customers SET name = ?, email = ?, monitoring = ?, properties = ? WHERE id = ?",
                (cur.name, cur.email, _j(cur.monitoring), _j(cur.properties), customer_id),
            )
            return cur

        return await self._read(op)

    async def ban_customer(self, license_id: int, customer_id: str, until: int) -> None:
        def op(c: sqlite3.Connection) -> None:
            cur = c.execute(
                "UPDATE customers SET banned_until = ? WHERE license_id = ? AND id = ?",
                (until, license_id, customer_id),
            )
            if cur.rowcount == 0:
                raise not_found("customer")

        await self._read(op)

    async def set_last_seen(self, license_id: int, user_id: str, chat_id: str | None, timestamp: int) -> int:
        def op(c: sqlite3.Connection) -> int:
            c.execute(
                "INSERT INTO last_seen VALUES (?, ?, ?, ?) ON CONFLICT (user_id, chat_id)"
                " DO UPDATE SET ts = max(ts, excluded.ts)",
                (user_id, chat_id or "", license_id, timestamp),
            )
            stored = c.execute(
                "SELECT ts FROM last_seen WHERE user_id = ? AND chat_id = ?", (user_id, chat_id or "")
            ).fetchone()[0]
            if chat_id is None:
                c.execute("UPDATE customers SET last_seen = ? WHERE id = ?", (stored, user_id))
                c.execute("UPDATE agents SET last_seen = ? WHERE id = ?", (stored, user_id))
            return int(stored)

        return await self._read(op)

    async def chat_last_seen(self, license_id: int, chat_id: str) -> dict[str, int]:
        return await self._read(
            lambda c: dict(c.execute("SELECT user_id, ts FROM last_seen WHERE chat_id = ?", (chat_id,)).fetchall())
        )

    # -- chats -------------------------------------------------------------------------

    def _load_chat(self, c: sqlite3.Connection, license_id: int, chat_id: str) -> Chat | None:
        row = c.execute(f"SELECT {_CHAT_COLS} FROM chats WHERE id = ? AND license_id = ?", (chat_id, license_id))
        found = row.fetchone()
        return _chat(found) if found else None

    def _checked_chat(self, c: sqlite3.Connection, license_id: int, chat_id: str, check: ChatCheck) -> Chat:
        chat = self._load_chat(c, license_id, chat_id)
        if chat is None:
            raise not_found("chat")
        check(chat)
        return chat

    def _load_thread(self, c: sqlite3.Connection, thread_id: str) -> Thread:
        return _thread(c.execute(f"SELECT {_THREAD_COLS} FROM threads WHERE id = ?", (thread_id,)).fetchone())

    @staticmethod
    def _check_active_limit(c: sqlite3.Connection, license_id: int, customer_id: str, limit: int) -> None:
        active = c.execute(
            "SELECT count(*) FROM chats WHERE license_id = ? AND customer_id = ? AND active_thread_id IS NOT NULL",
            (license_id, customer_id),
        ).fetchone()[0]
        if active >= limit:
            raise ApiError(ErrorType.LIMIT_REACHED, f"a customer may have at most {limit} active chats")

    def _open_thread(self, c: sqlite3.Connection, chat: Chat, properties: dict[str, Any]) -> Thread:
        thread = Thread(
            id=ids.short_id(),
            chat_id=chat.id,
            order=self._clock.next(),
            active=True,
            user_ids=[chat.customer_id],
            properties=properties,
            queued=True,
        )
        c.execute(
            "INSERT INTO threads (id, chat_id, license_id, ord, active, user_ids, properties, queued_at)"
            " VALUES (?, ?, ?, ?, 1, ?, ?, ?)",
            (thread.id, chat.id, chat.license_id, thread.order, _j(thread.user_ids), _j(properties), thread.order),
        )
        chat.order = thread.order
        chat.active_thread_id = thread.id
        chat.threads_count += 1
        chat.agent_ids = []
        c.execute(
            "UPDATE chats SET ord = ?, active_thread_id = ?, threads_count = ?, last_activity = ?, agent_ids = '[]'"
            " WHERE id = ?",
            (chat.order, thread.id, chat.threads_count, thread.order, chat.id),
        )
        return thread

    def _insert_event(self, c: sqlite3.Connection, chat: Chat, thread: Thread, new: NewEvent) -> StoredEvent:
        thread.events_count += 1
        event = StoredEvent(
            id=f"{thread.id}_{thread.events_count}",
            chat_id=chat.id,
            thread_id=thread.id,
            order=self._clock.next(),
            type=new.type,
            author_id=new.author_id,
            recipients=new.recipients,
            custom_id=new.custom_id,
            body=new.body,
        )
        try:
            c.execute(
                f"INSERT INTO events ({_EVENT_COLS}, license_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    event.id,
                    chat.id,
                    thread.id,
                    event.order,
                    event.type,
                    event.author_id,
                    event.recipients,
                    event.custom_id,
                    _j(event.body),
                    chat.license_id,
                ),
            )
        except sqlite3.IntegrityError:
            raise validation(f"`custom_id` {new.custom_id!r} is used twice") from None
        if event.recipients == "agents":
            thread.notes_count += 1
        c.execute(
            "UPDATE threads SET events_count = ?, notes_count = ?, last_event_ord = ? WHERE id = ?",
            (thread.events_count, thread.notes_count, event.order, thread.id),
        )
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
        def op(c: sqlite3.Connection) -> Started:
            self._check_active_limit(c, license_id, customer_id, active_limit)
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
            c.execute(
                "INSERT INTO chats (id, license_id, customer_id, ord, scopes, properties, created_at, last_activity)"
                " VALUES (?, ?, ?, 0, ?, ?, ?, ?)",
                (chat.id, license_id, customer_id, _j(scopes), _j(properties), now, now),
            )
            thread = self._open_thread(c, chat, thread_properties)
            stored = [self._insert_event(c, chat, thread, e) for e in events]
            return Started(chat, thread, stored)

        return await self._call(op)

    async def append_event(
        self, license_id: int, chat_id: str, event: NewEvent, check: ChatCheck, active_limit: int
    ) -> Appended:
        def op(c: sqlite3.Connection) -> Appended:
            hot = self._hot.get(chat_id)
            if hot is not None and hot[0].license_id == license_id:
                chat, thread = hot
            else:
                # The chat and its active thread in one statement: this is the hottest path.
                joined = c.execute(_CHAT_WITH_ACTIVE_THREAD, (chat_id, license_id)).fetchone()
                if joined is None:
                    raise not_found("chat")
                chat = _chat(joined)
                thread = _thread(joined[_NCHAT:]) if chat.active_thread_id is not None else None
            check(chat)
            if event.custom_id is not None:
                row = c.execute(
                    f"SELECT {_EVENT_COLS} FROM events WHERE chat_id = ? AND author_id IS ? AND custom_id = ?",
                    (chat_id, event.author_id, event.custom_id),
                ).fetchone()
                if row:
                    original = _event(row)
                    return Appended(chat, self._load_thread(c, original.thread_id), original, False, True)
            opened = thread is None
            if thread is None:
                self._check_active_limit(c, license_id, chat.customer_id, active_limit)
                thread = self._open_thread(c, chat, {})
            stored = self._insert_event(c, chat, thread, event)
            self._hot[chat_id] = (chat, thread)
            # A copy: the cached thread keeps counting events after this answer has left.
            return Appended(chat, copy.copy(thread), stored, opened, False)

        return await self._call(op, keeps_hot=True)  # it keeps the cache true itself

    async def close_thread(self, license_id: int, chat_id: str, thread_id: str | None, check: ChatCheck) -> Thread:
        def op(c: sqlite3.Connection) -> Thread:
            chat = self._checked_chat(c, license_id, chat_id, check)
            if thread_id is not None and thread_id != chat.active_thread_id:
                known = c.execute("SELECT 1 FROM threads WHERE id = ? AND chat_id = ?", (thread_id, chat_id)).fetchone()
                if not known:
                    raise not_found("thread")
                raise ApiError(ErrorType.CHAT_INACTIVE, f"thread {thread_id} is not active")
            if chat.active_thread_id is None:
                raise ApiError(ErrorType.CHAT_INACTIVE, "the chat has no active thread")
            thread = self._load_thread(c, chat.active_thread_id)
            thread.active = False
            thread.queued = False
            thread.closed_at = self._clock.next()
            c.execute(
                "UPDATE threads SET active = 0, closed_at = ?, queued_at = NULL WHERE id = ?",
                (thread.closed_at, thread.id),
            )
            c.execute(
                "UPDATE chats SET active_thread_id = NULL, last_activity = ? WHERE id = ?", (thread.closed_at, chat_id)
            )
            # Archives search closed threads only, so indexing waits until now: off the send path.
            events = self._thread_events(c, license_id, [thread.id])[thread.id]
            c.executemany(
                "INSERT INTO events_fts VALUES (?, ?, ?, ?)",
                [(text, chat_id, thread.id, license_id) for text in map(searchable, events) if text],
            )
            return thread

        return await self._call(op)

    async def update_chat_scopes(
        self, license_id: int, chat_id: str, add: list[int], remove: list[int], check: ChatCheck
    ) -> ScopesChange:
        def op(c: sqlite3.Connection) -> ScopesChange:
            chat = self._checked_chat(c, license_id, chat_id, check)
            change = rescope(chat, add, remove, self._group_set(c, license_id))
            c.execute("UPDATE chats SET scopes = ? WHERE id = ?", (_j(chat.scopes), chat_id))
            return change

        return await self._call(op)

    async def update_chat_properties(
        self, license_id: int, chat_id: str, properties: dict[str, Any], check: ChatCheck
    ) -> PropsChange:
        def op(c: sqlite3.Connection) -> PropsChange:
            chat = self._checked_chat(c, license_id, chat_id, check)
            chat.properties, changed = merge_properties(chat.properties, properties)
            c.execute("UPDATE chats SET properties = ? WHERE id = ?", (_j(chat.properties), chat_id))
            return chat, changed

        return await self._call(op)

    async def update_thread_properties(
        self, license_id: int, chat_id: str, thread_id: str, properties: dict[str, Any], check: ChatCheck
    ) -> PropsChange:
        def op(c: sqlite3.Connection) -> PropsChange:
            chat = self._checked_chat(c, license_id, chat_id, check)
            row = c.execute(f"SELECT {_THREAD_COLS} FROM threads WHERE id = ? AND chat_id = ?", (thread_id, chat_id))
            found = row.fetchone()
            if not found:
                raise not_found("thread")
            thread = _thread(found)
            merged, changed = merge_properties(thread.properties, properties)
            c.execute("UPDATE threads SET properties = ? WHERE id = ?", (_j(merged), thread_id))
            return chat, changed

        return await self._call(op)

    async def get_chat(self, license_id: int, chat_id: str) -> Chat | None:
        return await self._read(self._load_chat, license_id, chat_id)

    async def list_customer_chats(
        self, license_id: int, customer_id: str, offset: int, limit: int
    ) -> tuple[list[Chat], int]:
        def op(c: sqlite3.Connection) -> tuple[list[Chat], int]:
            total = c.execute(
                "SELECT count(*) FROM chats WHERE license_id = ? AND customer_id = ?", (license_id, customer_id)
            ).fetchone()[0]
            rows = c.execute(
                f"SELECT {_CHAT_COLS} FROM chats WHERE license_id = ? AND customer_id = ?"
                " ORDER BY ord DESC LIMIT ? OFFSET ?",
                (license_id, customer_id, limit, offset),
            )
            return [_chat(r) for r in rows], int(total)

        return await self._read(op)

    async def active_chats(self, license_id: int, customer_id: str) -> list[Chat]:
        return await self._read(
            lambda c: [
                _chat(r)
                for r in c.execute(
                    f"SELECT {_CHAT_COLS} FROM chats WHERE license_id = ? AND customer_id = ?"
                    " AND active_thread_id IS NOT NULL ORDER BY ord DESC",
                    (license_id, customer_id),
                )
            ]
        )

    async def get_threads(self, license_id: int, chat_id: str, thread_ids: list[str]) -> list[Thread]:
        def op(c: sqlite3.Connection) -> list[Thread]:
            marks = ",".join("?" * len(thread_ids))
            rows = c.execute(
                f"SELECT {_THREAD_COLS} FROM threads WHERE chat_id = ? AND license_id = ? AND id IN ({marks})"
                " ORDER BY ord",
                (chat_id, license_id, *thread_ids),
            )
            return [_thread(r) for r in rows]

        return await self._read(op)

    async def list_threads(
        self, license_id: int, chat_id: str, offset: int, limit: int, newest_first: bool
    ) -> tuple[list[Thread], int]:
        def op(c: sqlite3.Connection) -> tuple[list[Thread], int]:
            total = c.execute("SELECT count(*) FROM threads WHERE chat_id = ?", (chat_id,)).fetchone()[0]
            direction = "DESC" if newest_first else "ASC"
            rows = c.execute(
                f"SELECT {_THREAD_COLS} FROM threads WHERE chat_id = ? AND license_id = ?"
                f" ORDER BY ord {direction} LIMIT ? OFFSET ?",
                (chat_id, license_id, limit, offset),
            )
            return [_thread(r) for r in rows], int(total)

        return await self._read(op)

    async def thread_events(self, license_id: int, thread_ids: list[str]) -> dict[str, list[StoredEvent]]:
        return await self._read(self._thread_events, license_id, thread_ids)

    @staticmethod
    def _thread_events(c: sqlite3.Connection, license_id: int, thread_ids: list[str]) -> dict[str, list[StoredEvent]]:
        found: dict[str, list[StoredEvent]] = {t: [] for t in thread_ids}
        if not thread_ids:
            return found
        marks = ",".join("?" * len(thread_ids))
        rows = c.execute(
            f"SELECT {_EVENT_COLS} FROM events WHERE license_id = ? AND thread_id IN ({marks}) ORDER BY ord",
            (license_id, *thread_ids),
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
        def op(c: sqlite3.Connection) -> MembersChange:
            chat = self._checked_chat(c, license_id, chat_id, check)
            before = set_members(chat, agent_ids, scopes, thread_id, only_if_unassigned)
            c.execute(
                "UPDATE chats SET agent_ids = ?, scopes = ? WHERE id = ?",
                (_j(chat.agent_ids), _j(chat.scopes), chat_id),
            )
            thread = None
            event = None
            if chat.active_thread_id is not None:
                thread = self._load_thread(c, chat.active_thread_id)
                if assign_thread(thread, chat):
                    queued_at: int | None = self._clock.next()
                elif thread.queued:
                    queued_at = c.execute("SELECT queued_at FROM threads WHERE id = ?", (thread.id,)).fetchone()[0]
                else:
                    queued_at = None
                c.execute(
                    "UPDATE threads SET user_ids = ?, agent_id = ?, queued_at = ? WHERE id = ?",
                    (_j(thread.user_ids), thread.agent_id, queued_at, thread.id),
                )
                if system is not None:
                    event = self._insert_event(c, chat, thread, system_event(system))
            return members_change(chat, thread, before, event)

        return await self._call(op)

    async def queued_threads(self, license_id: int) -> list[tuple[Chat, Thread]]:
        def op(c: sqlite3.Connection) -> list[tuple[Chat, Thread]]:
            rows = c.execute(
                f"SELECT {_THREAD_COLS} FROM threads WHERE license_id = ? AND active = 1 AND queued_at IS NOT NULL"
                " ORDER BY queued_at",
                (license_id,),
            ).fetchall()
            found = []
            for row in rows:
                thread = _thread(row)
                chat = self._load_chat(c, license_id, thread.chat_id)
                if chat is not None:
                    found.append((chat, thread))
            return found

        return await self._read(op)

    async def agent_loads(self, license_id: int) -> dict[str, int]:
        return await self._read(
            lambda c: dict(
                c.execute(
                    "SELECT j.value, count(*) FROM chats, json_each(chats.agent_ids) j"
                    " WHERE chats.license_id = ? AND chats.active_thread_id IS NOT NULL GROUP BY j.value",
                    (license_id,),
                ).fetchall()
            )
        )

    async def list_agent_chats(
        self, license_id: int, groups: list[int], status: str | None, member_id: str | None, offset: int, limit: int
    ) -> tuple[list[Chat], int]:
        def op(c: sqlite3.Connection) -> tuple[list[Chat], int]:
            where, args = _scope_clause(license_id, groups)
            if status == "active":
                where += " AND active_thread_id IS NOT NULL"
            elif status == "closed":
                where += " AND active_thread_id IS NULL"
            elif status == "queued":
                where += (
                    " AND EXISTS (SELECT 1 FROM threads t WHERE t.id = chats.active_thread_id"
                    " AND t.queued_at IS NOT NULL)"
                )
            if member_id is not None:
                where += " AND EXISTS (SELECT 1 FROM json_each(chats.agent_ids) m WHERE m.value = ?)"
                args.append(member_id)
            total = c.execute(f"SELECT count(*) FROM chats WHERE {where}", args).fetchone()[0]
            rows = c.execute(
                f"SELECT {_CHAT_COLS} FROM chats WHERE {where} ORDER BY ord DESC LIMIT ? OFFSET ?",
                [*args, limit, offset],
            )
            return [_chat(r) for r in rows], int(total)

        return await self._read(op)

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
        def op(c: sqlite3.Connection) -> tuple[list[tuple[Chat, Thread]], int]:
            where, args = _scope_clause(license_id, groups, table="ch")
            where += " AND t.active = 0 AND t.ord >= ? AND t.ord < ?"
            args += [since_us, until_us]
            if query:
                where += " AND t.id IN (SELECT thread_id FROM events_fts WHERE events_fts MATCH ? AND license_id = ?)"
                args += [fts_query(query), license_id]
            base = f"FROM threads t JOIN chats ch ON ch.id = t.chat_id WHERE {where}"
            total = c.execute(f"SELECT count(*) {base}", args).fetchone()[0]
            rows = c.execute(
                f"SELECT {_cols(_THREAD_COLS, 't')} {base} ORDER BY t.ord DESC LIMIT ? OFFSET ?",
                [*args, limit, offset],
            ).fetchall()
            found = []
            for row in rows:
                thread = _thread(row)
                chat = self._load_chat(c, license_id, thread.chat_id)
                assert chat is not None
                found.append((chat, thread))
            return found, int(total)

        return await self._read(op)

    # -- files -------------------------------------------------------------------------

    async def put_file(self, file: StoredFile) -> None:
        await self._read(
            lambda c: c.execute(
                "INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?)",
                (file.token, file.license_id, file.name, file.content_type, file.size, file.data, ids.now_us()),
            )
        )

    async def get_file(self, token: str) -> StoredFile | None:
        def op(c: sqlite3.Connection) -> StoredFile | None:
            row = c.execute(
                "SELECT token, license_id, name, content_type, size, data FROM files WHERE token = ?", (token,)
            ).fetchone()
            return StoredFile(*row) if row else None

        return await self._read(op)

    # -- export ------------------------------------------------------------------------

    async def export_chats(self, license_id: int, since_us: int) -> AsyncIterator[ChatExport]:
        chat_ids: list[str] = await self._read(
            lambda c: [
                r[0]
                for r in c.execute(
                    # last_activity moves when a thread opens or closes, a thread's last_event_ord
                    # with every event: the send path touches the thread row anyway.
                    "SELECT id FROM chats WHERE license_id = ? AND (last_activity >= ?"
                    " OR EXISTS (SELECT 1 FROM threads t WHERE t.chat_id = chats.id AND t.last_event_ord >= ?))"
                    " ORDER BY created_at, id",
                    (license_id, since_us, since_us),
                )
            ]
        )

        def one(c: sqlite3.Connection, chat_id: str) -> ChatExport:
            chat = self._load_chat(c, license_id, chat_id)
            assert chat is not None
            threads = [
                _thread(r)
                for r in c.execute(f"SELECT {_THREAD_COLS} FROM threads WHERE chat_id = ? ORDER BY ord", (chat_id,))
            ]
            return chat, threads, self._thread_events(c, license_id, [t.id for t in threads])

        for chat_id in chat_ids:
            yield await self._read(one, chat_id)


def _claim(db: Path) -> int:
    """Hold an exclusive lock for as long as this process serves `db`; a second server exits."""
    fd = os.open(f"{db}.serve-lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise SystemExit(
            f"parley: another `parley serve` is using {db.parent} (one server per SQLite data directory;"
            " run several nodes on PostgreSQL)"
        ) from None
    return fd


def _scope_clause(license_id: int, groups: list[int], table: str = "chats") -> tuple[str, list[Any]]:
    """Chats whose scopes share a group with `groups`."""
    marks = ",".join("?" * len(groups)) or "NULL"
    clause = f"{table}.license_id = ? AND EXISTS (SELECT 1 FROM json_each({table}.scopes) s WHERE s.value IN ({marks}))"
    return clause, [license_id, *groups]
