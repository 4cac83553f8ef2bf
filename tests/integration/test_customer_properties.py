"""update_customer and chat/thread properties (SPEC §4, §5, §8, §12)."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from tests.integration.test_customer_support import (
    CUSTOMER_KEYS,
    Customer,
    assert_error,
    new_customer,
    no_push_of,
)
from tests.support import Server

# -- update_customer -----------------------------------------------------------------------


async def test_update_customer_answers_the_full_customer(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    answer = await me.call("update_customer", {"customer": {"name": "Ann"}})
    assert set(answer) == {"customer"}
    customer = answer["customer"]
    assert set(customer) >= CUSTOMER_KEYS
    assert customer["id"] == me.id
    assert customer["type"] == "customer"
    assert customer["name"] == "Ann"
    assert customer["present"] is True
    assert set(customer["monitoring"]) >= {"page", "timezone"}
    assert set(customer["monitoring"]["page"]) >= {"url", "title", "referrer"}
    await me.rtm.close()


async def test_update_customer_is_partial(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    await me.call("update_customer", {"customer": {"name": "Ann", "email": "ann@example.com"}})
    page = {"url": "https://shop.example/", "title": "Shop", "referrer": "https://ref.example/"}
    await me.call("update_customer", {"customer": {"monitoring": {"page": page, "timezone": "-2"}}})
    after = (await me.call("update_customer", {"customer": {"email": "ann@example.org"}}))["customer"]
    assert after["name"] == "Ann"
    assert after["email"] == "ann@example.org"
    assert after["monitoring"] == {"page": page, "timezone": "-2"}
    assert await me.me() == after
    await me.rtm.close()


async def test_empty_update_customer_changes_and_pushes_nothing(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http, customer={"name": "Bo", "properties": {"k": "v"}})
    await me.start_chat()
    other = await me.connect()
    first = (await me.call("update_customer", {"customer": {}}))["customer"]
    assert first["name"] == "Bo" and first["properties"] == {"k": "v"}
    assert (await me.call("update_customer", {"customer": {}}))["customer"] == first
    await no_push_of(other, "customer_updated", "customer_page_updated")
    await other.close()
    await me.rtm.close()


async def test_update_customer_properties(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    hundred = {f"key_{i}": f"value {i}" for i in range(100)}
    answer = (await me.call("update_customer", {"customer": {"properties": hundred}}))["customer"]
    assert answer["properties"] == hundred
    big = "é" * 2048  # 4096 UTF-8 bytes: exactly the limit
    answer = (await me.call("update_customer", {"customer": {"properties": {"key_0": big}}}))["customer"]
    assert answer["properties"]["key_0"] == big
    await me.rtm.close()


@pytest.mark.parametrize(
    ("customer", "type_", "code", "field"),
    [
        ({"properties": {f"k{i}": "v" for i in range(101)}}, "validation", 400, "properties"),
        ({"properties": {"k": "x" * 4097}}, "entity_too_large", 413, "k"),
        ({"properties": {"k": "é" * 2049}}, "entity_too_large", 413, "k"),
        ({"properties": {"k": 5}}, "validation", 400, "properties"),
        ({"properties": {"k": {"nested": "no"}}}, "validation", 400, "properties"),
        ({"properties": "flat"}, "validation", 400, "properties"),
        ({"name": 42}, "validation", 400, "name"),
        ({"monitoring": {"page": "https://x.example"}}, "validation", 400, "page"),
        ({"name": "Zed", "favourite": "blue"}, "validation", 400, "favourite"),
    ],
)
async def test_update_customer_refused_changes_nothing(
    server: Server, http: aiohttp.ClientSession, customer: dict[str, Any], type_: str, code: int, field: str
) -> None:
    me = await new_customer(server, http, customer={"name": "Orig", "properties": {"keep": "me"}})
    before = await me.me()
    assert_error(await me.error("update_customer", {"customer": customer}), type_, code, field)
    assert await me.me() == before
    await me.rtm.close()


async def test_update_customer_needs_customer(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    assert_error(await me.error("update_customer", {"name": "top level"}), "validation", 400)
    await me.rtm.close()


# -- chat and thread properties ------------------------------------------------------------


async def set_chat_props(me: Customer, chat_id: str, props: dict[str, Any]) -> None:
    assert await me.call("update_chat_properties", {"chat_id": chat_id, "properties": props}) == {}


async def chat_props(me: Customer, chat_id: str) -> dict[str, Any]:
    return (await me.chat(chat_id))["properties"]


async def thread_props(me: Customer, chat_id: str, thread_id: str) -> dict[str, Any]:
    [thread] = await me.threads(chat_id, [thread_id])
    return thread["properties"]


async def test_chat_properties_merge_at_name_level(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat({"chat": {"properties": {"a": {"x": 1, "y": [1, 2]}}}})
    other = await me.connect()
    await set_chat_props(me, chat["id"], {"a": {"z": {"deep": True}}, "b": {"s": "str"}})
    assert (await other.push("chat_properties_updated"))["payload"] == {
        "chat_id": chat["id"],
        "properties": {"a": {"z": {"deep": True}}, "b": {"s": "str"}},
    }
    assert await chat_props(me, chat["id"]) == {"a": {"x": 1, "y": [1, 2], "z": {"deep": True}}, "b": {"s": "str"}}
    # Same value again for x, a new one for y: only y changed.
    await set_chat_props(me, chat["id"], {"a": {"x": 1, "y": "replaced"}})
    assert (await other.push("chat_properties_updated"))["payload"] == {
        "chat_id": chat["id"],
        "properties": {"a": {"y": "replaced"}},
    }
    # null deletes a name, and the push says null for it.
    await set_chat_props(me, chat["id"], {"a": {"x": None}, "b": {"s": None}})
    assert (await other.push("chat_properties_updated"))["payload"] == {
        "chat_id": chat["id"],
        "properties": {"a": {"x": None}, "b": {"s": None}},
    }
    props = await chat_props(me, chat["id"])
    assert props.get("a") == {"y": "replaced", "z": {"deep": True}}
    assert props.get("b", {}) == {}
    # All present in get_chat_threads too.
    got = await me.call("get_chat_threads", {"chat_id": chat["id"], "thread_ids": [chat["thread"]["id"]]})
    assert got["chat"]["properties"] == props
    await other.close()
    await me.rtm.close()


async def test_chat_properties_update_without_change_pushes_nothing(
    server: Server, http: aiohttp.ClientSession
) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat({"chat": {"properties": {"a": {"x": 1}}}})
    other = await me.connect()
    await set_chat_props(me, chat["id"], {"a": {"x": 1}})
    await set_chat_props(me, chat["id"], {"a": {"gone": None}})
    await no_push_of(other, "chat_properties_updated")
    assert await chat_props(me, chat["id"]) == {"a": {"x": 1}}
    await other.close()
    await me.rtm.close()


async def test_chat_properties_on_a_closed_chat(server: Server, http: aiohttp.ClientSession) -> None:
    """A rating after the chat ended is the classic use: properties do not need an active thread."""
    me = await new_customer(server, http)
    chat = await me.start_chat()
    await me.close(chat["id"])
    await set_chat_props(me, chat["id"], {"rating": {"score": 1, "comment": "Very good, veeeery good"}})
    assert await chat_props(me, chat["id"]) == {"rating": {"score": 1, "comment": "Very good, veeeery good"}}
    await me.rtm.close()


def value_of_size(size: int) -> str:
    """A string whose JSON encoding is exactly `size` bytes (quotes included)."""
    value = "v" * (size - 2)
    assert len(json.dumps(value).encode()) == size
    return value


@pytest.mark.parametrize(
    ("properties", "type_", "code"),
    [
        ({"ns": {"big": value_of_size(4097)}}, "entity_too_large", 413),
        ({"ns": {"ok": 1, "big": {"list": ["x" * 1000] * 5}}}, "entity_too_large", 413),
        ({"bad ns": {"a": 1}}, "validation", 400),
        ({"": {"a": 1}}, "validation", 400),
        ({"n" * 65: {"a": 1}}, "validation", 400),
        ({"ns/x": {"a": 1}}, "validation", 400),
        ({"ns": {"bad name": 1}}, "validation", 400),
        ({"ns": {"": 1}}, "validation", 400),
        ({"ns": {"é": 1}}, "validation", 400),
        ({"ns": "not an object"}, "validation", 400),
        ({"ns": [1, 2]}, "validation", 400),
    ],
)
async def test_chat_and_thread_property_refusals_change_nothing(
    server: Server, http: aiohttp.ClientSession, properties: dict[str, Any], type_: str, code: int
) -> None:
    me = await new_customer(server, http)
    start = {"keep": {"me": 1}}
    chat = await me.start_chat({"chat": {"properties": start, "thread": {"properties": start}}})
    other = await me.connect()
    thread_id = chat["thread"]["id"]
    assert_error(
        await me.error("update_chat_properties", {"chat_id": chat["id"], "properties": properties}), type_, code
    )
    payload = {"chat_id": chat["id"], "thread_id": thread_id, "properties": properties}
    assert_error(await me.error("update_chat_thread_properties", payload), type_, code)
    assert await chat_props(me, chat["id"]) == start
    assert await thread_props(me, chat["id"], thread_id) == start
    await no_push_of(other, "chat_properties_updated", "chat_thread_properties_updated", within=0.1)
    await other.close()
    await me.rtm.close()


async def test_property_names_and_values_at_their_limits(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat()
    namespace = "A-z_0.9" + "n" * 57  # 64 characters of the allowed set
    edge = {namespace: {"N" * 64: value_of_size(4096), "dots.and-dashes_1": [None, {"x": []}]}}
    await set_chat_props(me, chat["id"], edge)
    assert await chat_props(me, chat["id"]) == edge
    payload = {"chat_id": chat["id"], "thread_id": chat["thread"]["id"], "properties": edge}
    assert await me.call("update_chat_thread_properties", payload) == {}
    assert await thread_props(me, chat["id"], chat["thread"]["id"]) == edge
    await me.rtm.close()


async def test_chat_properties_need_chat_id_and_properties(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat()
    assert_error(await me.error("update_chat_properties", {"chat_id": chat["id"]}), "validation", 400, "properties")
    err = await me.error("update_chat_properties", {"properties": {"a": {"b": 1}}})
    assert_error(err, "validation", 400, "chat_id")
    err = await me.error("update_chat_properties", {"chat_id": "NOSUCHCHAT", "properties": {"a": {"b": 1}}})
    assert_error(err, "not_found", 404)
    await me.rtm.close()


async def test_thread_properties_merge_and_delete(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat({"chat": {"thread": {"properties": {"t": {"a": 1, "b": 2}}}}})
    thread_id = chat["thread"]["id"]
    other = await me.connect()
    payload = {"chat_id": chat["id"], "thread_id": thread_id, "properties": {"t": {"b": 3, "a": 1, "c": None}}}
    assert await me.call("update_chat_thread_properties", payload) == {}
    assert (await other.push("chat_thread_properties_updated"))["payload"] == {
        "chat_id": chat["id"],
        "thread_id": thread_id,
        "properties": {"t": {"b": 3}},
    }
    assert await thread_props(me, chat["id"], thread_id) == {"t": {"a": 1, "b": 3}}
    payload = {"chat_id": chat["id"], "thread_id": thread_id, "properties": {"t": {"a": None}, "u": {"x": "y"}}}
    assert await me.call("update_chat_thread_properties", payload) == {}
    assert (await other.push("chat_thread_properties_updated"))["payload"]["properties"] == {
        "t": {"a": None},
        "u": {"x": "y"},
    }
    assert await thread_props(me, chat["id"], thread_id) == {"t": {"b": 3}, "u": {"x": "y"}}
    # Chat properties are a different map.
    assert await chat_props(me, chat["id"]) == {}
    await no_push_of(me.rtm, "chat_thread_properties_updated")
    await other.close()
    await me.rtm.close()


async def test_thread_properties_need_a_thread_of_this_chat(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat()
    other_chat = await me.start_chat()
    props = {"a": {"b": 1}}
    for thread_id in ("NOSUCHTHREAD", other_chat["thread"]["id"]):
        err = await me.error(
            "update_chat_thread_properties", {"chat_id": chat["id"], "thread_id": thread_id, "properties": props}
        )
        assert_error(err, "not_found", 404)
    err = await me.error("update_chat_thread_properties", {"chat_id": chat["id"], "properties": props})
    assert_error(err, "validation", 400, "thread_id")
    assert await thread_props(me, chat["id"], chat["thread"]["id"]) == {}
    assert await thread_props(me, other_chat["id"], other_chat["thread"]["id"]) == {}
    await me.rtm.close()


async def test_properties_of_an_old_thread(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat()
    await me.close(chat["id"])
    payload = {"chat_id": chat["id"], "thread_id": chat["thread"]["id"], "properties": {"r": {"s": 5}}}
    assert await me.call("update_chat_thread_properties", payload) == {}
    assert await thread_props(me, chat["id"], chat["thread"]["id"]) == {"r": {"s": 5}}
    await me.rtm.close()


@pytest.mark.parametrize("key", ["bad key", "", "k" * 65, "ключ", "a/b"])
async def test_customer_property_keys_follow_the_name_pattern(
    server: Server, http: aiohttp.ClientSession, key: str
) -> None:
    me = await new_customer(server, http)
    before = await me.me()
    err = await me.error("update_customer", {"customer": {"properties": {key: "v"}}})
    assert_error(err, "validation", 400)
    assert await me.me() == before
    await me.rtm.close()


async def test_customer_property_keys_at_the_limit(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    key = "Az09_.-" + "k" * 57
    answer = await me.call("update_customer", {"customer": {"properties": {key: ""}}})
    assert answer["customer"]["properties"][key] == ""
    await me.rtm.close()
