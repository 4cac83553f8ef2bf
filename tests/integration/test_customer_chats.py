"""Customer chat methods (SPEC §4, §5, §12): login, summaries, threads, start_chat, close_thread, scopes."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.integration.test_customer_support import (
    CUSTOMER_KEYS,
    EVENT_KEYS,
    RFC3339_US,
    THREAD_KEYS,
    Customer,
    assert_error,
    drain,
    extra_group,
    is_system,
    message,
    new_customer,
    own,
)
from tests.support import Rtm, Server, customer_token


async def chat_with_threads(me: Customer, threads: int, events_in_last: int = 1) -> dict[str, Any]:
    """A chat with `threads` threads (all closed but the last); each has one message, the last `events_in_last`."""
    chat = await me.start_chat({"chat": {"thread": {"events": [message("t0")]}}})
    for i in range(1, threads):
        await me.close(chat["id"])
        await me.say(chat["id"], f"t{i}")
    for j in range(1, events_in_last):
        await me.say(chat["id"], f"t{threads - 1}.{j}")
    return chat


# -- login ---------------------------------------------------------------------------------


async def test_login_answer_of_a_new_customer(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    answer = me.login_answer
    assert answer["customer_id"] == me.id
    assert answer["last_chats_summary"] == []
    assert answer["total_chats"] == 0
    path = answer["static_config_path"]
    assert isinstance(path, str) and path.startswith("/")
    async with http.get(server.base + path) as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        assert isinstance(await resp.json(), dict)
    await me.rtm.close()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("last_chats_limit", 0),
        ("last_chats_limit", 26),
        ("last_chats_limit", -1),
        ("last_chats_limit", "5"),
        ("last_chats_limit", 1.5),
        ("last_threads_limit", 0),
        ("last_threads_limit", 26),
        ("last_threads_limit", None),
    ],
)
async def test_login_limits_out_of_range_are_validation(
    server: Server, http: aiohttp.ClientSession, field: str, value: Any
) -> None:
    token = await customer_token(http, server.base)
    rtm = await Rtm.connect(http, server.ws_base)
    assert_error(await rtm.error("login", {"token": token["access_token"], field: value}), "validation", 400, field)
    # Not logged in, and the connection still takes a good login.
    assert (await rtm.login(token["access_token"], **{field: 25}))["customer_id"] == token["customer_id"]
    await rtm.close()


async def test_login_defaults_one_chat_and_ten_threads(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    older = await me.start_chat()
    await me.close(older["id"])
    newest = await chat_with_threads(me, 12, events_in_last=3)
    rtm = await me.connect()
    # Re-login on a fresh connection with no limits given.
    token = me.access
    fresh = await Rtm.connect(http, server.ws_base)
    answer = await fresh.login(token)
    assert answer["total_chats"] == 2
    assert [c["id"] for c in answer["last_chats_summary"]] == [newest["id"]]
    item = answer["last_chats_summary"][0]
    assert item["total_threads"] == 12
    summary = item["last_threads_summary"]
    assert len(summary) == 10
    all_threads = await me.threads_summary(newest["id"])
    assert [t["id"] for t in summary] == [t["thread_id"] for t in all_threads[2:]]
    assert [t["order"] for t in summary] == sorted(t["order"] for t in summary)
    threads = await me.threads(newest["id"], [t["id"] for t in summary])
    assert [t["events_count"] for t in summary] == [len(t["events"]) for t in threads]
    assert [len(own(t["events"])) for t in threads] == [1] * 9 + [3]
    assert item["order"] == summary[-1]["order"]
    await rtm.close()
    await fresh.close()
    await me.rtm.close()


async def test_login_last_chats_summary_shape_and_order(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    first = await me.start_chat({"chat": {"properties": {"p": {"n": 1}}}})
    await me.say(first["id"], "first chat")
    await me.close(first["id"])
    second = await me.start_chat()
    third = await me.start_chat({"chat": {"thread": {"events": [message("hi"), {"type": "custom", "content": {}}]}}})
    await me.say(third["id"], "latest message")
    fresh = await Rtm.connect(http, server.ws_base)
    answer = await fresh.login(me.access, last_chats_limit=25, last_threads_limit=1)
    assert answer["total_chats"] == 3
    items = answer["last_chats_summary"]
    assert [c["id"] for c in items] == [third["id"], second["id"], first["id"]]
    assert [c["order"] for c in items] == sorted((c["order"] for c in items), reverse=True)
    for item in items:
        assert {"id", "order", "users", "properties", "scopes", "last_threads_summary", "total_threads"} <= set(item)
        assert item["scopes"] == {"groups": [0]}
        assert item["total_threads"] == 1
        assert len(item["last_threads_summary"]) == 1
        assert set(item["last_threads_summary"][0]) >= {"id", "order", "events_count"}
        assert me.id in [u["id"] for u in item["users"]]
    assert items[2]["properties"] == {"p": {"n": 1}}
    per_type = items[0]["last_event_per_type"]
    assert per_type["thread_id"] == third["thread"]["id"]
    by_type = {e["type"]: e for e in per_type["events"]}
    assert by_type["message"]["text"] == "latest message"
    assert "custom" in by_type
    [third_thread] = await me.threads(third["id"])
    assert items[0]["last_threads_summary"][0]["events_count"] == len(third_thread["events"])
    assert len(own(third_thread["events"])) == 3
    # A chat with no events has no last event of any type (but what the server wrote itself).
    assert own(items[1].get("last_event_per_type", {}).get("events") or []) == []
    await fresh.close()
    await me.rtm.close()


async def test_login_stores_customer_fields_and_marks_present(server: Server, http: aiohttp.ClientSession) -> None:
    details = {
        "name": "Mary Brown",
        "email": "mary.brown@example.com",
        "monitoring": {
            "page": {"url": "https://shop.example/cart", "title": "Cart", "referrer": "https://search.example/"},
            "timezone": "Europe/Warsaw",
        },
        "properties": {"plan": "gold", "visits": "3"},
    }
    me = await new_customer(server, http, customer=details)
    stored = await me.me()
    assert set(stored) >= CUSTOMER_KEYS
    assert stored["id"] == me.id
    assert stored["type"] == "customer"
    assert stored["present"] is True
    for key in ("name", "email", "monitoring", "properties"):
        assert stored[key] == details[key], key
    chat = await me.start_chat()
    me_in_chat = next(u for u in chat["users"] if u["id"] == me.id)
    assert me_in_chat["name"] == "Mary Brown"
    await me.rtm.close()


async def test_login_with_bad_customer_fields_stores_nothing(server: Server, http: aiohttp.ClientSession) -> None:
    token = await customer_token(http, server.base)
    rtm = await Rtm.connect(http, server.ws_base)
    bad = {"name": "Eve", "properties": {f"k{i}": "v" for i in range(101)}}
    assert_error(await rtm.error("login", {"token": token["access_token"], "customer": bad}), "validation", 400)
    await rtm.login(token["access_token"])
    stored = (await rtm.call("update_customer", {"customer": {}}))["customer"]
    assert stored["name"] != "Eve"
    assert stored["properties"] in ({}, None)
    await rtm.close()


# -- get_chats_summary ---------------------------------------------------------------------


async def test_get_chats_summary_pagination_and_order(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    ids: list[str] = []
    for i in range(11):
        chat = await me.start_chat({"chat": {"thread": {"events": [message(f"chat {i}")]}}})
        await me.close(chat["id"])
        ids.append(chat["id"])
    newest_first = list(reversed(ids))
    default = await me.call("get_chats_summary", {})
    assert default["pagination"]["page"] == 1
    assert default["pagination"]["total"] == 11
    assert [c["id"] for c in default["chats_summary"]] == newest_first[:10]
    orders = [c["order"] for c in default["chats_summary"]]
    assert orders == sorted(orders, reverse=True)
    page2 = await me.call("get_chats_summary", {"pagination": {"page": 2}})
    assert [c["id"] for c in page2["chats_summary"]] == newest_first[10:]
    assert page2["pagination"]["total"] == 11 and page2["pagination"]["page"] == 2
    one = await me.call("get_chats_summary", {"pagination": {"page": 3, "limit": 1}})
    assert [c["id"] for c in one["chats_summary"]] == [newest_first[2]]
    beyond = await me.call("get_chats_summary", {"pagination": {"page": 9, "limit": 25}})
    assert beyond["chats_summary"] == [] and beyond["pagination"]["total"] == 11
    full = await me.call("get_chats_summary", {"pagination": {"limit": 25}})
    assert [c["id"] for c in full["chats_summary"]] == newest_first
    await me.rtm.close()


@pytest.mark.parametrize(
    ("pagination", "field"),
    [
        ({"page": 0}, "page"),
        ({"page": -1}, "page"),
        ({"limit": 0}, "limit"),
        ({"limit": 26}, "limit"),
        ({"limit": "10"}, "limit"),
        ({"offset": 0}, "offset"),
    ],
)
async def test_get_chats_summary_bad_pagination(
    server: Server, http: aiohttp.ClientSession, pagination: dict[str, Any], field: str
) -> None:
    me = await new_customer(server, http)
    assert_error(await me.error("get_chats_summary", {"pagination": pagination}), "validation", 400, field)
    await me.rtm.close()


async def test_get_chats_summary_item_and_last_event(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    empty = await me.start_chat()
    busy = await me.start_chat({"chat": {"properties": {"ns": {"k": "v"}}}})
    await me.say(busy["id"], "first")
    await me.close(busy["id"])
    last = await me.say(busy["id"], "second thread")
    items = (await me.chats())["chats_summary"]
    assert [c["id"] for c in items] == [busy["id"], empty["id"]]
    item = items[0]
    assert {"id", "users", "properties", "scopes", "last_event"} <= set(item)
    assert item["properties"] == {"ns": {"k": "v"}}
    assert item["scopes"] == {"groups": [0]}
    [newest] = await me.threads(busy["id"], [last["thread_id"]])
    assert item["last_event"] == {"thread_id": last["thread_id"], "event": newest["events"][-1]}
    if not is_system(item["last_event"]["event"]):
        assert item["last_event"]["event"] == last["event"]
    assert "last_event" not in items[1] or is_system(items[1]["last_event"]["event"])
    await me.rtm.close()


async def test_get_chats_summary_lists_only_own_chats(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    other = await new_customer(server, http)
    await other.start_chat()
    mine = await me.start_chat()
    answer = await me.chats()
    assert [c["id"] for c in answer["chats_summary"]] == [mine["id"]]
    assert answer["pagination"]["total"] == 1
    await me.rtm.close()
    await other.rtm.close()


# -- get_chat_threads ----------------------------------------------------------------------


async def test_get_chat_threads_returns_threads_in_order_with_events(
    server: Server, http: aiohttp.ClientSession
) -> None:
    me = await new_customer(server, http)
    chat = await chat_with_threads(me, 3, events_in_last=2)
    ids = [t["thread_id"] for t in await me.threads_summary(chat["id"])]
    answer = await me.call("get_chat_threads", {"chat_id": chat["id"], "thread_ids": [ids[2], ids[0], ids[1]]})
    got = answer["chat"]
    assert got["id"] == chat["id"]
    assert {"id", "users", "properties", "scopes", "threads"} <= set(got)
    assert [t["id"] for t in got["threads"]] == ids
    for thread in got["threads"]:
        assert set(thread) >= THREAD_KEYS
        assert RFC3339_US.match(thread["created_at"]), thread["created_at"]
        for event in thread["events"]:
            assert set(event) >= EVENT_KEYS
    assert [t["active"] for t in got["threads"]] == [False, False, True]
    assert [[e["text"] for e in own(t["events"])] for t in got["threads"]] == [["t0"], ["t1"], ["t2", "t2.1"]]
    stamps = [e["created_at"] for t in got["threads"] for e in t["events"]]
    assert stamps == sorted(stamps)
    await me.rtm.close()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"thread_ids": []}, "thread_ids"),
        ({"thread_ids": ["x"] * 26}, "thread_ids"),
        ({}, "thread_ids"),
        ({"thread_ids": "abc"}, "thread_ids"),
        ({"thread_ids": [1]}, "thread_ids"),
    ],
)
async def test_get_chat_threads_bad_thread_ids(
    server: Server, http: aiohttp.ClientSession, payload: dict[str, Any], field: str
) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat()
    assert_error(await me.error("get_chat_threads", {"chat_id": chat["id"], **payload}), "validation", 400, field)
    await me.rtm.close()


async def test_get_chat_threads_needs_chat_id(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat()
    err = await me.error("get_chat_threads", {"thread_ids": [chat["thread"]["id"]]})
    assert_error(err, "validation", 400, "chat_id")
    await me.rtm.close()


async def test_get_chat_threads_25_ids_is_fine(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat()
    answer = await me.call("get_chat_threads", {"chat_id": chat["id"], "thread_ids": [chat["thread"]["id"]] * 25})
    assert [t["id"] for t in answer["chat"]["threads"]] in ([chat["thread"]["id"]], [chat["thread"]["id"]] * 25)
    await me.rtm.close()


async def test_get_chat_threads_unknown_thread_is_not_found(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat()
    other_chat = await me.start_chat()
    for thread_ids in (["NOSUCHTHREAD"], [chat["thread"]["id"], "NOSUCHTHREAD"], [other_chat["thread"]["id"]]):
        err = await me.error("get_chat_threads", {"chat_id": chat["id"], "thread_ids": thread_ids})
        assert_error(err, "not_found", 404)
    await me.rtm.close()


# -- get_chat_threads_summary --------------------------------------------------------------


async def test_get_chat_threads_summary_oldest_first_and_paged(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    chat = await chat_with_threads(me, 4)
    default = await me.call("get_chat_threads_summary", {"chat_id": chat["id"]})
    assert default["chat"]["id"] == chat["id"]
    assert default["pagination"]["offset"] == 0
    assert default["pagination"]["total"] == 4
    summary = default["chat"]["threads_summary"]
    assert len(summary) == 4
    assert summary[0]["thread_id"] == chat["thread"]["id"]
    orders = [t["order"] for t in summary]
    assert orders == sorted(orders) and len(set(orders)) == 4
    page = await me.call("get_chat_threads_summary", {"chat_id": chat["id"], "pagination": {"offset": 1, "limit": 2}})
    assert [t["thread_id"] for t in page["chat"]["threads_summary"]] == [t["thread_id"] for t in summary[1:3]]
    assert page["pagination"]["total"] == 4 and page["pagination"]["offset"] == 1
    last = await me.call("get_chat_threads_summary", {"chat_id": chat["id"], "pagination": {"offset": 3}})
    assert [t["thread_id"] for t in last["chat"]["threads_summary"]] == [summary[3]["thread_id"]]
    past = await me.call("get_chat_threads_summary", {"chat_id": chat["id"], "pagination": {"offset": 10}})
    assert past["chat"]["threads_summary"] == [] and past["pagination"]["total"] == 4
    big = await me.call("get_chat_threads_summary", {"chat_id": chat["id"], "pagination": {"limit": 1000}})
    assert len(big["chat"]["threads_summary"]) == 4
    await me.rtm.close()


async def test_get_chat_threads_summary_default_limit_is_25(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    other = await me.connect()
    chat = await me.start_chat()
    for i in range(25):  # closes on one connection, reopens on the other: neither reaches its burst limit
        assert await me.call("close_thread", {"chat_id": chat["id"]}) == {}
        await other.call("send_event", {"chat_id": chat["id"], "event": message(f"t{i}")})
    default = await other.call("get_chat_threads_summary", {"chat_id": chat["id"]})
    assert len(default["chat"]["threads_summary"]) == 25
    assert default["pagination"]["total"] == 26
    await other.close()
    await me.rtm.close()


@pytest.mark.parametrize(
    ("pagination", "field"),
    [({"offset": -1}, "offset"), ({"limit": 0}, "limit"), ({"limit": 1001}, "limit"), ({"page": 1}, "page")],
)
async def test_get_chat_threads_summary_bad_pagination(
    server: Server, http: aiohttp.ClientSession, pagination: dict[str, Any], field: str
) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat()
    err = await me.error("get_chat_threads_summary", {"chat_id": chat["id"], "pagination": pagination})
    assert_error(err, "validation", 400, field)
    await me.rtm.close()


# -- start_chat ----------------------------------------------------------------------------


async def test_start_chat_defaults(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat()
    assert {"id", "users", "properties", "scopes", "thread"} <= set(chat)
    assert isinstance(chat["id"], str) and chat["id"]
    assert chat["scopes"] == {"groups": [0]}
    assert chat["properties"] == {}
    customer = next(u for u in chat["users"] if u["type"] == "customer")
    assert customer["id"] == me.id
    thread = chat["thread"]
    assert set(thread) >= THREAD_KEYS
    assert thread["active"] is True
    assert own(thread["events"]) == []
    assert thread["properties"] == {}
    assert me.id in thread["user_ids"]
    assert RFC3339_US.match(thread["created_at"])
    # The same chat reads back.
    threads = await me.threads(chat["id"])
    assert [t["id"] for t in threads] == [thread["id"]]
    await me.rtm.close()


async def test_start_chat_with_events_and_properties(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    payload = {
        "chat": {
            "properties": {"source": {"type": "facebook"}},
            "thread": {
                "properties": {"routing": {"campaign": "spring", "score": 1.5}},
                "events": [
                    message("hello there", custom_id="c-1"),
                    {
                        "type": "filled_form",
                        "fields": [{"type": "name", "name": "name", "label": "Name", "value": "Ann"}],
                    },
                    {"type": "custom", "content": {"kind": "cart", "items": [1, 2]}},
                ],
            },
        }
    }
    chat = await me.start_chat(payload)
    assert chat["properties"] == {"source": {"type": "facebook"}}
    assert chat["thread"]["properties"] == {"routing": {"campaign": "spring", "score": 1.5}}
    events = own(chat["thread"]["events"])
    assert [e["type"] for e in events] == ["message", "filled_form", "custom"]
    assert events[0]["text"] == "hello there" and events[0]["custom_id"] == "c-1"
    assert events[1]["fields"][0]["value"] == "Ann"
    assert events[2]["content"] == {"kind": "cart", "items": [1, 2]}
    assert all(e["author_id"] == me.id for e in events)
    orders = [e["order"] for e in events]
    assert orders == sorted(orders) and len(set(orders)) == 3
    [stored] = await me.threads(chat["id"])
    assert own(stored["events"]) == events
    assert stored["properties"] == chat["thread"]["properties"]
    await me.rtm.close()


async def test_start_chat_accepts_chat_events(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat({"chat": {"events": [message("via chat.events")]}})
    assert [e["text"] for e in own(chat["thread"]["events"])] == ["via chat.events"]
    assert [e["text"] for e in await me.events(chat["id"])] == ["via chat.events"]
    await me.rtm.close()


async def test_start_chat_ten_events_ok_eleven_validation(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    ten = await me.start_chat({"chat": {"thread": {"events": [message(str(i)) for i in range(10)]}}})
    assert len(own(ten["thread"]["events"])) == 10
    err = await me.error("start_chat", {"chat": {"thread": {"events": [message(str(i)) for i in range(11)]}}})
    assert_error(err, "validation", 400, "events")
    assert (await me.chats())["pagination"]["total"] == 1
    await me.rtm.close()


async def test_start_chat_access_alias(server: Server, http: aiohttp.ClientSession) -> None:
    group = extra_group(server)
    me = await new_customer(server, http)
    chat = await me.start_chat({"chat": {"access": {"groups": [group]}}})
    assert chat["scopes"] == {"groups": [group]}
    assert "access" not in chat
    assert (await me.chat(chat["id"]))["scopes"] == {"groups": [group]}
    both = await me.start_chat({"chat": {"scopes": {"groups": [0, group]}}})
    assert sorted(both["scopes"]["groups"]) == [0, group]
    await me.rtm.close()


@pytest.mark.parametrize(
    ("chat", "type_", "code"),
    [
        ({"scopes": {"groups": [987654]}}, "group_not_found", 404),
        ({"scopes": {"groups": [0, 987654]}}, "group_not_found", 404),
        ({"access": {"groups": [987654]}}, "group_not_found", 404),
        ({"scopes": {"groups": []}}, "validation", 400),
        ({"scopes": {"groups": ["zero"]}}, "validation", 400),
        ({"scopes": {"groups": [-1]}}, "validation", 400),
        ({"thread": {"events": [{"type": "system_message", "text": "I am the server"}]}}, "validation", 400),
        ({"thread": {"events": [message("psst", recipients="agents")]}}, "validation", 400),
        ({"thread": {"events": [{"type": "carrier_pigeon"}]}}, "validation", 400),
        ({"thread": {"events": [message("ok"), message("x" * 16385)]}}, "entity_too_large", 413),
        ({"properties": {"bad ns": {"a": 1}}}, "validation", 400),
        ({"properties": {"ns": {"big": "x" * 5000}}}, "entity_too_large", 413),
        ({"thread": {"properties": {"ns": {"bad name!": 1}}}}, "validation", 400),
    ],
)
async def test_start_chat_refused_creates_nothing(
    server: Server, http: aiohttp.ClientSession, chat: dict[str, Any], type_: str, code: int
) -> None:
    me = await new_customer(server, http)
    other = await me.connect()
    assert_error(await me.error("start_chat", {"chat": chat}), type_, code)
    assert (await me.chats())["pagination"]["total"] == 0
    assert [p for p in await _pushes(other) if p["action"] == "incoming_chat_thread"] == []
    await other.close()
    await me.rtm.close()


async def _pushes(rtm: Rtm) -> list[dict[str, Any]]:
    return await drain(rtm, 0.1)


# -- close_thread --------------------------------------------------------------------------


async def test_close_thread_closes_it(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat()
    answer = await me.call("close_thread", {"chat_id": chat["id"], "thread_id": chat["thread"]["id"]})
    assert answer == {}
    [thread] = await me.threads(chat["id"])
    assert thread["active"] is False
    assert_error(await me.error("close_thread", {"chat_id": chat["id"]}), "chat_inactive", 409)
    err = await me.error("close_thread", {"chat_id": chat["id"], "thread_id": chat["thread"]["id"]})
    assert_error(err, "chat_inactive", 409)
    await me.rtm.close()


async def test_close_thread_with_a_thread_that_is_not_the_active_one(
    server: Server, http: aiohttp.ClientSession
) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat()
    await me.close(chat["id"])
    reopened = await me.say(chat["id"], "again")
    old = chat["thread"]["id"]
    assert_error(await me.error("close_thread", {"chat_id": chat["id"], "thread_id": old}), "chat_inactive", 409)
    err = await me.error("close_thread", {"chat_id": chat["id"], "thread_id": "NOSUCHTHREAD"})
    assert_error(err, "not_found", 404)
    # Neither failure touched the active thread.
    threads = await me.threads(chat["id"])
    assert [(t["id"], t["active"]) for t in threads] == [(old, False), (reopened["thread_id"], True)]
    await me.rtm.close()


async def test_close_thread_needs_chat_id(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    assert_error(await me.error("close_thread", {}), "validation", 400, "chat_id")
    assert_error(await me.error("close_thread", {"chat_id": "NOSUCHCHAT"}), "not_found", 404)
    await me.rtm.close()


# -- update_chat_scopes --------------------------------------------------------------------


async def test_update_chat_scopes_add_and_remove(server: Server, http: aiohttp.ClientSession) -> None:
    group = extra_group(server)
    me = await new_customer(server, http)
    chat = await me.start_chat()
    other = await me.connect()
    add_both = {"chat_id": chat["id"], "add_scopes": {"groups": [0, group]}}
    assert await me.call("update_chat_scopes", add_both) == {}
    got = (await other.push("chat_scopes_updated"))["payload"]
    assert got == {"chat_id": chat["id"], "scopes_added": {"groups": [group]}, "scopes_removed": {"groups": []}}
    assert sorted((await me.chat(chat["id"]))["scopes"]["groups"]) == [0, group]

    swap = {"chat_id": chat["id"], "remove_scopes": {"groups": [0]}}
    assert await me.call("update_chat_scopes", swap) == {}
    got = (await other.push("chat_scopes_updated"))["payload"]
    assert got == {"chat_id": chat["id"], "scopes_added": {"groups": []}, "scopes_removed": {"groups": [0]}}
    assert (await me.chat(chat["id"]))["scopes"] == {"groups": [group]}

    both = {"chat_id": chat["id"], "add_scopes": {"groups": [0]}, "remove_scopes": {"groups": [group]}}
    assert await me.call("update_chat_scopes", both) == {}
    got = (await other.push("chat_scopes_updated"))["payload"]
    assert got == {"chat_id": chat["id"], "scopes_added": {"groups": [0]}, "scopes_removed": {"groups": [group]}}
    assert (await me.chat(chat["id"]))["scopes"] == {"groups": [0]}
    await other.close()
    await me.rtm.close()


async def test_update_chat_scopes_refusals_change_nothing(server: Server, http: aiohttp.ClientSession) -> None:
    group = extra_group(server)
    me = await new_customer(server, http)
    chat = await me.start_chat({"chat": {"scopes": {"groups": [0, group]}}})
    other = await me.connect()
    cid = chat["id"]
    cases: list[tuple[dict[str, Any], str, int]] = [
        ({"chat_id": cid, "remove_scopes": {"groups": [0, group]}}, "validation", 400),
        ({"chat_id": cid, "add_scopes": {"groups": [987654]}}, "group_not_found", 404),
        (
            {"chat_id": cid, "add_scopes": {"groups": [987654]}, "remove_scopes": {"groups": [0]}},
            "group_not_found",
            404,
        ),
        ({"chat_id": cid}, "validation", 400),
        ({"chat_id": cid, "add_scopes": {"groups": ["x"]}}, "validation", 400),
        ({"chat_id": cid, "add_scopes": {"teams": [1]}}, "validation", 400),
        ({"chat_id": "NOSUCHCHAT", "add_scopes": {"groups": [0]}}, "not_found", 404),
    ]
    for payload, type_, code in cases:
        assert_error(await me.error("update_chat_scopes", payload), type_, code)
    assert sorted((await me.chat(cid))["scopes"]["groups"]) == [0, group]
    assert [p for p in await _pushes(other) if p["action"] == "chat_scopes_updated"] == []
    await other.close()
    await me.rtm.close()
