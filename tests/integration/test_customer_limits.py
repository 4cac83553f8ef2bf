"""Abuse limits of SPEC §8 on servers with the default settings (no PARLEY_* overrides)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.test_customer_support import (
    assert_error,
    close_quietly,
    message,
    new_customer,
    next_unmatched,
    own,
    send_raw,
    wait_closed,
)
from tests.support import Rtm, Server, web_call


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with every default limit in force (the shared one switches the token limit off)."""
    srv = Server(tmp_path_factory.mktemp("limited") / "d", "--demo").start()
    yield srv
    srv.stop()


async def burst(rtm: Rtm, frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Send all frames at once, then read the answers (in order)."""
    for i, frame in enumerate(frames):
        await send_raw(rtm, {"request_id": f"b{i}", **frame})
    return [await next_unmatched(rtm) for _ in frames]


async def test_request_burst_on_one_connection_is_limited(limited: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(limited, http)
    answers = await burst(me.rtm, [{"action": "ping"}] * 90)
    assert [a["request_id"] for a in answers] == [f"b{i}" for i in range(90)]
    refused = [a for a in answers if not a["success"]]
    assert refused, "90 requests at once on one connection must hit the 50-request burst limit"
    # The burst is 50 requests, login included.
    assert 49 <= 90 - len(refused) < 90
    for answer in refused:
        assert answer["action"] == "ping"
        assert_error(answer["payload"]["error"], "too_many_requests", 429)
    assert all(a["success"] for a in answers[:49])
    # After a short pause the connection works again.
    await asyncio.sleep(0.2)
    assert await me.call("ping") == {}
    await me.rtm.close()


async def test_refused_requests_do_nothing(limited: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(limited, http)
    chat = await me.start_chat()
    frames = [
        {"action": "send_event", "payload": {"chat_id": chat["id"], "event": message(f"m{i}")}} for i in range(80)
    ]
    answers = await burst(me.rtm, frames)
    stored_texts = [a["payload"]["event"]["text"] for a in answers if a["success"]]
    assert len(stored_texts) < 80
    # Read back over the Web API (its own per-token budget).
    ids = [chat["thread"]["id"]]
    status, body = await web_call(
        http, limited.base, me.access, "get_chat_threads", {"chat_id": chat["id"], "thread_ids": ids}
    )
    assert status == 200, body
    assert [e["text"] for e in own(body["chat"]["threads"][0]["events"])] == stored_texts
    await me.rtm.close()


async def test_other_connections_have_their_own_budget(limited: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(limited, http)
    other = await me.connect()
    answers = await burst(me.rtm, [{"action": "ping"}] * 70)
    assert not all(a["success"] for a in answers)
    assert await other.call("ping") == {}
    await close_quietly(me.rtm, other)


async def test_web_api_burst_per_token_is_limited(limited: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(limited, http)
    results = await asyncio.gather(*(me.web("get_chats_summary", {}) for _ in range(80)))
    refused = [body for status, body in results if status != 200]
    assert refused, "80 simultaneous Web API calls with one token must hit the burst limit"
    assert len(results) - len(refused) >= 49
    for status, body in results:
        if status != 200:
            assert status == 429
            assert_error(body["error"], "too_many_requests", 429)
    # Another customer's token is unaffected.
    other = await new_customer(limited, http)
    assert (await other.web("get_chats_summary", {}))[0] == 200
    await close_quietly(me.rtm, other.rtm)


async def test_21st_connection_of_a_customer_is_refused(limited: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(limited, http)
    tabs = [me.rtm] + [await me.connect() for _ in range(19)]
    extra = await Rtm.connect(http, limited.ws_base)
    await send_raw(extra, {"request_id": "login21", "action": "login", "payload": {"token": me.access}})
    got = await extra.push("customer_disconnected")
    assert got["payload"] == {"reason": "too_many_connections"}
    assert await wait_closed(extra) == 1008
    # The 20 others are untouched.
    for tab in tabs:
        assert await tab.call("ping") == {}
    # Once one tab goes, a new one fits.
    await tabs.pop().close()
    await asyncio.sleep(0.1)
    tabs.append(await me.connect())
    assert await tabs[-1].call("ping") == {}
    await close_quietly(*tabs)


async def test_sneak_peeks_over_the_rate_are_answered_empty(limited: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(limited, http)
    chat = await me.start_chat()
    answers = await burst(
        me.rtm,
        [
            {"action": "send_sneak_peek", "payload": {"chat_id": chat["id"], "sneak_peek_text": f"typing {i}"}}
            for i in range(12)
        ],
    )
    for answer in answers:
        assert answer["success"] is True, answer
        assert answer["payload"] == {}
    await me.rtm.close()


async def test_ten_active_chats_per_customer(limited: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(limited, http)
    chats = [await me.start_chat() for _ in range(10)]
    assert_error(await me.error("start_chat", {}), "limit_reached", 429)
    status, body = await me.web("start_chat", {})
    assert status == 429
    assert_error(body["error"], "limit_reached", 429)
    assert (await me.chats())["pagination"]["total"] == 10
    # Events into active chats are fine.
    await me.say(chats[0]["id"], "still talking")
    # A reopening send_event counts like start_chat.
    await me.close(chats[1]["id"])
    extra = await me.start_chat()
    err = await me.error("send_event", {"chat_id": chats[1]["id"], "event": message("reopen?")})
    assert_error(err, "limit_reached", 429)
    assert [t["active"] for t in await me.threads(chats[1]["id"])] == [False]
    assert await me.events(chats[1]["id"]) == []
    # Closing one makes room again.
    await me.close(extra["id"])
    assert (await me.say(chats[1]["id"], "reopen!"))["thread_id"] != chats[1]["thread"]["id"]
    await me.rtm.close()


def _can_bind(address: str) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((address, 0))
        except OSError:
            return False
    return True


async def test_new_customer_tokens_per_ip(tmp_path: Path) -> None:
    srv = Server(tmp_path / "d", "--demo").start()
    try:
        url = f"{srv.base}/v3.0/customer/token"
        async with (
            aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser,
            aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http,
        ):
            async with browser.post(url, json={"license_id": 1}) as resp:
                assert resp.status == 200
                first = await resp.json()
            for i in range(59):
                async with http.post(url, json={"license_id": 1}) as resp:
                    assert resp.status == 200, (i, await resp.text())
            async with http.post(url, json={"license_id": 1}) as resp:
                assert resp.status == 429
                assert_error((await resp.json())["error"], "too_many_requests", 429)
            # Refreshes are not new customers: they still work ...
            for _ in range(3):
                async with http.post(url, json={"license_id": 1, "refresh_token": first["refresh_token"]}) as resp:
                    assert resp.status == 200, await resp.text()
                    assert (await resp.json())["customer_id"] == first["customer_id"]
            # ... and so does a browser coming back with its cookie.
            async with browser.post(url, json={"license_id": 1}) as resp:
                assert resp.status == 200, await resp.text()
                assert (await resp.json())["customer_id"] == first["customer_id"]
        # The limit is per client address.
        if _can_bind("127.0.0.2"):
            connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
            async with (
                aiohttp.ClientSession(connector=connector) as elsewhere,
                elsewhere.post(url, json={"license_id": 1}) as resp,
            ):
                assert resp.status == 200, await resp.text()
    finally:
        srv.stop()


async def test_server_shutdown_tells_the_customer(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    srv = Server(tmp_path / "d", "--demo").start()
    try:
        me = await new_customer(srv, http)
        idle = await Rtm.connect(http, srv.ws_base)  # not logged in yet
        stopping = asyncio.ensure_future(asyncio.to_thread(srv.stop))
        got = await me.rtm.push("customer_disconnected", timeout=10)
        assert got["payload"] == {"reason": "server_shutdown"}
        assert await wait_closed(me.rtm, 10) == 1001
        assert await wait_closed(idle, 10) == 1001
        assert await stopping == 0
    finally:
        if srv.proc is not None and srv.proc.poll() is None:
            srv.kill9()
