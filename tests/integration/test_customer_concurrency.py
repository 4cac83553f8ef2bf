"""Races between one customer's connections: the rules of SPEC §4, §5, §8 hold under concurrent requests."""

from __future__ import annotations

import asyncio
import itertools

import aiohttp

from tests.integration.test_customer_support import (
    assert_error,
    close_quietly,
    message,
    new_customer,
    now,
    own,
)
from tests.support import Server


async def test_concurrent_events_get_unique_increasing_orders(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat()
    tabs = [me.rtm, await me.connect(), await me.connect()]
    sends = [
        tab.call("send_event", {"chat_id": chat["id"], "event": message(f"{n}.{i}")})
        for n, tab in enumerate(tabs)
        for i in range(10)
    ]
    answers = await asyncio.gather(*sends)
    assert {a["thread_id"] for a in answers} == {chat["thread"]["id"]}
    stored = await me.events(chat["id"])
    assert len(stored) == 30
    orders = [e["order"] for e in stored]
    assert all(a < b for a, b in itertools.pairwise(orders)), orders
    assert [e["created_at"] for e in stored] == sorted(e["created_at"] for e in stored)
    assert sorted(a["event"]["id"] for a in answers) == sorted(e["id"] for e in stored)
    await close_quietly(*tabs)


async def test_concurrent_same_custom_id_stores_one_event(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat()
    tabs = [me.rtm, await me.connect(), await me.connect()]
    payload = {"chat_id": chat["id"], "event": message("only once", custom_id="race-1")}
    answers = await asyncio.gather(
        *(tab.call("send_event", payload) for tab in tabs for _ in range(3)),
        me.web("send_event", payload),
    )
    rtm_answers, (status, web_answer) = list(answers[:-1]), answers[-1]
    assert status == 200, web_answer
    assert all(a == web_answer for a in rtm_answers), answers
    assert [e["id"] for e in await me.events(chat["id"])] == [web_answer["event"]["id"]]
    await close_quietly(*tabs)


async def test_concurrent_start_chats_respect_the_active_limit(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    tabs = [me.rtm, await me.connect(), await me.connect()]
    frames = await asyncio.gather(*(tabs[i % 3].request("start_chat", {}) for i in range(14)))
    started = [f for f in frames if f["success"]]
    refused = [f for f in frames if not f["success"]]
    assert len(started) == 10, [f["payload"] for f in refused]
    for frame in refused:
        assert_error(frame["payload"]["error"], "limit_reached", 429)
    assert (await me.chats())["pagination"]["total"] == 10
    await close_quietly(*tabs)


async def test_concurrent_reopen_opens_one_thread(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat()
    await me.close(chat["id"])
    tabs = [me.rtm, await me.connect(), await me.connect()]
    answers = await asyncio.gather(
        *(tab.call("send_event", {"chat_id": chat["id"], "event": message(f"back {i}")}) for i, tab in enumerate(tabs))
    )
    assert len({a["thread_id"] for a in answers}) == 1, answers
    threads = await me.threads(chat["id"])
    assert [t["active"] for t in threads] == [False, True]
    assert len(own(threads[1]["events"])) == 3
    await close_quietly(*tabs)


async def test_concurrent_close_closes_once(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat()
    tabs = [me.rtm, await me.connect(), await me.connect()]
    frames = await asyncio.gather(*(tab.request("close_thread", {"chat_id": chat["id"]}) for tab in tabs))
    assert sum(f["success"] for f in frames) == 1, frames
    for frame in frames:
        if not frame["success"]:
            assert_error(frame["payload"]["error"], "chat_inactive", 409)
    await close_quietly(*tabs)


async def test_concurrent_property_updates_all_merge(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat()
    tabs = [me.rtm, await me.connect(), await me.connect()]
    await asyncio.gather(
        *(
            tab.call("update_chat_properties", {"chat_id": chat["id"], "properties": {"ns": {f"k{n}_{i}": i}}})
            for n, tab in enumerate(tabs)
            for i in range(5)
        )
    )
    props = (await me.chat(chat["id"]))["properties"]
    assert props == {"ns": {f"k{n}_{i}": i for n in range(3) for i in range(5)}}
    await close_quietly(*tabs)


async def test_concurrent_last_seen_keeps_the_latest(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    tabs = [me.rtm, await me.connect(), await me.connect()]
    base = now() - 100
    stamps = [base + i for i in range(30)]
    await asyncio.gather(
        *(tabs[i % 3].call("update_last_seen_timestamp", {"timestamp": t}) for i, t in enumerate(reversed(stamps)))
    )
    assert (await me.me())["last_seen_timestamp"] == max(stamps)
    await close_quietly(*tabs)
