"""A server's life and death (SPEC §1, §2): SIGTERM closes sockets with `server_shutdown` and 1001 and
exits 0; after SIGKILL every acknowledged event is still there; tokens outlive a restart.

Every test here starts its own server on tmp_path; the shared `server` fixture is never stopped."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support import Rtm, Server, agent_token, customer_token, web_call

GOING_AWAY = 1001


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Servers a test started; whatever is still running afterwards is killed."""
    started: list[Server] = []
    yield started
    for srv in started:
        if srv.proc is not None and srv.proc.poll() is None:
            srv.kill9()


def start(servers: list[Server], data_dir: Path, *extra: str) -> Server:
    srv = Server(data_dir, *extra, env={"PARLEY_TOKEN_RATE_PER_MIN": "0"}).start()
    servers.append(srv)
    return srv


async def exit_code(srv: Server, timeout: float = 12.0) -> int:
    assert srv.proc is not None
    proc = srv.proc
    return await asyncio.get_running_loop().run_in_executor(None, lambda: proc.wait(timeout))


def demo_credentials(srv: Server) -> tuple[str, str]:
    line = next(line for line in srv.stdout_lines if line.startswith("agent login:"))
    _, _, email, password = line.split(" ", 3)
    return email, password.strip()


# -- SIGTERM ------------------------------------------------------------------------------------


async def test_sigterm_pushes_server_shutdown_then_closes_1001(
    tmp_path: Path, servers: list[Server], http: aiohttp.ClientSession
) -> None:
    srv = start(servers, tmp_path / "d", "--demo")
    token = await customer_token(http, srv.base)
    first = await Rtm.connect(http, srv.ws_base)
    await first.login(token["access_token"])
    second = await Rtm.connect(http, srv.ws_base)  # a second tab of the same customer
    await second.login(token["access_token"])
    await first.call("start_chat", {})

    assert srv.proc is not None
    srv.proc.send_signal(signal.SIGTERM)

    for rtm in (first, second):
        pushed = await rtm.push("customer_disconnected", timeout=10)
        assert pushed["payload"] == {"reason": "server_shutdown"}
        assert pushed["type"] == "push"
        code = await asyncio.wait_for(rtm.closed, 10)
        assert code == GOING_AWAY
    assert await exit_code(srv) == 0


async def test_sigterm_closes_a_socket_that_never_logged_in(
    tmp_path: Path, servers: list[Server], http: aiohttp.ClientSession
) -> None:
    srv = start(servers, tmp_path / "d", "--demo")
    idle = await Rtm.connect(http, srv.ws_base)
    answer = await idle.request("ping")  # not logged in: an error, and the socket stays open
    assert answer["success"] is False
    assert answer["payload"]["error"]["type"] == "authentication"
    assert srv.proc is not None
    srv.proc.send_signal(signal.SIGTERM)
    code = await asyncio.wait_for(idle.closed, 10)
    assert code == GOING_AWAY
    assert await exit_code(srv) == 0


async def test_sigterm_without_connections_exits_0_and_stops_listening(
    tmp_path: Path, servers: list[Server], http: aiohttp.ClientSession
) -> None:
    srv = start(servers, tmp_path / "d")
    async with http.get(f"{srv.base}/healthz") as resp:
        assert resp.status == 200
    assert srv.stop() == 0
    with pytest.raises(aiohttp.ClientConnectionError):
        async with http.get(f"{srv.base}/healthz", timeout=aiohttp.ClientTimeout(total=3)):
            pass


async def test_answers_before_sigterm_are_delivered(
    tmp_path: Path, servers: list[Server], http: aiohttp.ClientSession
) -> None:
    srv = start(servers, tmp_path / "d", "--demo")
    token = await customer_token(http, srv.base)
    rtm = await Rtm.connect(http, srv.ws_base)
    await rtm.login(token["access_token"])
    chat = (await rtm.call("start_chat", {}))["chat"]
    sent = await rtm.call("send_event", {"chat_id": chat["id"], "event": {"type": "message", "text": "last words"}})
    assert srv.proc is not None
    srv.proc.send_signal(signal.SIGTERM)
    assert (await asyncio.wait_for(rtm.closed, 10)) == GOING_AWAY
    assert await exit_code(srv) == 0

    again = start(servers, tmp_path / "d", "--demo")
    rtm = await Rtm.connect(http, again.ws_base)
    await rtm.login(token["access_token"])
    threads = await rtm.call("get_chat_threads", {"chat_id": chat["id"], "thread_ids": [sent["thread_id"]]})
    assert [e["id"] for e in threads["chat"]["threads"][0]["events"]] == [sent["event"]["id"]]
    await rtm.close()


# -- durability across SIGKILL ----------------------------------------------------------------------


async def all_events(rtm: Rtm, chat_id: str) -> list[dict[str, Any]]:
    summary = await rtm.call("get_chat_threads_summary", {"chat_id": chat_id, "pagination": {"limit": 1000}})
    thread_ids = [t["id"] for t in summary["chat"]["threads_summary"]]
    events: list[dict[str, Any]] = []
    for i in range(0, len(thread_ids), 25):
        got = await rtm.call("get_chat_threads", {"chat_id": chat_id, "thread_ids": thread_ids[i : i + 25]})
        for thread in got["chat"]["threads"]:
            events.extend(thread["events"])
    return events


async def test_acknowledged_events_survive_sigkill(
    tmp_path: Path, servers: list[Server], http: aiohttp.ClientSession
) -> None:
    data = tmp_path / "d"
    srv = start(servers, data, "--demo")
    token = (await customer_token(http, srv.base))["access_token"]
    tabs = [await Rtm.connect(http, srv.ws_base) for _ in range(4)]
    for tab in tabs:
        await tab.login(token)
    chat = (await tabs[0].call("start_chat", {}))["chat"]
    chat_id = chat["id"]

    # 4 connections x 45 sends: within each connection's burst of 50, all in flight at once.
    acked: dict[str, dict[str, Any]] = {}  # custom_id -> stored event
    enough = asyncio.Event()

    async def send(tab: Rtm, custom_id: str) -> None:
        event = {"type": "message", "text": f"text {custom_id}", "custom_id": custom_id}
        frame = await tab.request("send_event", {"chat_id": chat_id, "event": event}, timeout=15)
        assert frame["success"] is True, frame
        acked[custom_id] = frame["payload"]["event"]
        if len(acked) >= 60:
            enough.set()

    tasks = [asyncio.ensure_future(send(tab, f"t{n}-{i}")) for i in range(45) for n, tab in enumerate(tabs)]
    await asyncio.wait_for(enough.wait(), 12)
    srv.kill9()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    snapshot = dict(acked)
    assert len(snapshot) >= 60

    again = start(servers, data, "--demo")
    reader = await Rtm.connect(http, again.ws_base)
    await reader.login(token)  # the token from before the crash still works
    stored = await all_events(reader, chat_id)
    by_id = {e["id"]: e for e in stored}
    orders = [e["order"] for e in stored]
    assert orders == sorted(orders) and len(set(orders)) == len(orders)
    for custom_id, event in snapshot.items():
        assert event["id"] in by_id, f"acknowledged event {custom_id} {event['id']} was lost"
        kept = by_id[event["id"]]
        assert kept["order"] == event["order"]
        assert kept["text"] == event["text"] == f"text {custom_id}"
        assert kept.get("custom_id") == custom_id
        assert kept["created_at"] == event["created_at"]
    # the acknowledged ones appear in the order the server gave them
    acked_in_store = [e["id"] for e in stored if e["id"] in {ev["id"] for ev in snapshot.values()}]
    assert acked_in_store == [ev["id"] for ev in sorted(snapshot.values(), key=lambda ev: ev["order"])]

    # a client that resends an acknowledged event after the crash gets the original back
    some_id, some_event = next(iter(snapshot.items()))
    retry = await reader.call(
        "send_event",
        {"chat_id": chat_id, "event": {"type": "message", "text": f"text {some_id}", "custom_id": some_id}},
    )
    assert retry["event"]["id"] == some_event["id"]
    assert len(await all_events(reader, chat_id)) == len(stored)

    # new events keep strictly increasing order across the restart
    fresh = await reader.call("send_event", {"chat_id": chat_id, "event": {"type": "message", "text": "after"}})
    assert fresh["event"]["order"] > max(orders)
    assert fresh["event"]["id"] not in by_id
    await reader.close()


async def test_chat_structure_survives_sigkill(
    tmp_path: Path, servers: list[Server], http: aiohttp.ClientSession
) -> None:
    data = tmp_path / "d"
    srv = start(servers, data, "--demo")
    token = (await customer_token(http, srv.base))["access_token"]
    rtm = await Rtm.connect(http, srv.ws_base)
    await rtm.login(token)
    started = (
        await rtm.call(
            "start_chat",
            {"chat": {"properties": {"ns": {"a": 1}}, "thread": {"events": [{"type": "message", "text": "first"}]}}},
        )
    )["chat"]
    chat_id = started["id"]
    await rtm.call("close_thread", {"chat_id": chat_id})
    reopened = await rtm.call("send_event", {"chat_id": chat_id, "event": {"type": "message", "text": "second"}})
    await rtm.call("update_chat_properties", {"chat_id": chat_id, "properties": {"ns": {"b": 2}}})
    srv.kill9()

    again = start(servers, data, "--demo")
    rtm = await Rtm.connect(http, again.ws_base)
    login = await rtm.login(token)
    assert login["total_chats"] == 1
    summary = await rtm.call("get_chat_threads_summary", {"chat_id": chat_id})
    thread_ids = [t["id"] for t in summary["chat"]["threads_summary"]]
    assert thread_ids == [started["thread"]["id"], reopened["thread_id"]]
    got = (await rtm.call("get_chat_threads", {"chat_id": chat_id, "thread_ids": thread_ids}))["chat"]
    assert got["properties"] == {"ns": {"a": 1, "b": 2}}
    assert [t["active"] for t in got["threads"]] == [False, True]
    texts = [[e["text"] for e in t["events"] if e["type"] == "message"] for t in got["threads"]]
    assert texts == [["first"], ["second"]]
    await rtm.close()


# -- tokens across a restart ----------------------------------------------------------------------------


async def test_customer_tokens_survive_restart(
    tmp_path: Path, servers: list[Server], http: aiohttp.ClientSession
) -> None:
    data = tmp_path / "d"
    srv = start(servers, data, "--demo")
    token = await customer_token(http, srv.base)
    assert srv.stop() == 0

    again = start(servers, data, "--demo")
    rtm = await Rtm.connect(http, again.ws_base)
    login = await rtm.login(token["access_token"])
    assert login["customer_id"] == token["customer_id"]
    await rtm.close()
    status, body = await web_call(http, again.base, token["access_token"], "get_chats_summary")
    assert status == 200, body
    # the refresh token too: a new access token for the same customer
    async with http.post(
        f"{again.base}/v3.0/customer/token", json={"license_id": 1, "refresh_token": token["refresh_token"]}
    ) as resp:
        assert resp.status == 200
        refreshed = await resp.json()
    assert refreshed["customer_id"] == token["customer_id"]


async def test_tokens_survive_sigkill(tmp_path: Path, servers: list[Server], http: aiohttp.ClientSession) -> None:
    data = tmp_path / "d"
    srv = start(servers, data, "--demo")
    token = await customer_token(http, srv.base)
    srv.kill9()
    again = start(servers, data, "--demo")
    status, body = await web_call(http, again.base, token["access_token"], "get_chats_summary")
    assert status == 200, body


async def test_agent_token_survives_restart(tmp_path: Path, servers: list[Server], http: aiohttp.ClientSession) -> None:
    data = tmp_path / "d"
    srv = start(servers, data, "--demo")
    email, password = demo_credentials(srv)
    token = await agent_token(http, srv.base, email, password)
    assert srv.stop() == 0

    again = start(servers, data, "--demo")
    status, body = await web_call(http, again.base, token["access_token"], "get_chats_summary", side="agent")
    assert status == 200, body
    rtm = await Rtm.connect(http, again.ws_base, side="agent")
    answer = await rtm.request("login", {"token": f"Bearer {token['access_token']}"})
    assert answer["success"] is True, answer
    await rtm.close()


async def test_a_different_data_dir_does_not_accept_the_token(
    tmp_path: Path, servers: list[Server], http: aiohttp.ClientSession
) -> None:
    first = start(servers, tmp_path / "a", "--demo")
    token = await customer_token(http, first.base)
    other = start(servers, tmp_path / "b", "--demo")  # its own database, so its own signing key
    status, body = await web_call(http, other.base, token["access_token"], "get_chats_summary")
    assert status == 401, body
    assert body["error"]["type"] == "authentication"
