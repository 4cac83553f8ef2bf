"""RedisBus in one process: its wire format, and several buses (nodes) on the real Redis at
PARLEY_TEST_REDIS_URL (default redis://127.0.0.1:6379/0) with fake connections. Each test uses a
cluster id of its own, so runs never hear each other; skipped when no Redis answers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

redis = pytest.importorskip("redis")

from redis import asyncio as aioredis  # noqa: E402

from parley.bus import redis as bus_redis  # noqa: E402
from parley.bus.redis import RedisBus, decode, encode  # noqa: E402

REDIS_URL = os.environ.get("PARLEY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
FAST = {"heartbeat_s": 0.2, "ttl_s": 1.0}


# -- the wire format ----------------------------------------------------------------------


def test_message_encoding_round_trips() -> None:
    frame = b'{"type":"push","action":"incoming_event","payload":{"text":"two\\nlines \xc3\xa9"}}'
    header = {"n": "node-a", "k": "p", "u": ["c1", "a1"], "w": 1700000000.25}
    data = encode(header, frame)
    assert data.count(b"\n") == 1  # orjson writes no raw newline; the frame's is escaped JSON
    assert data.startswith(b'{"n":"node-a","k":"p","u":["c1","a1"],"w":1700000000.25}\n')
    assert decode(data) == (header, frame)


def test_message_encoding_keeps_any_body_bytes() -> None:
    """The body is opaque: newlines and empty bodies survive (a disconnect without a last frame)."""
    assert decode(encode({"k": "d"}, b"a\nb\n")) == ({"k": "d"}, b"a\nb\n")
    assert decode(encode({"k": "bye"})) == ({"k": "bye"}, b"")


def test_broker_url_password_is_not_logged() -> None:
    bus = RedisBus("redis://user:secret@host:6379/0", _Store("x"))
    assert bus._safe_url == "redis://host:6379/0"


# -- nodes on a real Redis ----------------------------------------------------------------


class _Store:
    """The one Store method the bus uses."""

    def __init__(self, cluster_id: str) -> None:
        self.cluster_id = cluster_id

    async def meta(self, key: str, default: Callable[[], str]) -> str:
        assert key == "cluster_id"
        return self.cluster_id


class FakeConn:
    def __init__(self, conn_id: int, user_id: str, side: str = "customer") -> None:
        self.conn_id = conn_id
        self.user_id = user_id
        self.side = side
        self.frames: list[bytes] = []
        self.closed: tuple[bytes | None, int] | None = None

    def deliver(self, frame: bytes, t0: float | None = None) -> None:
        self.frames.append(frame)

    def disconnect(self, last_frame: bytes | None, code: int) -> None:
        self.closed = (last_frame, code)


async def eventually(check: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


@pytest.fixture
async def cluster() -> AsyncIterator[Callable[..., Awaitable[RedisBus]]]:
    """Start buses (nodes) of one fresh cluster id; stops them all afterwards."""
    try:
        probe = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
        await probe.ping()
        await probe.aclose()
    except (OSError, redis.RedisError) as exc:
        pytest.skip(f"no Redis at {REDIS_URL}: {exc}")
    cluster_id = f"test-{uuid.uuid4().hex}"
    started: list[RedisBus] = []

    async def start(cid: str = cluster_id, **kw: Any) -> RedisBus:
        bus = RedisBus(REDIS_URL, _Store(cid), **{**FAST, **kw})  # type: ignore[arg-type]
        await bus.start()
        started.append(bus)
        return bus

    yield start
    for bus in started:
        await bus.stop()


async def test_pushes_cross_nodes_once_and_skip_the_excluded_connection(cluster: Any) -> None:
    a, b = await cluster(), await cluster()
    here, there, other = FakeConn(1, "u1"), FakeConn(2, "u1"), FakeConn(3, "u2")
    sender = FakeConn(4, "u1")
    a.attach(here)
    a.attach(sender)
    b.attach(there)
    b.attach(other)
    a.publish(["u1"], b"one", exclude=sender.conn_id, t0=0.0)
    a.publish(iter(["u1", "u2"]), b"two")
    b.publish(["u1"], b"three")
    await eventually(lambda: len(there.frames) == 3 and len(here.frames) == 3 and len(other.frames) == 1)
    await asyncio.sleep(0.1)
    # local delivery at once, remote ones in their publisher's order; never twice
    assert here.frames == [b"one", b"two", b"three"]
    assert there.frames == [b"three", b"one", b"two"]
    assert other.frames == [b"two"]
    # the excluded connection is a local connection id of the publisher only
    assert sender.frames == [b"two", b"three"]


async def test_disconnect_user_reaches_every_node(cluster: Any) -> None:
    a, b = await cluster(), await cluster()
    here, there, bystander = FakeConn(1, "banned"), FakeConn(2, "banned"), FakeConn(3, "fine")
    a.attach(here)
    b.attach(there)
    b.attach(bystander)
    a.disconnect_user("banned", b'{"reason":"customer_banned"}', 1008)
    assert here.closed == (b'{"reason":"customer_banned"}', 1008)
    await eventually(lambda: there.closed is not None)
    assert there.closed == (b'{"reason":"customer_banned"}', 1008)
    b.disconnect_user("fine", None, 1001)
    await eventually(lambda: bystander.closed == (None, 1001))


async def test_presence_is_cluster_wide_and_watchers_hear_changes(cluster: Any) -> None:
    a, b = await cluster(), await cluster()
    heard: list[tuple[str, str, str]] = []
    a.watch_presence(lambda *change: heard.append(change))
    first, second = FakeConn(1, "agent-1", "agent"), FakeConn(2, "agent-1", "agent")
    b.attach(first)
    await eventually(lambda: a.is_present("agent-1"))
    assert heard == [("agent-1", "agent", "came")]
    assert a.connection_count("agent-1") == 0  # node-local, for the per-customer limit
    b.attach(second)
    b.detach(first)
    await asyncio.sleep(0.3)
    assert a.is_present("agent-1") and len(heard) == 1
    # present here too: its last connection on b closing changes nothing for a
    mine = FakeConn(3, "agent-1", "agent")
    a.attach(mine)
    await eventually(lambda: "agent-1" in b.peers().get(a.node_id, set()))
    b.detach(second)
    await asyncio.sleep(0.3)
    assert a.is_present("agent-1") and len(heard) == 1
    assert b.is_present("agent-1")  # b sees a's connection
    a.detach(mine)
    await eventually(lambda: not b.is_present("agent-1"))
    assert not a.is_present("agent-1")


async def test_a_late_node_loads_who_is_where(cluster: Any) -> None:
    a = await cluster()
    a.attach(FakeConn(1, "early", "agent"))
    b = await cluster()  # start() returns once b has read a's presence hash
    assert b.is_present("early")
    assert b.peers() == {a.node_id: {"early"}}


async def test_a_dead_node_expires_and_a_stopped_one_leaves(cluster: Any) -> None:
    a, b, c = await cluster(), await cluster(), await cluster()
    heard: list[tuple[str, str, str]] = []
    a.watch_presence(lambda *change: heard.append(change))
    b.attach(FakeConn(1, "on-b", "agent"))
    c.attach(FakeConn(2, "on-c", "agent"))
    await eventually(lambda: a.is_present("on-b") and a.is_present("on-c"))
    # b dies: no goodbye, its hash is left to expire (ttl 1 s here)
    for task in b._tasks.values():
        task.cancel()
    await eventually(lambda: not a.is_present("on-b"), timeout=4.0)
    assert ("on-b", "agent", "expired") in heard
    # c stops cleanly: a hears its goodbye at once, and the hash is gone
    await c.stop()
    await eventually(lambda: not a.is_present("on-c"), timeout=1.0)
    assert ("on-c", "agent", "left") in heard
    probe = aioredis.Redis.from_url(REDIS_URL)
    try:
        assert not await probe.exists(f"{c.presence_prefix}{c.node_id}")
    finally:
        await probe.aclose()


async def test_a_lost_presence_hash_is_written_again(cluster: Any) -> None:
    """Redis restarting empty (or a FLUSHALL) loses the hashes: the next heartbeat rewrites them."""
    a, b = await cluster(), await cluster()
    b.attach(FakeConn(1, "still-here", "agent"))
    await eventually(lambda: a.is_present("still-here"))
    probe = aioredis.Redis.from_url(REDIS_URL)
    try:
        key = f"{b.presence_prefix}{b.node_id}"
        await probe.delete(key)
        await eventually_async(lambda: probe.hexists(key, "still-here"))
        assert 0 < await probe.pttl(key) <= 1000
    finally:
        await probe.aclose()
    await asyncio.sleep(0.5)
    assert a.is_present("still-here")


async def eventually_async(check: Callable[[], Awaitable[Any]], timeout: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def test_missed_announcements_are_caught_up_from_the_hash(cluster: Any) -> None:
    a, b = await cluster(), await cluster()
    b.attach(FakeConn(1, "x", "customer"))
    await eventually(lambda: a.is_present("x"))
    # b's announcement of y never reaches a (lost in a Redis hiccup): a catches up by seq
    real_send = b._send
    b._send = lambda item: None  # type: ignore[method-assign]
    b.attach(FakeConn(2, "y", "customer"))
    b._send = real_send  # type: ignore[method-assign]
    await eventually(lambda: a.is_present("y"), timeout=2.0)
    b.detach(FakeConn(1, "x", "customer"))
    await eventually(lambda: not a.is_present("x"))


async def test_clusters_on_one_redis_do_not_hear_each_other(cluster: Any) -> None:
    a = await cluster()
    other = await cluster(cid=f"test-{uuid.uuid4().hex}")
    assert a.channel != other.channel
    mine, theirs = FakeConn(1, "same-user"), FakeConn(2, "same-user")
    a.attach(mine)
    other.attach(theirs)
    a.publish(["same-user"], b"for cluster a")
    other.disconnect_user("nobody", None, 1008)
    await asyncio.sleep(0.5)
    assert mine.frames == [b"for cluster a"] and theirs.frames == []
    assert other.peers() == {} and a.peers() == {}


async def test_redis_down_at_start_serves_locally() -> None:
    lonely = RedisBus("redis://127.0.0.1:1/0", _Store("nowhere"), connect_wait_s=0.3)  # type: ignore[arg-type]
    await lonely.start()
    try:
        conn = FakeConn(1, "u")
        lonely.attach(conn)
        lonely.publish(["u"], b"local still works")
        assert conn.frames == [b"local still works"] and lonely.is_present("u")
    finally:
        await lonely.stop()


def test_module_constants_fit_spec() -> None:
    """A dead node's users are gone within SPEC's 30 s: the hash's TTL, then missing for one
    heartbeat, seen by a sync that runs every heartbeat."""
    assert bus_redis.PRESENCE_TTL_S + 2 * bus_redis.HEARTBEAT_S <= 30
    assert bus_redis.PRESENCE_TTL_S >= 3 * bus_redis.HEARTBEAT_S  # a late heartbeat or two is no death


# -- Redis going away -----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _redis_server(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not start")


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server to run a private Redis")
async def test_nodes_keep_serving_locally_while_redis_is_down_and_recover() -> None:
    """A private Redis is killed and restarted empty: each node keeps its own pushes going, and
    afterwards the nodes hear each other again and know again who is where."""
    port = _free_port()
    url = f"redis://127.0.0.1:{port}/0"
    server = _redis_server(port)
    buses = [RedisBus(url, _Store("private"), **FAST) for _ in range(2)]  # type: ignore[arg-type]
    try:
        a, b = buses
        for bus in buses:
            await bus.start()
        heard: list[tuple[str, str, str]] = []
        a.watch_presence(lambda *change: heard.append(change))
        here, there = FakeConn(1, "u", "agent"), FakeConn(2, "u", "agent")
        a.attach(here)
        b.attach(there)
        b.attach(FakeConn(3, "only-on-b", "agent"))
        await eventually(lambda: a.is_present("only-on-b"))
        server.kill()
        server.wait()
        a.publish(["u"], b"while down")
        assert here.frames == [b"while down"]
        await eventually(lambda: not a._writing and not b._subscribed, timeout=10.0)
        a.publish(["u"], b"still down")
        assert here.frames == [b"while down", b"still down"]
        b.attach(FakeConn(4, "came-while-down", "customer"))
        server = _redis_server(port)  # empty: every presence hash is gone

        def heard_again() -> bool:
            a.publish(["u"], b"ping")
            return b"ping" in there.frames

        await eventually(heard_again, timeout=15.0)
        await eventually(lambda: a.peers() == {b.node_id: {"u", "only-on-b", "came-while-down"}}, timeout=5.0)
        probe = aioredis.Redis.from_url(url)
        try:
            assert set(await probe.hkeys(f"{b.presence_prefix}{b.node_id}")) == {
                b"#seq",
                b"u",
                b"only-on-b",
                b"came-while-down",
            }
        finally:
            await probe.aclose()
        # b's hash was gone for a moment after the restart: not long enough to count b as dead
        assert ("only-on-b", "agent", "expired") not in heard, heard
    finally:
        for bus in buses:
            await bus.stop()
        server.kill()
        server.wait()
