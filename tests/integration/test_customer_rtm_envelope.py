"""Customer RTM envelopes (SPEC §2, §3, §12): request ids, login-first, bad frames, ordering, frame limits."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from tests.integration.test_customer_support import (
    assert_error,
    new_customer,
    next_unmatched,
    send_raw,
    wait_closed,
)
from tests.support import Rtm, Server, customer_token


async def test_success_echoes_request_id_and_action(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    await send_raw(me.rtm, {"request_id": "my id ✓ 42", "action": "get_chats_summary", "payload": {}})
    frame = await next_unmatched(me.rtm)
    assert frame["request_id"] == "my id ✓ 42"
    assert frame["action"] == "get_chats_summary"
    assert frame["type"] == "response"
    assert frame["success"] is True
    assert frame["payload"]["chats_summary"] == []
    await me.rtm.close()


async def test_success_without_request_id_has_none(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    await send_raw(me.rtm, {"action": "ping"})
    frame = await next_unmatched(me.rtm)
    assert frame == {"action": "ping", "type": "response", "success": True, "payload": {}}
    await me.rtm.close()


async def test_error_echoes_request_id_and_action(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    await send_raw(me.rtm, {"request_id": "e1", "action": "get_chat_threads", "payload": {"chat_id": "nope"}})
    frame = await next_unmatched(me.rtm)
    assert frame["request_id"] == "e1"
    assert frame["action"] == "get_chat_threads"
    assert frame["type"] == "response"
    assert frame["success"] is False
    assert set(frame["payload"]) == {"error"}
    assert_error(frame["payload"]["error"], "validation", 400, names="thread_ids")
    await me.rtm.close()


async def test_error_without_request_id_has_none(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    await send_raw(me.rtm, {"action": "get_chat_threads_summary", "payload": {"chat_id": "NOPE"}})
    frame = await next_unmatched(me.rtm)
    assert "request_id" not in frame
    assert frame["success"] is False
    assert_error(frame["payload"]["error"], "not_found", 404)
    await me.rtm.close()


async def test_ping_answers_empty_success(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    frame = await me.rtm.request("ping")
    assert frame["success"] is True and frame["payload"] == {} and frame["action"] == "ping"
    assert await me.call("ping", {}) == {}
    await me.rtm.close()


@pytest.mark.parametrize("raw", ["not json", '{"action": ', "[1, 2]", '"login"', "42", "null", "true"])
async def test_bad_frame_gets_error_without_request_id_and_stays_open(
    server: Server, http: aiohttp.ClientSession, raw: str
) -> None:
    me = await new_customer(server, http)
    await send_raw(me.rtm, raw)
    frame = await next_unmatched(me.rtm)
    assert "request_id" not in frame
    assert frame["type"] == "response"
    assert frame["success"] is False
    assert_error(frame["payload"]["error"], "validation", 400)
    assert await me.call("ping") == {}
    await me.rtm.close()


async def test_bad_frame_before_login_leaves_connection_open(server: Server, http: aiohttp.ClientSession) -> None:
    token = await customer_token(http, server.base)
    rtm = await Rtm.connect(http, server.ws_base)
    await send_raw(rtm, "{{{")
    frame = await next_unmatched(rtm)
    assert frame["success"] is False and "request_id" not in frame
    assert_error(frame["payload"]["error"], "validation", 400)
    assert (await rtm.login(token["access_token"]))["customer_id"] == token["customer_id"]
    await rtm.close()


@pytest.mark.parametrize(
    ("action", "payload"),
    [("get_chats_summary", {}), ("ping", None), ("start_chat", {}), ("no_such_action", {})],
)
async def test_any_action_before_login_is_authentication(
    server: Server, http: aiohttp.ClientSession, action: str, payload: Any
) -> None:
    token = await customer_token(http, server.base)
    rtm = await Rtm.connect(http, server.ws_base)
    frame = await rtm.request(action, payload)
    assert frame["success"] is False
    assert frame["action"] == action
    assert_error(frame["payload"]["error"], "authentication", 401)
    # The connection stays open and login still works.
    login = await rtm.login(token["access_token"])
    assert login["customer_id"] == token["customer_id"]
    # ... and the refused start_chat created nothing.
    assert login["total_chats"] == 0
    await rtm.close()


async def test_failed_login_allows_another_try(server: Server, http: aiohttp.ClientSession) -> None:
    token = await customer_token(http, server.base)
    rtm = await Rtm.connect(http, server.ws_base)
    assert_error(await rtm.error("login", {"token": "Bearer not-a-token"}), "authentication", 401)
    assert_error(await rtm.error("login", {"token": ""}), "authentication", 401)
    assert_error(await rtm.error("login", {}), "validation", 400, names="token")
    assert_error(await rtm.error("login", {"token": token["access_token"], "bogus": 1}), "validation", 400, "bogus")
    # Still not logged in after the failures.
    assert_error(await rtm.error("get_chats_summary", {}), "authentication", 401)
    login = await rtm.call("login", {"token": token["access_token"]})  # no `Bearer ` prefix is fine too
    assert login["customer_id"] == token["customer_id"]
    await rtm.close()


async def test_second_login_is_validation(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    err = await me.error("login", {"token": f"Bearer {me.access}"})
    assert_error(err, "validation", 400)
    assert await me.call("ping") == {}
    await me.rtm.close()


async def test_unknown_action_is_validation(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    frame = await me.rtm.request("send_a_rocket", {})
    assert frame["action"] == "send_a_rocket"
    assert_error(frame["payload"]["error"], "validation", 400, names="send_a_rocket")
    assert await me.call("ping") == {}
    await me.rtm.close()


async def test_missing_action_and_non_object_payload_are_validation(
    server: Server, http: aiohttp.ClientSession
) -> None:
    me = await new_customer(server, http)
    await send_raw(me.rtm, {"request_id": "x1", "payload": {}})
    frame = await next_unmatched(me.rtm)
    assert frame["request_id"] == "x1" and frame["success"] is False
    assert_error(frame["payload"]["error"], "validation", 400, names="action")
    await send_raw(me.rtm, {"request_id": "x2", "action": "get_chats_summary", "payload": [1]})
    frame = await next_unmatched(me.rtm)
    assert frame["request_id"] == "x2" and frame["success"] is False
    assert_error(frame["payload"]["error"], "validation", 400, names="payload")
    await me.rtm.close()


@pytest.mark.parametrize(
    ("action", "payload", "field"),
    [
        ("get_chats_summary", {"bogus": 1}, "bogus"),
        ("get_chats_summary", {"pagination": {"page": 1, "size": 3}}, "size"),
        ("ping", {"extra": True}, "extra"),
        ("start_chat", {"chat": {"colour": "red"}}, "colour"),
        ("start_chat", {"chat": {"thread": {"events": [{"type": "message", "text": "x", "txet": "y"}]}}}, "txet"),
        ("update_customer", {"customer": {"nickname": "bob"}}, "nickname"),
        ("update_customer", {"customer": {"monitoring": {"page": {"uri": "x"}}}}, "uri"),
        ("update_last_seen_timestamp", {"ts": 1}, "ts"),
    ],
)
async def test_unknown_payload_field_is_validation(
    server: Server, http: aiohttp.ClientSession, action: str, payload: dict[str, Any], field: str
) -> None:
    me = await new_customer(server, http)
    before = await me.me()
    assert_error(await me.error(action, payload), "validation", 400, names=field)
    # The failed request changed nothing.
    assert (await me.chats())["pagination"]["total"] == 0
    assert await me.me() == before
    await me.rtm.close()


async def test_unknown_names_inside_properties_and_custom_content_are_fine(
    server: Server, http: aiohttp.ClientSession
) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat({"chat": {"properties": {"anything": {"goes": 1}}}})
    assert chat["properties"] == {"anything": {"goes": 1}}
    custom = {"type": "custom", "content": {"whatever": {"nested": [1, "two"]}, "bogus": None}}
    sent = await me.call("send_event", {"chat_id": chat["id"], "event": custom})
    assert sent["event"]["content"] == custom["content"]
    await me.rtm.close()


async def test_answers_come_in_request_order(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat()
    actions: list[tuple[str, dict[str, Any]]] = []
    for i in range(20):
        match i % 5:
            case 0:
                actions.append(("send_event", {"chat_id": chat["id"], "event": {"type": "message", "text": f"m{i}"}}))
            case 1:
                actions.append(("ping", {}))
            case 2:
                actions.append(("get_chats_summary", {"pagination": {"limit": 25}}))
            case 3:
                actions.append(("no_such_action", {}))
            case _:
                actions.append(("get_chat_threads_summary", {"chat_id": chat["id"]}))
    for i, (action, payload) in enumerate(actions):
        await send_raw(me.rtm, {"request_id": f"ord-{i}", "action": action, "payload": payload})
    answers = [await next_unmatched(me.rtm) for _ in actions]
    assert [a["request_id"] for a in answers] == [f"ord-{i}" for i in range(20)]
    assert [a["action"] for a in answers] == [a for a, _ in actions]
    assert [a["success"] for a in answers] == [a != "no_such_action" for a, _ in actions]
    texts = [e["text"] for e in await me.events(chat["id"])]
    assert texts == [f"m{i}" for i in range(0, 20, 5)]
    await me.rtm.close()


async def test_frame_over_64_kib_closes_with_1009(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    frame = json.dumps({"action": "ping", "payload": {"pad": "x" * (64 * 1024)}})
    assert len(frame.encode()) > 64 * 1024
    await send_raw(me.rtm, frame)
    assert await wait_closed(me.rtm) == 1009


async def test_frame_of_exactly_64_kib_is_read(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat()
    head = json.dumps(
        {
            "request_id": "big",
            "action": "send_event",
            "payload": {"chat_id": chat["id"], "event": {"type": "message", "text": ""}},
        }
    )
    pad = 64 * 1024 - len(head.encode())
    frame = head.replace('"text": ""', '"text": "' + "y" * pad + '"')
    assert len(frame.encode()) == 64 * 1024
    await send_raw(me.rtm, frame)
    answered = asyncio.ensure_future(next_unmatched(me.rtm))
    await asyncio.wait([answered, me.rtm.closed], timeout=5, return_when=asyncio.FIRST_COMPLETED)
    if me.rtm.closed.done():
        answered.cancel()
    assert not me.rtm.closed.done(), f"a frame of exactly 64 KiB closed the connection ({me.rtm.closed.result()})"
    answer = await answered
    # Read and answered (the text is over 16 KiB) rather than cut off.
    assert answer["request_id"] == "big"
    assert_error(answer["payload"]["error"], "entity_too_large", 413)
    assert await me.call("ping") == {}
    await me.rtm.close()


async def test_binary_frame_closes_with_1003(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    await me.rtm.ws.send_bytes(json.dumps({"action": "ping"}).encode())
    assert await wait_closed(me.rtm) == 1003


async def test_binary_frame_before_login_closes_with_1003(server: Server, http: aiohttp.ClientSession) -> None:
    rtm = await Rtm.connect(http, server.ws_base)
    await rtm.ws.send_bytes(b"\x00\x01")
    assert await wait_closed(rtm) == 1003


async def test_websocket_ping_is_answered(server: Server, http: aiohttp.ClientSession) -> None:
    """Control frames count as traffic; the server answers a WebSocket ping with a pong."""
    token = await customer_token(http, server.base)
    ws = await http.ws_connect(f"{server.ws_base}/v3.0/customer/rtm/ws?license_id=1", autoping=False)
    await ws.send_str(json.dumps({"request_id": "l", "action": "login", "payload": {"token": token["access_token"]}}))
    login = await ws.receive_json(timeout=5)
    assert login["success"] is True
    await ws.ping(b"hello")
    msg = await ws.receive(timeout=5)
    assert msg.type == aiohttp.WSMsgType.PONG
    assert msg.data == b"hello"
    await ws.close()


async def test_envelope_author_id_cannot_forge_the_author(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    victim = await new_customer(server, http)
    chat = await me.start_chat()
    await send_raw(
        me.rtm,
        {
            "request_id": "f1",
            "action": "send_event",
            "author_id": victim.id,
            "payload": {"chat_id": chat["id"], "event": {"type": "message", "text": "forged"}},
        },
    )
    frame = await next_unmatched(me.rtm)
    assert frame["request_id"] == "f1"
    if frame["success"]:
        assert frame["payload"]["event"]["author_id"] == me.id
    else:
        assert_error(frame["payload"]["error"], "validation", 400)
    assert all(e["author_id"] == me.id for e in await me.events(chat["id"]))
    await me.rtm.close()
    await victim.rtm.close()


async def test_unknown_envelope_field_is_validation(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    await send_raw(me.rtm, {"request_id": "u1", "action": "ping", "paylod": {}})
    frame = await next_unmatched(me.rtm)
    assert frame["request_id"] == "u1" and frame["success"] is False
    assert_error(frame["payload"]["error"], "validation", 400, "paylod")
    await me.rtm.close()
