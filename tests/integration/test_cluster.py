"""A cluster (SPEC §1, §12 Cluster): two `parley serve` processes on one PostgreSQL database and one
Redis act as one server. A customer on one node and an agent on the other share a chat live; tokens,
presence and bans cross nodes; a node killed with SIGKILL drops out of routing within 30 s while its
chats stay active; two clusters sharing one Redis never hear each other.

The module makes a database of its own (dropped at the end) and starts two nodes on it; every test
makes its own licence, so routing never sees another test's agents. Skipped when PostgreSQL
(PARLEY_TEST_DATABASE_URL) or Redis (PARLEY_TEST_REDIS_URL) does not answer.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.test_agent_support import AgentConn, Conn, CustomerConn, agent_ids, message
from tests.support import PARLEY, ROOT, Rtm, Server, admin, agent_token, customer_token, web_call

asyncpg = pytest.importorskip("asyncpg")
redis = pytest.importorskip("redis")

from redis import asyncio as aioredis  # noqa: E402

from parley.bus.redis import encode  # noqa: E402
from tests.pg import ADMIN_URL, create_database, drop_database, with_database  # noqa: E402

REDIS_URL = os.environ.get("PARLEY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ENV = {"PARLEY_TOKEN_RATE_PER_MIN": "0"}
PASSWORD = "password1"

_names = itertools.count(1)


def node(data_dir: Path, url: str) -> Server:
    return Server(data_dir, "--database-url", url, "--broker-url", REDIS_URL, env=ENV)


def stop_all(servers: list[Server]) -> None:
    for srv in servers:
        if srv.proc is not None and srv.proc.poll() is None:
            try:
                srv.stop()
            except subprocess.TimeoutExpired:
                srv.kill9()


@dataclass
class Cluster:
    url: str
    a: Server
    b: Server
    admin_dir: Path

    async def admin(self, *args: str) -> Any:
        return await asyncio.to_thread(
            admin, self.admin_dir, *args, "--database-url", self.url, "--broker-url", REDIS_URL
        )


@pytest.fixture(scope="module")
async def database_url() -> AsyncIterator[str]:
    try:
        probe = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        await probe.ping()
        await probe.aclose()
    except (OSError, redis.RedisError) as exc:
        pytest.skip(f"no Redis at {REDIS_URL}: {exc}")
    try:
        name = await create_database("parley_cluster")
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"no PostgreSQL at {ADMIN_URL}: {exc}")
    try:
        yield with_database(ADMIN_URL, name)
    finally:
        await drop_database(name)


@pytest.fixture(scope="module")
def cluster(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    base = tmp_path_factory.mktemp("cluster")
    servers: list[Server] = []
    try:
        # started one after the other: the first applies the migrations and makes the cluster id
        for name in ("a", "b"):
            servers.append(node(base / name, database_url).start())
        yield Cluster(database_url, servers[0], servers[1], base / "admin")
    finally:
        stop_all(servers)


@dataclass
class Site:
    """A licence of its own on the cluster, with agents made by `parley admin`."""

    cluster: Cluster
    http: aiohttp.ClientSession
    license_id: int
    emails: dict[str, str] = field(default_factory=dict)
    conns: list[Conn] = field(default_factory=list)

    async def add_agent(self, key: str, max_chats: int | None = None) -> str:
        email = f"{key}-{self.license_id}-{next(_names)}@cluster.example"
        args = ["agent", "create", "--license", str(self.license_id), "--email", email, "--name", key.upper()]
        args += ["--password", PASSWORD]
        if max_chats is not None:
            args += ["--max-chats", str(max_chats)]
        made = await self.cluster.admin(*args)
        self.emails[key] = email
        return str(made["agent_id"])

    async def agent(self, srv: Server, key: str, token: str | None = None) -> AgentConn:
        if token is None:
            token = str((await agent_token(self.http, srv.base, self.emails[key], PASSWORD, self.license_id))[
                "access_token"
            ])  # fmt: skip
        rtm = await Rtm.connect(self.http, srv.ws_base, side="agent", license_id=self.license_id)
        answer = await rtm.login(token)
        conn = AgentConn(rtm, answer["my_profile"]["id"], token, answer)
        self.conns.append(conn)
        return conn

    async def customer(self, srv: Server, token: dict[str, Any] | None = None) -> CustomerConn:
        token = token or await customer_token(self.http, srv.base, self.license_id)
        rtm = await Rtm.connect(self.http, srv.ws_base, license_id=self.license_id)
        answer = await rtm.login(token["access_token"])
        conn = CustomerConn(rtm, token["customer_id"], token, answer)
        self.conns.append(conn)
        return conn


@pytest.fixture
async def site(cluster: Cluster, http: aiohttp.ClientSession) -> AsyncIterator[Site]:
    made = await cluster.admin("license", "create", "--name", f"C{next(_names)}")
    s = Site(cluster, http, int(made["license_id"]))
    try:
        yield s
    finally:
        for conn in s.conns:
            await conn.close()


async def users_seen(conn: Conn, chat_id: str, thread_id: str) -> dict[str, dict[str, Any]]:
    got = await conn.call("get_chat_threads", {"chat_id": chat_id, "thread_ids": [thread_id]})
    return {u["id"]: u for u in got["chat"]["users"]}


async def until(check: Any, timeout: float, step: float = 0.25) -> float:
    """Poll the async check until it is true; answers how long that took."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not true within {timeout}s")
        await asyncio.sleep(step)
    return time.monotonic() - started


# -- the tests ----------------------------------------------------------------------------


async def test_a_token_from_one_node_works_on_the_other(site: Site, cluster: Cluster) -> None:
    await site.add_agent("a")
    token = await customer_token(site.http, cluster.a.base, site.license_id)
    on_b = await site.customer(cluster.b, token)
    assert on_b.answer["customer_id"] == token["customer_id"]
    status, body = await web_call(
        site.http, cluster.b.base, token["access_token"], "get_chats_summary", license_id=site.license_id
    )
    assert status == 200 and body["chats_summary"] == [], body
    agent = await agent_token(site.http, cluster.a.base, site.emails["a"], PASSWORD, site.license_id)
    on_b_agent = await site.agent(cluster.b, "a", agent["access_token"])
    assert on_b_agent.answer["my_profile"]["email"] == site.emails["a"]


async def test_customer_on_a_and_agent_on_b_chat_live(site: Site, cluster: Cluster) -> None:
    agent_id = await site.add_agent("a")
    agent = await site.agent(cluster.b, "a")
    customer = await site.customer(cluster.a)
    chat = await customer.start_chat(text="hello from node a")
    assert agent_ids(chat) == [agent_id]
    # the customer (on a) hears who joined; the agent (on b) gets the chat
    added = await customer.wait("chat_user_added", chat_id=chat["id"])
    assert added["user"]["id"] == agent_id and added["user"]["present"] is True
    incoming = await agent.wait("incoming_chat_thread")
    assert incoming["chat"]["id"] == chat["id"]
    assert [e["text"] for e in incoming["chat"]["thread"]["events"] if e["type"] == "message"] == ["hello from node a"]
    # messages both ways, live
    said = await customer.say(chat["id"], "customer → agent")
    got = await agent.wait("incoming_event", where=lambda p: p["event"].get("text") == "customer → agent")
    assert got["event"]["id"] == said["event"]["id"] and got["chat_id"] == chat["id"]
    reply = await agent.call("send_event", {"chat_id": chat["id"], "event": message("agent → customer")})
    got = await customer.wait("incoming_event", where=lambda p: p["event"].get("text") == "agent → customer")
    assert got["event"]["id"] == reply["event"]["id"] and got["thread_id"] == chat["thread"]["id"]
    # a burst arrives in the order it was sent
    for i in range(20):
        await customer.say(chat["id"], f"burst {i}")
    for i in range(20):
        got = await agent.wait("incoming_event", where=lambda p: p["event"].get("text", "").startswith("burst"))
        assert got["event"]["text"] == f"burst {i}"


async def test_one_customer_on_both_nodes_hears_itself(site: Site, cluster: Cluster) -> None:
    on_a = await site.customer(cluster.a)
    on_b = await site.customer(cluster.b, on_a.token)
    chat = await on_a.start_chat(text="from a")
    assert (await on_b.wait("incoming_chat_thread"))["chat"]["id"] == chat["id"]
    said = await on_b.say(chat["id"], "from b")
    got = await on_a.wait("incoming_event", where=lambda p: p["event"].get("text") == "from b")
    assert got["event"]["id"] == said["event"]["id"]
    await on_a.call("update_chat_properties", {"chat_id": chat["id"], "properties": {"ns": {"k": 1}}})
    assert (await on_b.wait("chat_properties_updated"))["properties"] == {"ns": {"k": 1}}
    # each node counts only the requester's own connection out
    await on_a.none("incoming_event", where=lambda p: p["event"].get("text") == "from a", within=0.2)


async def test_a_ban_on_b_disconnects_the_customer_on_a(site: Site, cluster: Cluster) -> None:
    await site.add_agent("a")
    agent = await site.agent(cluster.b, "a")
    customer = await site.customer(cluster.a)
    chat = await customer.start_chat(text="hi")
    await agent.wait("incoming_chat_thread", where=lambda p: p["chat"]["id"] == chat["id"])
    await agent.call("ban_customer", {"customer_id": customer.id, "ban": {"days": 1}})
    kicked = await customer.wait("customer_disconnected")
    assert kicked == {"reason": "customer_banned"}
    assert await asyncio.wait_for(customer.rtm.closed, 5) == 1008
    # and the ban is in the database: node b refuses the same customer too
    rtm = await Rtm.connect(site.http, cluster.b.ws_base, license_id=site.license_id)
    try:
        error = await rtm.error("login", {"token": f"Bearer {customer.access}"})
        assert error["type"] == "customer_banned"
    finally:
        await rtm.close()


async def test_presence_of_an_agent_on_the_other_node(site: Site, cluster: Cluster) -> None:
    agent_id = await site.add_agent("a")
    agent = await site.agent(cluster.b, "a")  # connected on b only
    customer = await site.customer(cluster.a)
    chat = await customer.start_chat(text="hi")
    assert next(u for u in chat["users"] if u["id"] == agent_id)["present"] is True
    assert (await users_seen(customer, chat["id"], chat["thread"]["id"]))[agent_id]["present"] is True
    # the agent sees the customer on a as present, from b
    assert (await users_seen(agent, chat["id"], chat["thread"]["id"]))[customer.id]["present"] is True
    await agent.close()

    async def gone() -> bool:
        return (await users_seen(customer, chat["id"], chat["thread"]["id"]))[agent_id]["present"] is False

    assert await until(gone, 3.0) < 3.0


async def test_an_agent_leaving_b_keeps_its_grace_period_on_a(site: Site, cluster: Cluster) -> None:
    """SPEC §7's 30 s grace counts on every node, whichever node the last connection was on."""
    agent_id = await site.add_agent("a")
    agent = await site.agent(cluster.b, "a")
    await agent.close()
    first = await site.customer(cluster.a)
    chat = await first.start_chat(text="hi")

    async def not_present() -> bool:
        return (await users_seen(first, chat["id"], chat["thread"]["id"]))[agent_id]["present"] is False

    assert agent_ids(chat) == [agent_id]  # in its grace period
    await until(not_present, 3.0)
    # gone from a's view of presence, yet still routable within the grace period
    second = await site.customer(cluster.a)
    chat = await second.start_chat(text="still there?")
    assert agent_ids(chat) == [agent_id]
    back = await site.agent(cluster.a, "a")
    assert {c["id"] for c in back.answer["chats_summary"]} >= {chat["id"]}


async def test_two_nodes_routing_at_once_give_each_chat_one_agent(site: Site, cluster: Cluster) -> None:
    ids = {await site.add_agent("x", max_chats=20), await site.add_agent("y", max_chats=20)}
    x = await site.agent(cluster.a, "x")
    y = await site.agent(cluster.b, "y")
    customers = [await site.customer(cluster.a if i % 2 else cluster.b) for i in range(16)]
    chats = await asyncio.gather(*(c.start_chat(text=f"chat {i}") for i, c in enumerate(customers)))
    for chat in chats:
        assert len(agent_ids(chat)) == 1 and set(agent_ids(chat)) <= ids, chat["users"]
    await asyncio.sleep(0.5)
    got_x = {p["chat"]["id"] for p in x.pushes("incoming_chat_thread")}
    got_y = {p["chat"]["id"] for p in y.pushes("incoming_chat_thread")}
    assert not got_x & got_y
    assert got_x | got_y == {c["id"] for c in chats}
    for customer, chat in zip(customers, chats, strict=True):
        assert len(customer.pushes("chat_user_added", chat_id=chat["id"])) == 1


async def test_a_killed_node_drops_out_within_30_seconds(site: Site, cluster: Cluster, tmp_path: Path) -> None:
    agent_id = await site.add_agent("a")
    doomed = node(tmp_path / "doomed", cluster.url).start()
    try:
        agent = await site.agent(doomed, "a")
        first = await site.customer(cluster.a)
        chat = await first.start_chat(text="before")
        assert agent_ids(chat) == [agent_id]
        stranded = await site.customer(doomed)
        stranded_chat = await stranded.start_chat(text="on the doomed node")
        assert agent_ids(stranded_chat) == [agent_id]
        await agent.wait("incoming_chat_thread", where=lambda p: p["chat"]["id"] == stranded_chat["id"])
        doomed.kill9()
    finally:
        if doomed.proc is not None and doomed.proc.poll() is None:
            doomed.kill9()

    async def agent_gone() -> bool:
        return (await users_seen(first, chat["id"], chat["thread"]["id"]))[agent_id]["present"] is False

    took = await until(agent_gone, 30.0, step=0.5)
    assert took <= 30.0
    # new chats wait in the queue rather than going to the dead node's agent
    newcomer = await site.customer(cluster.a)
    queued = await newcomer.start_chat(text="anyone?")
    assert agent_ids(queued) == []
    assert (await newcomer.wait("queue_position_updated"))["queue"]["position"] == 1
    # the chats stay active
    got = await first.call("get_chat_threads", {"chat_id": chat["id"], "thread_ids": [chat["thread"]["id"]]})
    assert got["chat"]["threads"][0]["active"] is True
    # the customer of the dead node reconnects to a with the same token and finds its chat active
    back = await site.customer(cluster.a, stranded.token)
    assert back.answer["customer_id"] == stranded.id
    [summary] = back.answer["last_chats_summary"]
    assert summary["id"] == stranded_chat["id"]
    said = await back.say(stranded_chat["id"], "after the crash")
    assert said["thread_id"] == stranded_chat["thread"]["id"]


async def test_two_clusters_on_one_redis_do_not_hear_each_other(
    site: Site, cluster: Cluster, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    other_db = await create_database("parley_cluster")
    other_url = with_database(ADMIN_URL, other_db)
    other: Server | None = None
    probe = aioredis.Redis.from_url(REDIS_URL)
    try:
        made = await asyncio.to_thread(
            admin, tmp_path / "admin", "license", "create", "--name", "Other", "--database-url", other_url
        )
        other = node(tmp_path / "other", other_url).start()
        ids = []
        for url in (cluster.url, other_url):
            conn = await asyncpg.connect(url, timeout=5)
            try:
                ids.append(await conn.fetchval("SELECT value FROM meta WHERE key = 'cluster_id'"))
            finally:
                await conn.close()
        mine, theirs = ids
        assert mine and theirs and mine != theirs
        # a customer of each cluster
        here = await site.customer(cluster.a)
        token = await customer_token(http, other.base, int(made["license_id"]))
        rtm = await Rtm.connect(http, other.ws_base, license_id=int(made["license_id"]))
        await rtm.login(token["access_token"])
        there = CustomerConn(rtm, token["customer_id"], token, {})
        site.conns.append(there)
        # each cluster keeps presence under its own id only
        keys = {k.decode() async for k in probe.scan_iter(match="parley:*:presence:*")}
        assert {k for k in keys if k.startswith(f"parley:{theirs}:")}, keys
        assert {k for k in keys if k.startswith(f"parley:{mine}:")}, keys
        for key in keys:
            fields = await probe.hkeys(key)
            if key.startswith(f"parley:{mine}:"):
                assert token["customer_id"].encode() not in fields
            elif key.startswith(f"parley:{theirs}:"):
                assert here.id.encode() not in fields
        # a push addressed to the other cluster's customer on this cluster's channel reaches nobody;
        # on its own cluster's channel it arrives
        frame = b'{"type":"push","action":"test_push","payload":{"n":1}}'
        header = {"n": "test-node", "k": "p", "u": [there.id, here.id]}
        await probe.publish(f"parley:{mine}:bus", encode(header, frame))
        assert (await here.wait("test_push")) == {"n": 1}
        await there.none("test_push", within=0.5)
        await probe.publish(f"parley:{theirs}:bus", encode(header, frame.replace(b'"n":1', b'"n":2')))
        assert (await there.wait("test_push")) == {"n": 2}
        await here.none("test_push", where=lambda p: p == {"n": 2}, within=0.3)
    finally:
        await probe.aclose()
        if other is not None:
            stop_all([other])
        await drop_database(other_db)


async def test_licence_settings_changed_elsewhere_reach_the_nodes(site: Site, cluster: Cluster) -> None:
    """SPEC §12: what `parley admin` (or any process) changes reaches running nodes within 5 s."""
    agent_id = await site.add_agent("a")
    await site.agent(cluster.b, "a")
    customer = await site.customer(cluster.a)
    chat = await customer.start_chat(text="hi")
    user = next(u for u in chat["users"] if u["id"] == agent_id)
    assert "email" not in user
    conn = await asyncpg.connect(cluster.url, timeout=5)
    try:
        await conn.execute(
            "UPDATE licenses SET settings = '{\"public_agent_email\": true}'::jsonb WHERE id = $1", site.license_id
        )
    finally:
        await conn.close()

    async def shown() -> bool:
        # a new connection makes the node look at the licence again (its cache lives 5 s)
        fresh = await site.customer(cluster.a, customer.token)
        users = await users_seen(fresh, chat["id"], chat["thread"]["id"])
        await fresh.close()
        return "email" in users[agent_id]

    assert await until(shown, 7.0, step=0.5) <= 6.5
    # the connection that was open all along sees the new settings too
    assert "email" in (await users_seen(customer, chat["id"], chat["thread"]["id"]))[agent_id]


def test_a_broker_needs_a_shared_database(tmp_path: Path) -> None:
    done = subprocess.run(
        [*PARLEY, "serve", "--port", "0", "--data-dir", str(tmp_path), "--broker-url", REDIS_URL],
        capture_output=True, text=True, cwd=ROOT, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--database-url postgresql://" in lines[0], done.stderr
    assert "listening on" not in done.stdout
