"""One customer, several connections (SPEC §2, §6, §12): the others hear of a change, the requester does not."""

from __future__ import annotations

import aiohttp

from tests.integration.test_customer_support import (
    close_quietly,
    drain,
    event_push,
    extra_group,
    message,
    new_customer,
    no_push_of,
    own,
)
from tests.support import Server


async def test_start_chat_pushes_incoming_chat_thread_to_other_connections_only(
    server: Server, http: aiohttp.ClientSession
) -> None:
    me = await new_customer(server, http)
    other = await me.connect()
    chat = await me.start_chat({"chat": {"thread": {"events": [message("hello")]}}})
    got = await other.push("incoming_chat_thread")
    assert got["type"] == "push"
    assert "request_id" not in got
    pushed = got["payload"]["chat"]
    assert pushed["id"] == chat["id"]
    assert pushed["thread"]["id"] == chat["thread"]["id"]
    assert [e["text"] for e in own(pushed["thread"]["events"])] == ["hello"]
    assert pushed["scopes"] == {"groups": [0]}
    await no_push_of(me.rtm, "incoming_chat_thread")
    await close_quietly(me.rtm, other)


async def test_send_event_pushes_incoming_event_to_other_connections_only(
    server: Server, http: aiohttp.ClientSession
) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat()
    other = await me.connect()
    sent = await me.say(chat["id"], "one")
    got = await event_push(other)
    assert got == {"chat_id": chat["id"], "thread_id": sent["thread_id"], "event": sent["event"]}
    await no_push_of(me.rtm, "incoming_event")
    await no_push_of(other, "incoming_event")  # exactly one
    await close_quietly(me.rtm, other)


async def test_every_other_connection_gets_the_push(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat()
    tabs = [await me.connect() for _ in range(3)]
    sent = await me.say(chat["id"], "to all tabs")
    for tab in tabs:
        assert (await event_push(tab))["event"]["id"] == sent["event"]["id"]
    await no_push_of(me.rtm, "incoming_event")
    await close_quietly(me.rtm, *tabs)


async def test_chat_properties_update_pushes_to_other_connections_only(
    server: Server, http: aiohttp.ClientSession
) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat()
    other = await me.connect()
    props = {"rating": {"score": 5, "comment": "great"}}
    assert await me.call("update_chat_properties", {"chat_id": chat["id"], "properties": props}) == {}
    got = (await other.push("chat_properties_updated"))["payload"]
    assert got == {"chat_id": chat["id"], "properties": props}
    await no_push_of(me.rtm, "chat_properties_updated")
    await close_quietly(me.rtm, other)


async def test_thread_properties_update_pushes_to_other_connections_only(
    server: Server, http: aiohttp.ClientSession
) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat()
    other = await me.connect()
    props = {"source": {"type": "facebook"}}
    payload = {"chat_id": chat["id"], "thread_id": chat["thread"]["id"], "properties": props}
    assert await me.call("update_chat_thread_properties", payload) == {}
    got = (await other.push("chat_thread_properties_updated"))["payload"]
    assert got == payload
    await no_push_of(me.rtm, "chat_thread_properties_updated")
    await close_quietly(me.rtm, other)


async def test_scopes_update_pushes_to_other_connections_only(server: Server, http: aiohttp.ClientSession) -> None:
    group = extra_group(server)
    me = await new_customer(server, http)
    chat = await me.start_chat()
    other = await me.connect()
    assert await me.call("update_chat_scopes", {"chat_id": chat["id"], "add_scopes": {"groups": [group]}}) == {}
    got = (await other.push("chat_scopes_updated"))["payload"]
    assert got == {"chat_id": chat["id"], "scopes_added": {"groups": [group]}, "scopes_removed": {"groups": []}}
    await no_push_of(me.rtm, "chat_scopes_updated")
    await close_quietly(me.rtm, other)


async def test_close_thread_pushes_thread_closed_to_other_connections_only(
    server: Server, http: aiohttp.ClientSession
) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat()
    other = await me.connect()
    await me.close(chat["id"])
    got = (await other.push("thread_closed"))["payload"]
    assert got == {"chat_id": chat["id"], "thread_id": chat["thread"]["id"], "user_id": me.id}
    await no_push_of(me.rtm, "thread_closed")
    await close_quietly(me.rtm, other)


async def test_reopening_send_event_pushes_incoming_chat_thread_not_incoming_event(
    server: Server, http: aiohttp.ClientSession
) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat()
    await me.close(chat["id"])
    other = await me.connect()
    sent = await me.say(chat["id"], "back again")
    assert sent["thread_id"] != chat["thread"]["id"]
    got = (await other.push("incoming_chat_thread"))["payload"]["chat"]
    assert got["id"] == chat["id"]
    assert got["thread"]["id"] == sent["thread_id"]
    assert got["thread"]["active"] is True
    assert [e["id"] for e in own(got["thread"]["events"])] == [sent["event"]["id"]]
    others = await no_push_of(other, "incoming_event")
    assert all(p["action"] != "incoming_chat_thread" for p in others), "incoming_chat_thread pushed twice"
    await no_push_of(me.rtm, "incoming_chat_thread", "incoming_event")
    await close_quietly(me.rtm, other)


async def test_sneak_peek_is_not_pushed_to_the_customer(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat()
    other = await me.connect()
    assert await me.call("send_sneak_peek", {"chat_id": chat["id"], "sneak_peek_text": "typing…"}) == {}
    await no_push_of(other, "incoming_sneak_peek")
    await no_push_of(me.rtm, "incoming_sneak_peek")
    await close_quietly(me.rtm, other)


async def test_another_customer_hears_nothing(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    stranger = await new_customer(server, http)
    chat = await me.start_chat()
    await me.say(chat["id"], "private")
    await me.call("update_chat_properties", {"chat_id": chat["id"], "properties": {"a": {"b": 1}}})
    await me.close(chat["id"])
    heard = await drain(stranger.rtm, 0.3)
    assert not any(p["payload"].get("chat_id") == chat["id"] for p in heard), heard
    assert not any(p["payload"].get("chat", {}).get("id") == chat["id"] for p in heard), heard
    await close_quietly(me.rtm, stranger.rtm)


async def test_failed_request_pushes_nothing(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat()
    other = await me.connect()
    too_big = {"chat_id": chat["id"], "properties": {"ns": {"ok": 1, "big": "x" * 5000}}}
    assert (await me.error("update_chat_properties", too_big))["type"] == "entity_too_large"
    assert (await me.error("send_event", {"chat_id": chat["id"], "event": message("x" * 17000)}))["code"] == 413
    await no_push_of(other, "chat_properties_updated", "incoming_event")
    assert (await me.chat(chat["id"]))["properties"] == {}
    await close_quietly(me.rtm, other)
