"""Customer events (SPEC §4, §5, §8, §12): send_event, idempotency, sizes, ordering, sneak peeks, last seen."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from tests.integration.test_customer_support import (
    EVENT_KEYS,
    RFC3339_US,
    assert_error,
    drain,
    event_push,
    message,
    new_customer,
    no_push_of,
    now,
    own,
)
from tests.support import Server

# -- send_event ----------------------------------------------------------------------------


async def test_send_event_answers_the_stored_event(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat()
    before = now()
    sent = await me.call("send_event", {"chat_id": chat["id"], "event": message("hello world")})
    after = now()
    assert set(sent) == {"thread_id", "event"}
    assert sent["thread_id"] == chat["thread"]["id"]
    event = sent["event"]
    assert set(event) >= EVENT_KEYS
    assert event["type"] == "message"
    assert event["text"] == "hello world"
    assert event["author_id"] == me.id
    assert event["recipients"] == "all"
    assert isinstance(event["id"], str) and event["id"]
    assert isinstance(event["order"], int)
    assert "custom_id" not in event
    assert RFC3339_US.match(event["created_at"]), event["created_at"]
    assert isinstance(event["timestamp"], int) and before <= event["timestamp"] <= after
    created = datetime.strptime(event["created_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert int(created.timestamp()) == event["timestamp"]
    assert await me.events(chat["id"]) == [event]
    await me.rtm.close()


async def test_send_event_of_every_customer_type(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat()
    events: list[dict[str, Any]] = [
        message("with props", properties={"ns": {"flag": True}}),
        {"type": "filled_form", "fields": [{"type": "email", "name": "email", "label": "E-mail", "value": "a@b.c"}]},
        {"type": "custom", "content": {"any": {"json": [1, None, "x"]}}},
        message("explicit recipients", recipients="all"),
    ]
    stored = [(await me.call("send_event", {"chat_id": chat["id"], "event": e}))["event"] for e in events]
    assert stored[0]["properties"] == {"ns": {"flag": True}}
    assert stored[1]["fields"] == events[1]["fields"]
    assert stored[2]["content"] == events[2]["content"]
    assert stored[3]["recipients"] == "all"
    assert await me.events(chat["id"]) == stored
    await me.rtm.close()


@pytest.mark.parametrize(
    ("event", "type_", "code", "field"),
    [
        ({"type": "system_message", "text": "agent joined"}, "validation", 400, "system_message"),
        ({"type": "system_message", "text": "x", "system_message_type": "routing"}, "validation", 400, None),
        (message("psst", recipients="agents"), "validation", 400, "recipients"),
        (message("x", recipients="nobody"), "validation", 400, "recipients"),
        ({"type": "message"}, "validation", 400, "text"),
        ({"type": "message", "text": 5}, "validation", 400, "text"),
        ({"type": "sticker", "text": "x"}, "validation", 400, None),
        ({"text": "no type"}, "validation", 400, "type"),
        (message("x", colour="red"), "validation", 400, "colour"),
        ({"type": "custom", "content": "not an object"}, "validation", 400, "content"),
        (
            {"type": "filled_form", "fields": [{"type": "text", "name": "a", "label": "A", "value": "v", "x": 1}]},
            "validation",
            400,
            "x",
        ),
        (message("x", properties={"bad ns!": {"a": 1}}), "validation", 400, None),
        (message("x" * 16385), "entity_too_large", 413, "text"),
        (message("é" * 8193), "entity_too_large", 413, "text"),
        (message("😀" * 4097), "entity_too_large", 413, "text"),
        ({"type": "file", "url": "https://elsewhere.example/cat.png"}, "validation", 400, "url"),
    ],
)
async def test_send_event_refused_stores_and_pushes_nothing(
    server: Server, http: aiohttp.ClientSession, event: dict[str, Any], type_: str, code: int, field: str | None
) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat()
    other = await me.connect()
    assert_error(await me.error("send_event", {"chat_id": chat["id"], "event": event}), type_, code, field)
    assert await me.events(chat["id"]) == []
    await no_push_of(other, "incoming_event", within=0.1)
    await other.close()
    await me.rtm.close()


@pytest.mark.parametrize("text", ["x" * 16384, "é" * 8192, "😀" * 4096, "€" * 5461 + "a"])
async def test_message_of_exactly_16_kib_is_fine(server: Server, http: aiohttp.ClientSession, text: str) -> None:
    assert len(text.encode()) == 16384
    me = await new_customer(server, http)
    chat = await me.start_chat()
    sent = await me.say(chat["id"], text)
    assert sent["event"]["text"] == text
    assert (await me.events(chat["id"]))[0]["text"] == text
    await me.rtm.close()


async def test_send_event_needs_chat_id_and_event(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat()
    assert_error(await me.error("send_event", {"event": message("x")}), "validation", 400, "chat_id")
    assert_error(await me.error("send_event", {"chat_id": chat["id"]}), "validation", 400, "event")
    assert_error(await me.error("send_event", {"chat_id": "NOSUCHCHAT", "event": message("x")}), "not_found", 404)
    assert await me.events(chat["id"]) == []
    await me.rtm.close()


async def test_send_event_after_close_opens_a_new_thread(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat({"chat": {"properties": {"keep": {"me": 1}}}})
    first = await me.say(chat["id"], "in thread one")
    await me.close(chat["id"])
    second = await me.say(chat["id"], "in thread two")
    assert second["thread_id"] != first["thread_id"]
    summary = await me.threads_summary(chat["id"])
    assert [t["thread_id"] for t in summary] == [first["thread_id"], second["thread_id"]]
    assert summary[1]["order"] > summary[0]["order"]
    threads = await me.threads(chat["id"])
    assert [t["active"] for t in threads] == [False, True]
    assert [[e["text"] for e in own(t["events"])] for t in threads] == [["in thread one"], ["in thread two"]]
    item = await me.chat(chat["id"])
    assert item["properties"] == {"keep": {"me": 1}}
    assert item["order"] == summary[1]["order"]  # a chat's order is its newest thread's
    # The next event goes to the (now active) second thread.
    third = await me.say(chat["id"], "still two")
    assert third["thread_id"] == second["thread_id"]
    await me.rtm.close()


async def test_reopened_chat_moves_to_the_front(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    old = await me.start_chat()
    await me.close(old["id"])
    newer = await me.start_chat()
    assert [c["id"] for c in (await me.chats())["chats_summary"]] == [newer["id"], old["id"]]
    await me.say(old["id"], "reopen")
    assert [c["id"] for c in (await me.chats())["chats_summary"]] == [old["id"], newer["id"]]
    await me.rtm.close()


async def test_event_order_strictly_increases_across_threads(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat({"chat": {"thread": {"events": [message("a"), message("b")]}}})
    answered = [e["order"] for e in own(chat["thread"]["events"])]
    for round_ in range(3):
        for i in range(3):
            answered.append((await me.say(chat["id"], f"{round_}.{i}"))["event"]["order"])
        await me.close(chat["id"])
    stored = await me.events(chat["id"])
    orders = [e["order"] for e in stored]
    assert orders == answered
    assert all(a < b for a, b in itertools.pairwise(orders)), orders
    assert len({e["id"] for e in stored}) == len(stored)
    stamps = [e["created_at"] for e in stored]
    assert stamps == sorted(stamps)
    await me.rtm.close()


async def test_custom_id_makes_send_event_idempotent(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat()
    other = await me.connect()
    first = await me.say(chat["id"], "once", custom_id="abc-1")
    assert first["event"]["custom_id"] == "abc-1"
    assert (await event_push(other))["event"] == first["event"]
    again = await me.say(chat["id"], "once", custom_id="abc-1")
    assert again == first
    changed = await me.say(chat["id"], "a different text", custom_id="abc-1")
    assert changed == first
    # Also from another connection of the same customer.
    assert await other.call("send_event", {"chat_id": chat["id"], "event": message("x", custom_id="abc-1")}) == first
    assert await me.events(chat["id"]) == [first["event"]]
    await no_push_of(other, "incoming_event")
    await no_push_of(me.rtm, "incoming_event", within=0.05)
    # A different custom_id is a new event.
    fresh = await me.say(chat["id"], "twice", custom_id="abc-2")
    assert fresh["event"]["id"] != first["event"]["id"]
    assert len(await me.events(chat["id"])) == 2
    await other.close()
    await me.rtm.close()


async def test_custom_id_repeat_does_not_reopen_a_closed_chat(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat()
    first = await me.say(chat["id"], "once", custom_id="k")
    await me.close(chat["id"])
    again = await me.say(chat["id"], "once", custom_id="k")
    assert again == first
    threads = await me.threads(chat["id"])
    assert [t["active"] for t in threads] == [False]
    assert [e["id"] for e in own(threads[0]["events"])] == [first["event"]["id"]]
    await me.rtm.close()


async def test_custom_id_is_per_chat(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    one = await me.start_chat()
    two = await me.start_chat()
    a = await me.say(one["id"], "same id", custom_id="dup")
    b = await me.say(two["id"], "same id", custom_id="dup")
    assert a["thread_id"] == one["thread"]["id"]
    assert b["thread_id"] == two["thread"]["id"]
    assert [e["id"] for e in await me.events(one["id"])] == [a["event"]["id"]]
    assert [e["id"] for e in await me.events(two["id"])] == [b["event"]["id"]]
    await me.rtm.close()


async def test_custom_id_from_initial_events_is_remembered(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat({"chat": {"thread": {"events": [message("first", custom_id="w-1")]}}})
    again = await me.say(chat["id"], "first", custom_id="w-1")
    assert again == {"thread_id": chat["thread"]["id"], "event": own(chat["thread"]["events"])[0]}
    assert len(await me.events(chat["id"])) == 1
    await me.rtm.close()


# -- send_sneak_peek -----------------------------------------------------------------------


async def test_sneak_peek_limits(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat()
    cid = chat["id"]
    assert await me.call("send_sneak_peek", {"chat_id": cid, "sneak_peek_text": "é" * 4096}) == {}
    err = await me.error("send_sneak_peek", {"chat_id": cid, "sneak_peek_text": "x" * 4097})
    assert_error(err, "entity_too_large", 413, "sneak_peek_text")
    assert_error(await me.error("send_sneak_peek", {"chat_id": cid}), "validation", 400, "sneak_peek_text")
    err = await me.error("send_sneak_peek", {"chat_id": cid, "sneak_peek_text": 1})
    assert_error(err, "validation", 400, "sneak_peek_text")
    err = await me.error("send_sneak_peek", {"chat_id": "NOSUCHCHAT", "sneak_peek_text": "x"})
    assert_error(err, "not_found", 404)
    # Not stored.
    assert await me.events(cid) == []
    await me.rtm.close()


async def test_sneak_peek_on_a_closed_chat_is_chat_inactive(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat()
    await me.close(chat["id"])
    err = await me.error("send_sneak_peek", {"chat_id": chat["id"], "sneak_peek_text": "hello?"})
    assert_error(err, "chat_inactive", 409)
    # ... and did not reopen it.
    assert [t["active"] for t in await me.threads(chat["id"])] == [False]
    await me.rtm.close()


# -- update_last_seen_timestamp ------------------------------------------------------------


async def test_last_seen_defaults_to_now(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    before = now()
    answer = await me.call("update_last_seen_timestamp", {})
    assert set(answer) == {"timestamp"}
    assert before <= answer["timestamp"] <= now()
    assert (await me.me())["last_seen_timestamp"] == answer["timestamp"]
    await me.rtm.close()


async def test_last_seen_never_goes_backwards(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    t = now() - 100
    assert await me.call("update_last_seen_timestamp", {"timestamp": t}) == {"timestamp": t}
    assert await me.call("update_last_seen_timestamp", {"timestamp": t - 50}) == {"timestamp": t}
    assert await me.call("update_last_seen_timestamp", {"timestamp": t + 10}) == {"timestamp": t + 10}
    assert (await me.me())["last_seen_timestamp"] == t + 10
    await me.rtm.close()


async def test_last_seen_in_the_future(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    t = now() - 10
    await me.call("update_last_seen_timestamp", {"timestamp": t})
    err = await me.error("update_last_seen_timestamp", {"timestamp": now() + 120})
    assert_error(err, "validation", 400, "timestamp")
    assert (await me.me())["last_seen_timestamp"] == t
    # A little ahead (clock skew within 60 s) is accepted but never stored later than now.
    answer = await me.call("update_last_seen_timestamp", {"timestamp": now() + 30})
    assert t < answer["timestamp"] <= now() + 1
    await me.rtm.close()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"timestamp": -1}, "timestamp"),
        ({"timestamp": "now"}, "timestamp"),
        ({"timestamp": 1.5}, "timestamp"),
        ({"chat_id": 5}, "chat_id"),
    ],
)
async def test_last_seen_bad_fields(
    server: Server, http: aiohttp.ClientSession, payload: dict[str, Any], field: str
) -> None:
    me = await new_customer(server, http)
    before = (await me.me())["last_seen_timestamp"]
    assert_error(await me.error("update_last_seen_timestamp", payload), "validation", 400, field)
    assert (await me.me())["last_seen_timestamp"] == before
    await me.rtm.close()


async def test_last_seen_per_chat(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat()
    t = now() - 5
    answer = await me.call("update_last_seen_timestamp", {"chat_id": chat["id"], "timestamp": t})
    assert answer == {"timestamp": t}
    assert (await me.call("update_last_seen_timestamp", {"chat_id": chat["id"], "timestamp": t - 1}))["timestamp"] == t
    err = await me.error("update_last_seen_timestamp", {"chat_id": "NOSUCHCHAT", "timestamp": t})
    assert_error(err, "not_found", 404)
    # The customer's own connections are not told about their own last-seen time.
    other = await me.connect()
    await me.call("update_last_seen_timestamp", {"chat_id": chat["id"]})
    await no_push_of(other, "last_seen_timestamp_updated")
    await other.close()
    await me.rtm.close()


async def test_sneak_peeks_do_not_reach_customer_connections(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat()
    other = await me.connect()
    for i in range(3):
        assert await me.call("send_sneak_peek", {"chat_id": chat["id"], "sneak_peek_text": f"t{i}"}) == {}
    assert all(p["action"] != "incoming_sneak_peek" for p in await drain(other, 0.2))
    await other.close()
    await me.rtm.close()


@pytest.mark.parametrize(
    "field",
    [
        {"author_id": "00000000-0000-0000-0000-000000000000"},
        {"id": "MYOWNID"},
        {"order": 1},
        {"created_at": "2001-01-01T00:00:00.000000Z"},
        {"timestamp": 1},
    ],
)
async def test_server_fields_in_an_event_are_never_taken_from_the_client(
    server: Server, http: aiohttp.ClientSession, field: dict[str, Any]
) -> None:
    """Unknown-to-a-request fields are `validation` (SPEC §3); in no case may a client forge them."""
    me = await new_customer(server, http)
    chat = await me.start_chat()
    frame = await me.rtm.request("send_event", {"chat_id": chat["id"], "event": message("forged?", **field)})
    if frame["success"]:
        event = frame["payload"]["event"]
        ((name, value),) = field.items()
        assert event[name] != value, f"the client set `{name}`"
        assert event["author_id"] == me.id
    else:
        assert_error(frame["payload"]["error"], "validation", 400)
        assert await me.events(chat["id"]) == []
    await me.rtm.close()
