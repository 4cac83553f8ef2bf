"""The bus of a cluster (SPEC §1, §12 Cluster): several nodes on one Redis act as one.

Pushes. A node keeps its own connections in a LocalBus and delivers to them at once; whatever it
publishes also goes out on the cluster's one pub/sub channel, and every other node delivers it to
its own connections of those users (a node skips its own messages). One writer task sends
everything this node publishes, in order, on one connection, batching whatever piled up into one
pipeline; one subscriber task reads the channel. So pushes from one node arrive everywhere in the
order that node published them.

Wire format: a compact JSON header line, b"\\n", then the frame bytes as they are. The frame is
JSON already; nesting it inside the header would cost one more parse and dump per push.

Presence (so `is_present` answers for the whole cluster, synchronously, as the Router and the
`present` field of User objects need). Each node owns a Redis hash `parley:<cluster>:presence:<node>`
of its present users (user id -> side) plus a `#seq` field: the number of presence changes this
node has made. A change (a user's first connection on the node, or its last one closing) bumps seq,
updates the hash and is announced on the channel with its seq; the writer also rewrites the whole
hash every heartbeat (self-healing after a Redis restart) with a short TTL, so the hash of a node
that dies vanishes within PRESENCE_TTL_S. Every node keeps a local view of the others: it applies
announcements in seq order, and every heartbeat it lists the hashes: it (re)loads a hash whose seq
differs from what it applied (a missed announcement, a node that started earlier) and drops the
users of a node whose hash has been gone for a heartbeat. (hash, seq) pairs are written atomically, so a snapshot with
seq S is exactly that node's state after its S-th change and it never undoes a newer announcement.

With Redis unreachable the node keeps serving its own connections, drops what it would have sent
(logged), and retries with back-off; on reconnecting it rewrites its hash and reloads the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis

from parley.bus.base import Bus, Connection, PresenceChange, PresenceWatcher
from parley.bus.local import LocalBus
from parley.store.base import Store

log = logging.getLogger("parley.bus")

HEARTBEAT_S = 5.0
"""How often a node rewrites its presence hash and reads the others'."""
PRESENCE_TTL_S = 15.0
"""A node that stops writing its hash is gone after this long (three missed heartbeats). Others
drop a node whose hash stays missing for a heartbeat, so a dead node's users are gone within
TTL + 2 heartbeats = 25 s, inside SPEC's 30 s."""
CONNECT_WAIT_S = 5.0
"""start() waits this long for Redis before serving local connections only (and retrying)."""
_OUTBOX_MAX = 100_000
_BACKOFF_MIN_S = 0.1
_BACKOFF_MAX_S = 5.0
_SEQ_FIELD = "#seq"  # user ids never start with "#"

# Header field names, short because every push carries them.
_NODE, _KIND, _USERS, _WALL, _CODE, _HAS_FRAME, _SIDE, _SEQ = "n", "k", "u", "w", "c", "f", "s", "q"
PUSH, DISCONNECT, CAME, LEFT, BYE, BEAT = "p", "d", "+", "-", "bye", "hb"


def encode(header: dict[str, Any], body: bytes = b"") -> bytes:
    """One channel message: the header as one JSON line (orjson never writes a raw newline), then body."""
    return orjson.dumps(header) + b"\n" + body


def decode(data: bytes) -> tuple[dict[str, Any], bytes]:
    head, _, body = data.partition(b"\n")
    return orjson.loads(head), body


@dataclass(slots=True)
class _Peer:
    """What this node knows of another one."""

    seq: int = 0
    users: dict[str, str] = field(default_factory=dict)
    """user id -> side, of the users with a connection there."""
    stale: bool = False
    """An announcement was missed: load its hash at the next sync even if seq looks current."""
    missing_since: float | None = None
    """When a sync first found its hash gone (after a Redis restart, hashes reappear within a
    heartbeat: only a hash missing for longer means the node is dead)."""


@dataclass(slots=True)
class _Change:
    """A presence change waiting in the outbox: the hash update and its announcement."""

    user_id: str
    side: str
    present: bool
    seq: int
    message: bytes


class RedisBus(Bus):
    """Bus of a cluster node. `connection_count` stays node-local: the per-customer connection
    limit (SPEC §8) counts connections on this node only, since a cluster-wide count would need a
    round trip to Redis on every login; `is_present` covers the whole cluster."""

    def __init__(
        self,
        url: str,
        store: Store,
        *,
        node_id: str | None = None,
        heartbeat_s: float = HEARTBEAT_S,
        ttl_s: float = PRESENCE_TTL_S,
        connect_wait_s: float = CONNECT_WAIT_S,
    ) -> None:
        self.local = LocalBus()
        self.url = url
        self.store = store
        self.node_id = node_id or uuid.uuid4().hex
        self.heartbeat_s = heartbeat_s
        self.ttl_s = ttl_s
        self.connect_wait_s = connect_wait_s
        self.cluster_id = ""
        self.channel = b""
        self.presence_prefix = ""
        self._key = ""
        self._peers: dict[str, _Peer] = {}
        self._watchers: list[PresenceWatcher] = []
        self._seq = 0
        self._key_seq = 0
        self._outbox: list[bytes | _Change] = []
        self._dropped = 0
        self._writing = False
        self._subscribed = False
        self._heard_at = 0.0
        self._closing = False
        self._wake = asyncio.Event()
        self._resync = asyncio.Event()
        self._ready = asyncio.Event()
        self._clients: list[aioredis.Redis] = []
        self._tasks: dict[str, asyncio.Task[None]] = {}

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        # The cluster id lives in the database, so every node of one database agrees on it and
        # two clusters (or test runs) sharing one Redis never hear each other.
        self.cluster_id = await self.store.meta("cluster_id", lambda: uuid.uuid4().hex)
        prefix = f"parley:{self.cluster_id}"
        self.channel = f"{prefix}:bus".encode()
        self.presence_prefix = f"{prefix}:presence:"
        self._key = self.presence_prefix + self.node_id
        writer, reader, subscriber = (
            aioredis.Redis.from_url(self.url, socket_connect_timeout=2.0, socket_timeout=timeout)
            for timeout in (10.0, 10.0, None)
        )
        self._clients = [writer, reader, subscriber]
        loop = asyncio.get_running_loop()
        self._tasks = {
            "writer": loop.create_task(self._write_loop(writer), name="bus-writer"),
            "subscriber": loop.create_task(self._read_loop(subscriber), name="bus-subscriber"),
            "sync": loop.create_task(self._sync_loop(reader), name="bus-sync"),
        }
        # Accept connections only once this node hears the others and knows who is where, so its
        # first users get every cross-node push; with Redis down, serve locally and keep trying.
        try:
            async with asyncio.timeout(self.connect_wait_s):
                await self._ready.wait()
        except TimeoutError:
            log.warning("redis not reachable yet; serving this node's connections only", extra={"url": self._safe_url})
        else:
            log.info("joined the cluster", extra={"cluster_id": self.cluster_id, "node_id": self.node_id})

    async def stop(self) -> None:
        """Say goodbye (the others give this node's agents their grace period rather than dropping
        them at once), remove the presence hash, and stop the tasks."""
        self._closing = True
        writer = self._tasks.get("writer")
        if writer is not None and not writer.done() and self._writing:
            self._wake.set()
            with contextlib.suppress(Exception):  # TimeoutError included: Redis too slow to say goodbye
                async with asyncio.timeout(3.0):
                    await asyncio.shield(writer)
        for task in self._tasks.values():
            task.cancel()
        # Stopping must never hang a shutdown: each wait is bounded (a Redis connection caught
        # mid-reconnect has been seen to never finish closing).
        with contextlib.suppress(Exception):
            async with asyncio.timeout(3.0):
                await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        for client in self._clients:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await client.aclose()
        self._tasks.clear()
        self._clients.clear()

    # -- the Bus interface ---------------------------------------------------------------

    def watch_presence(self, watcher: PresenceWatcher) -> None:
        self._watchers.append(watcher)

    def attach(self, conn: Connection) -> None:
        first = not self.local.is_present(conn.user_id)
        self.local.attach(conn)
        if first:
            self._announce(conn.user_id, conn.side, True)

    def detach(self, conn: Connection) -> None:
        was = self.local.is_present(conn.user_id)
        self.local.detach(conn)
        if was and not self.local.is_present(conn.user_id):
            self._announce(conn.user_id, conn.side, False)

    def connection_count(self, user_id: str) -> int:
        return self.local.connection_count(user_id)

    def is_present(self, user_id: str) -> bool:
        if self.local.is_present(user_id):
            return True
        return any(user_id in peer.users for peer in self._peers.values())

    def publish(
        self, user_ids: Iterable[str], frame: bytes, *, exclude: int | None = None, t0: float | None = None
    ) -> None:
        users = list(user_ids)
        self.local.publish(users, frame, exclude=exclude, t0=t0)
        # Always sent, even for users this node believes to be local only: one of them may have
        # just connected elsewhere, and its announcement may not have arrived yet.
        if users and self._writing:
            header: dict[str, Any] = {_NODE: self.node_id, _KIND: PUSH, _USERS: users}
            if t0 is not None:
                # perf_counter means nothing to another process: send the wall-clock time the
                # request arrived, so the receiver's push-latency metric covers the hop too.
                header[_WALL] = time.time() - (time.perf_counter() - t0)
            self._send(encode(header, frame))

    def disconnect_user(self, user_id: str, last_frame: bytes | None, code: int) -> None:
        self.local.disconnect_user(user_id, last_frame, code)
        if self._writing:
            header = {_NODE: self.node_id, _KIND: DISCONNECT, _USERS: user_id, _CODE: code}
            header[_HAS_FRAME] = last_frame is not None
            self._send(encode(header, last_frame or b""))

    # -- sending -------------------------------------------------------------------------

    def _send(self, item: bytes | _Change) -> None:
        if len(self._outbox) >= _OUTBOX_MAX:
            # Redis is slower than this node's pushes: drop rather than grow without bound.
            if self._dropped == 0:
                log.warning("bus outbox full; dropping cross-node messages", extra={"max": _OUTBOX_MAX})
            self._dropped += 1
            return
        self._outbox.append(item)
        self._wake.set()

    def _announce(self, user_id: str, side: str, present: bool) -> None:
        self._seq += 1
        if not self._writing:
            return  # the rewrite on reconnecting carries the state, seq included
        header = {_NODE: self.node_id, _KIND: CAME if present else LEFT, _USERS: user_id, _SIDE: side}
        header[_SEQ] = self._seq
        self._send(_Change(user_id, side, present, self._seq, encode(header)))

    async def _write_loop(self, client: aioredis.Redis) -> None:
        backoff = _BACKOFF_MIN_S
        failing = False
        while True:
            try:
                await client.ping()
                self._outbox.clear()  # anything queued while down is stale by now
                await self._rewrite(client)  # sets _writing: from here on, changes queue up
                if failing:
                    log.info("redis reachable again; cluster pushes resume", extra={"url": self._safe_url})
                failing, backoff = False, _BACKOFF_MIN_S
                self._resync.set()
                await self._pump(client)
                return  # stopping, everything sent
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._writing = False
                self._outbox.clear()
                if not failing:
                    log.warning(
                        "redis unreachable; serving this node's connections only",
                        extra={"url": self._safe_url, "error": repr(exc)},
                    )
                failing = True
                if self._closing:
                    return
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX_S)

    async def _rewrite(self, client: aioredis.Redis) -> None:
        """Write this node's whole presence hash, atomically, with its current seq and a fresh TTL."""
        # The snapshot and the flag flip happen together, with no await between: every change
        # after this point queues up behind the rewrite, every change before it is in it.
        mapping: dict[str, str | int] = dict(self.local.users())
        mapping[_SEQ_FIELD] = self._seq
        self._key_seq = self._seq
        self._writing = True
        pipe = client.pipeline(transaction=True)
        pipe.delete(self._key)
        pipe.hset(self._key, mapping=mapping)  # type: ignore[arg-type]
        pipe.pexpire(self._key, int(self.ttl_s * 1000))
        # Heard by this node's own subscriber too: proof that the subscription still works.
        pipe.publish(self.channel, encode({_NODE: self.node_id, _KIND: BEAT}))
        await pipe.execute()

    async def _pump(self, client: aioredis.Redis) -> None:
        loop = asyncio.get_running_loop()
        next_beat = loop.time() + self.heartbeat_s
        while True:
            if loop.time() >= next_beat:
                await self._rewrite(client)
                next_beat = loop.time() + self.heartbeat_s
            if not self._outbox:
                if self._closing:
                    await self._goodbye(client)
                    return
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, next_beat - loop.time())):
                        await self._wake.wait()
                continue
            batch, self._outbox = self._outbox, []
            if self._dropped:
                log.info("bus outbox draining again", extra={"dropped": self._dropped})
                self._dropped = 0
            pipe = client.pipeline(transaction=False)
            touched = False
            for item in batch:
                if isinstance(item, bytes):
                    pipe.publish(self.channel, item)
                    continue
                if item.seq > self._key_seq:  # not yet in the hash (a rewrite may have covered it)
                    # Users first, then seq: a reader between the two sees the new state under
                    # the old seq, which the announcement then confirms; never the reverse.
                    if item.present:
                        pipe.hset(self._key, item.user_id, item.side)
                    else:
                        pipe.hdel(self._key, item.user_id)
                    pipe.hset(self._key, _SEQ_FIELD, item.seq)
                    touched = True
                pipe.publish(self.channel, item.message)
            if touched:
                # An HSET on a hash that vanished (Redis restarted) creates one without a TTL;
                # it must still expire if this node dies before the next rewrite.
                pipe.pexpire(self._key, int(self.ttl_s * 1000))
            await pipe.execute()

    async def _goodbye(self, client: aioredis.Redis) -> None:
        # Goodbye first: a node that lists hashes between the two sees this one leave, not expire.
        pipe = client.pipeline(transaction=False)
        pipe.publish(self.channel, encode({_NODE: self.node_id, _KIND: BYE}))
        pipe.delete(self._key)
        await pipe.execute()
        self._writing = False

    # -- receiving -----------------------------------------------------------------------

    async def _read_loop(self, client: aioredis.Redis) -> None:
        backoff = _BACKOFF_MIN_S
        failing = False
        while True:
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                loop = asyncio.get_running_loop()
                self._heard_at = loop.time()
                while True:
                    msg = await pubsub.get_message(timeout=self.heartbeat_s)
                    if msg is None:
                        # A link that died without a reset reads as silence: this node's own
                        # heartbeat missing three times while its writer works means that.
                        if self._writing and loop.time() - self._heard_at > 3 * self.heartbeat_s:
                            raise ConnectionError("no message on the bus channel, not even our own heartbeat")
                        continue
                    if msg["type"] == "message":
                        self._receive(msg["data"])
                    elif msg["type"] == "subscribe":
                        # Also after redis-py reconnected by itself: announcements may have been
                        # missed meanwhile, so reload who is where.
                        self._subscribed = True
                        self._resync.set()
                        if failing:
                            log.info("bus subscription restored", extra={"url": self._safe_url})
                        failing, backoff = False, _BACKOFF_MIN_S
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._subscribed = False
                if not failing:
                    log.warning("bus subscription lost", extra={"url": self._safe_url, "error": repr(exc)})
                failing = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX_S)
            finally:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(1.0):
                        await pubsub.aclose()

    def _receive(self, data: bytes) -> None:
        try:
            self._heard_at = asyncio.get_running_loop().time()
            header, body = decode(data)
            node = header[_NODE]
            if node == self.node_id:
                return
            kind = header[_KIND]
            if kind == PUSH:
                wall = header.get(_WALL)
                t0 = None if wall is None else time.perf_counter() - max(0.0, time.time() - wall)
                self.local.publish(header[_USERS], body, t0=t0)
            elif kind == DISCONNECT:
                self.local.disconnect_user(header[_USERS], body if header.get(_HAS_FRAME) else None, header[_CODE])
            elif kind in (CAME, LEFT):
                self._peer_change(node, header[_SEQ], header[_USERS], header[_SIDE], kind == CAME)
            elif kind == BYE:
                self._drop_peer(node, "left")
        except Exception:
            log.exception("bad bus message", extra={"size": len(data)})

    # -- the view of the other nodes -------------------------------------------------------

    def _peer_change(self, node: str, seq: int, user_id: str, side: str, present: bool) -> None:
        peer = self._peers.setdefault(node, _Peer())
        if seq <= peer.seq:
            return  # a snapshot taken after this change was applied already
        if seq != peer.seq + 1:
            peer.stale = True  # a change in between was missed: its hash tells the rest
        peer.seq = seq
        was = self.is_present(user_id)
        if present:
            peer.users[user_id] = side
        else:
            peer.users.pop(user_id, None)
        self._changed(user_id, side, was, "left")

    def _apply_snapshot(self, node: str, seq: int, users: dict[str, str]) -> None:
        peer = self._peers.get(node)
        if peer is not None and seq < peer.seq:
            return  # older than announcements already applied; the next sync sees a newer one
        old = peer.users if peer is not None else {}
        moved = {u: old.get(u) or users[u] for u in old.keys() ^ users.keys()}
        was = {u: self.is_present(u) for u in moved}
        self._peers[node] = _Peer(seq, users)
        for user_id, side in moved.items():
            self._changed(user_id, side, was[user_id], "left")

    def _drop_peer(self, node: str, how: PresenceChange) -> None:
        peer = self._peers.pop(node, None)
        if peer is None:
            return
        log.info("node left the cluster", extra={"node_id": node, "how": how, "users": len(peer.users)})
        for user_id, side in peer.users.items():
            self._changed(user_id, side, True, how)

    def _changed(self, user_id: str, side: str, was: bool, gone: PresenceChange) -> None:
        now = self.is_present(user_id)
        if was == now:
            return
        for watcher in self._watchers:
            try:
                watcher(user_id, side, "came" if now else gone)
            except Exception:
                log.exception("presence watcher failed", extra={"user_id": user_id})

    async def _sync_loop(self, client: aioredis.Redis) -> None:
        failing = False
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.heartbeat_s):
                    await self._resync.wait()
            self._resync.clear()
            if not self._subscribed:
                continue  # a snapshot is only safe to apply while announcements are heard
            try:
                await self._sync(client)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not failing:
                    log.warning("cannot read the cluster's presence", extra={"error": repr(exc)})
                failing = True
                continue
            failing = False
            if self._writing:
                self._ready.set()

    async def _sync(self, client: aioredis.Redis) -> None:
        """Reload the hashes that changed behind our back; drop the nodes whose hash is gone."""
        known = set(self._peers)  # before listing: a node announced meanwhile may be missed by SCAN
        prefix = self.presence_prefix.encode()
        keys = [k async for k in client.scan_iter(match=prefix + b"*", count=1000)]
        nodes = [(k, k[len(prefix) :].decode()) for k in keys]
        nodes = [(k, n) for k, n in nodes if n != self.node_id]
        pipe = client.pipeline(transaction=False)
        for key, _ in nodes:
            pipe.hget(key, _SEQ_FIELD)
        seqs = await pipe.execute() if nodes else []
        alive = {node for (_, node), seq in zip(nodes, seqs, strict=True) if seq is not None}
        wanted = []
        for (key, node), seq in zip(nodes, seqs, strict=True):
            peer = self._peers.get(node)
            if seq is not None and (peer is None or peer.stale or int(seq) != peer.seq):
                wanted.append((key, node))
        if wanted:
            pipe = client.pipeline(transaction=False)
            for key, _ in wanted:
                pipe.hgetall(key)
            for (_, node), fields in zip(wanted, await pipe.execute(), strict=True):
                if not fields:
                    alive.discard(node)  # expired between the two reads
                    continue
                seq = int(fields.pop(_SEQ_FIELD.encode(), b"0"))
                self._apply_snapshot(node, seq, {u.decode(): s.decode() for u, s in fields.items()})
        now = time.monotonic()
        for node in known:
            peer = self._peers.get(node)
            if peer is None:
                continue
            if node in alive:
                peer.missing_since = None
            elif peer.missing_since is None:
                peer.missing_since = now
            elif now - peer.missing_since >= self.heartbeat_s:
                # No goodbye, no hash: the node died (or lost Redis for longer than the TTL).
                self._drop_peer(node, "expired")

    # -- helpers -------------------------------------------------------------------------

    @property
    def _safe_url(self) -> str:
        """The broker URL without its password, for logs."""
        scheme, sep, rest = self.url.partition("://")
        return f"{scheme}{sep}{rest.rpartition('@')[2]}" if sep else self.url

    def peers(self) -> dict[str, set[str]]:
        """node id -> users present there, as this node sees it (tests, debugging)."""
        return {node: set(peer.users) for node, peer in self._peers.items()}
