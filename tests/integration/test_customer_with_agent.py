"""What a customer sees of agents (SPEC §2, §4, §6, §7): routing news, agent events, typing, notes, and
what agents hear of the customer (sneak peeks, profile, last seen).

A dedicated server whose one agent (the demo agent, alone in group 0) is online only during these
tests: on the shared server other tests' agents stay routable for 30 s after they disconnect.
Every test closes its chat, so the agent never reaches its limit of concurrent chats.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from tests.integration.test_customer_support import (
    Customer,
    assert_error,
    close_quietly,
    drain,
    event_push,
    is_system,
    message,
    new_customer,
    no_push_of,
    own,
    wait_closed,
)
from tests.support import Rtm, Server, admin, agent_token


@dataclass
class Routed:
    server: Server
    email: str
    password: str
    other_group: int


@pytest.fixture(scope="module")
def routed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Routed]:
    """A server of its own, whose only agent (the demo one) is online only while a test here wants it."""
    srv = Server(tmp_path_factory.mktemp("routed") / "d", "--demo", env={"PARLEY_TOKEN_RATE_PER_MIN": "0"}).start()
    try:
        line = next(line for line in srv.stdout_lines if line.startswith("agent login:"))
        email, password = line.split()[2:4]
        group = int(admin(srv.data_dir, "group", "create", "--license", "1", "--name", "Other")["id"])
        yield Routed(srv, email, password, group)
    finally:
        srv.stop()


@dataclass
class Agent:
    id: str
    group: int
    rtm: Rtm


async def online_agent(routed: Routed, http: aiohttp.ClientSession) -> tuple[Server, Agent]:
    """The demo agent, logged in over RTM (and so accepting chats: it is alone in group 0)."""
    token = await agent_token(http, routed.server.base, routed.email, routed.password)
    rtm = await Rtm.connect(http, routed.server.ws_base, side="agent")
    await rtm.login(token["access_token"])
    return routed.server, Agent(token["agent_id"], 0, rtm)


async def routed_chat(me: Customer, agent: Agent, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    """start_chat in the agent's group; answers the chat once the agent has been added."""
    chat = await me.start_chat({"chat": {"scopes": {"groups": [agent.group]}, **(payload or {})}})
    added = (await me.rtm.push("chat_user_added"))["payload"]
    assert added["chat_id"] == chat["id"]
    return chat


async def test_routing_adds_the_agent_and_tells_every_customer_connection(
    routed: Routed, http: aiohttp.ClientSession
) -> None:
    server, agent = await online_agent(routed, http)
    me = await new_customer(server, http)
    other = await me.connect()
    chat = await me.start_chat({"chat": {"scopes": {"groups": [agent.group]}}})
    for rtm in (me.rtm, other):  # news beyond the response: the requester gets it too
        added = (await rtm.push("chat_user_added"))["payload"]
        assert added["chat_id"] == chat["id"]
        assert added["thread_id"] == chat["thread"]["id"]
        assert added["user_type"] == "agent"
        assert added["user"]["id"] == agent.id
        assert added["user"]["type"] == "agent"
        assert "email" not in added["user"], "a customer never sees an agent's e-mail unless the licence says so"
    incoming = (await agent.rtm.push("incoming_chat_thread"))["payload"]["chat"]
    assert incoming["id"] == chat["id"]
    [thread] = await me.threads(chat["id"])
    assert agent.id in thread["user_ids"]
    users = (await me.call("get_chat_threads", {"chat_id": chat["id"], "thread_ids": [thread["id"]]}))["chat"]["users"]
    agent_view = next(u for u in users if u["id"] == agent.id)
    assert "email" not in agent_view
    assert set(agent_view) >= {"id", "type", "name", "avatar", "present", "last_seen_timestamp"}
    await me.close(chat["id"])
    await close_quietly(me.rtm, other, agent.rtm)


async def test_agent_messages_reach_the_customer(routed: Routed, http: aiohttp.ClientSession) -> None:
    server, agent = await online_agent(routed, http)
    me = await new_customer(server, http)
    chat = await routed_chat(me, agent)
    sent = await agent.rtm.call("send_event", {"chat_id": chat["id"], "event": message("How can I help?")})
    got = await event_push(me.rtm)
    assert got == {"chat_id": chat["id"], "thread_id": sent["thread_id"], "event": sent["event"]}
    assert got["event"]["author_id"] == agent.id
    assert [e["text"] for e in await me.events(chat["id"])] == ["How can I help?"]
    await me.close(chat["id"])
    await close_quietly(me.rtm, agent.rtm)


async def test_internal_notes_stay_hidden_from_the_customer(routed: Routed, http: aiohttp.ClientSession) -> None:
    server, agent = await online_agent(routed, http)
    me = await new_customer(server, http)
    chat = await routed_chat(me, agent)
    await me.say(chat["id"], "hello")
    note = {"chat_id": chat["id"], "event": message("customer seems angry", recipients="agents")}
    stored = await agent.rtm.call("send_event", note)
    assert stored["event"]["recipients"] == "agents"
    await no_push_of(me.rtm, "incoming_event")
    events = [e for t in await me.threads(chat["id"]) for e in t["events"]]
    assert stored["event"]["id"] not in [e["id"] for e in events]
    assert all(e["recipients"] == "all" for e in events)
    item = await me.chat(chat["id"])
    assert item["last_event"]["event"]["id"] != stored["event"]["id"]
    login = await (await Rtm.connect(http, server.ws_base)).login(me.access)
    per_type = login["last_chats_summary"][0]["last_event_per_type"]["events"]
    assert stored["event"]["id"] not in [e["id"] for e in per_type]
    await me.close(chat["id"])
    await close_quietly(me.rtm, agent.rtm)


async def test_typing_indicator_reaches_the_customer(routed: Routed, http: aiohttp.ClientSession) -> None:
    server, agent = await online_agent(routed, http)
    me = await new_customer(server, http)
    chat = await routed_chat(me, agent)
    assert await agent.rtm.call("send_typing_indicator", {"chat_id": chat["id"], "is_typing": True}) == {}
    got = (await me.rtm.push("incoming_typing_indicator"))["payload"]
    assert got["chat_id"] == chat["id"]
    assert got["thread_id"] == chat["thread"]["id"]
    assert got["typing_indicator"]["author_id"] == agent.id
    assert got["typing_indicator"]["is_typing"] is True
    assert isinstance(got["typing_indicator"]["timestamp"], int)
    await agent.rtm.call("send_typing_indicator", {"chat_id": chat["id"], "is_typing": True, "recipients": "agents"})
    await no_push_of(me.rtm, "incoming_typing_indicator")
    await me.close(chat["id"])
    await close_quietly(me.rtm, agent.rtm)


async def test_sneak_peeks_reach_the_agent_at_most_four_a_second(routed: Routed, http: aiohttp.ClientSession) -> None:
    server, agent = await online_agent(routed, http)
    me = await new_customer(server, http)
    chat = await routed_chat(me, agent)
    await drain(agent.rtm, 0.1)
    assert await me.call("send_sneak_peek", {"chat_id": chat["id"], "sneak_peek_text": "I have a quest"}) == {}
    got = (await agent.rtm.push("incoming_sneak_peek"))["payload"]
    assert got["chat_id"] == chat["id"] and got["thread_id"] == chat["thread"]["id"]
    assert got["sneak_peek"]["author_id"] == me.id
    assert got["sneak_peek"]["text"] == "I have a quest"
    assert isinstance(got["sneak_peek"]["timestamp"], int)
    answers = await asyncio.gather(
        *(me.call("send_sneak_peek", {"chat_id": chat["id"], "sneak_peek_text": f"t{i}"}) for i in range(12))
    )
    assert answers == [{}] * 12
    heard = [p for p in await drain(agent.rtm, 0.3) if p["action"] == "incoming_sneak_peek"]
    assert 1 <= len(heard) <= 5, f"{len(heard)} sneak peeks in well under a second"
    await me.close(chat["id"])
    await close_quietly(me.rtm, agent.rtm)


async def test_customer_changes_reach_the_agent(routed: Routed, http: aiohttp.ClientSession) -> None:
    server, agent = await online_agent(routed, http)
    me = await new_customer(server, http)
    other = await me.connect()
    chat = await routed_chat(me, agent)
    await drain(agent.rtm, 0.1)
    sent = await me.say(chat["id"], "from the customer")
    assert (await event_push(agent.rtm))["event"]["id"] == sent["event"]["id"]

    page = {"url": "https://shop.example/checkout", "title": "Checkout", "referrer": "https://shop.example/"}
    customer = (await me.call("update_customer", {"customer": {"name": "Zoe", "monitoring": {"page": page}}}))[
        "customer"
    ]
    updated = (await agent.rtm.push("customer_updated"))["payload"]
    assert updated == {"chat_id": chat["id"], "customer": customer}
    moved = (await agent.rtm.push("customer_page_updated"))["payload"]
    assert {k: moved[k] for k in ("customer_id", "url", "title", "referrer")} == {"customer_id": me.id, **page}
    assert "opened_at" in moved
    await no_push_of(other, "customer_updated", "customer_page_updated")

    # Nothing to change: nothing pushed.
    await me.call("update_customer", {"customer": {}})
    await no_push_of(agent.rtm, "customer_updated", "customer_page_updated")

    seen = await me.call("update_last_seen_timestamp", {})
    got = (await agent.rtm.push("last_seen_timestamp_updated"))["payload"]
    assert got["user_id"] == me.id and got["timestamp"] == seen["timestamp"]

    await me.call("update_chat_properties", {"chat_id": chat["id"], "properties": {"r": {"s": 1}}})
    assert (await agent.rtm.push("chat_properties_updated"))["payload"] == {
        "chat_id": chat["id"],
        "properties": {"r": {"s": 1}},
    }
    await me.close(chat["id"])
    closed = (await agent.rtm.push("thread_closed"))["payload"]
    assert closed == {"chat_id": chat["id"], "thread_id": chat["thread"]["id"], "user_id": me.id}
    await close_quietly(me.rtm, other, agent.rtm)


async def test_agent_closing_the_thread(routed: Routed, http: aiohttp.ClientSession) -> None:
    server, agent = await online_agent(routed, http)
    me = await new_customer(server, http)
    other = await me.connect()
    chat = await routed_chat(me, agent)
    assert await agent.rtm.call("close_thread", {"chat_id": chat["id"]}) == {}
    for rtm in (me.rtm, other):
        closed = (await rtm.push("thread_closed"))["payload"]
        assert closed == {"chat_id": chat["id"], "thread_id": chat["thread"]["id"], "user_id": agent.id}
    assert_error(
        await me.error("send_sneak_peek", {"chat_id": chat["id"], "sneak_peek_text": "x"}), "chat_inactive", 409
    )
    # The customer writing again opens a new thread, routed again.
    await drain(agent.rtm, 0.1)
    again = await me.say(chat["id"], "one more thing")
    assert again["thread_id"] != chat["thread"]["id"]
    added = (await me.rtm.push("chat_user_added"))["payload"]
    assert added["thread_id"] == again["thread_id"] and added["user"]["id"] == agent.id
    incoming = (await agent.rtm.push("incoming_chat_thread"))["payload"]["chat"]
    assert incoming["thread"]["id"] == again["thread_id"]
    await me.close(chat["id"])
    await close_quietly(me.rtm, other, agent.rtm)


async def test_queued_customer_gets_its_position(routed: Routed, http: aiohttp.ClientSession) -> None:
    server, agent = await online_agent(routed, http)
    assert await agent.rtm.call("set_routing_status", {"status": "not_accepting_chats"}) == {}
    try:
        me = await new_customer(server, http)
        chat = await me.start_chat({"chat": {"scopes": {"groups": [agent.group]}}})
        queued = (await me.rtm.push("queue_position_updated"))["payload"]
        assert queued["chat_id"] == chat["id"]
        assert queued["thread_id"] == chat["thread"]["id"]
        assert isinstance(queued["queue"]["position"], int) and queued["queue"]["position"] >= 1
        assert "wait_time" in queued["queue"]
        await no_push_of(me.rtm, "chat_user_added", within=0.2)
    finally:
        # Once the agent accepts chats again, the queued one is assigned.
        assert await agent.rtm.call("set_routing_status", {"status": "accepting_chats"}) == {}
    added = (await me.rtm.push("chat_user_added"))["payload"]
    assert added["chat_id"] == chat["id"] and added["user"]["id"] == agent.id
    [thread] = await me.threads(chat["id"])
    assert all(e["recipients"] in ("all", "agents") for e in thread["events"] if is_system(e))
    assert own(thread["events"]) == []
    await me.close(chat["id"])
    await close_quietly(me.rtm, agent.rtm)


async def test_scope_change_reaches_the_agent(routed: Routed, http: aiohttp.ClientSession) -> None:
    server, agent = await online_agent(routed, http)
    me = await new_customer(server, http)
    chat = await routed_chat(me, agent)
    await drain(agent.rtm, 0.1)
    group = routed.other_group
    await me.call("update_chat_scopes", {"chat_id": chat["id"], "add_scopes": {"groups": [group]}})
    got = (await agent.rtm.push("chat_scopes_updated"))["payload"]
    assert got == {"chat_id": chat["id"], "scopes_added": {"groups": [group]}, "scopes_removed": {"groups": []}}
    await me.close(chat["id"])
    await close_quietly(me.rtm, agent.rtm)


async def test_queue_positions_move_up(routed: Routed, http: aiohttp.ClientSession) -> None:
    server, agent = await online_agent(routed, http)
    assert await agent.rtm.call("set_routing_status", {"status": "not_accepting_chats"}) == {}
    try:
        first = await new_customer(server, http)
        second = await new_customer(server, http)
        first_chat = await first.start_chat()
        first_pos = (await first.rtm.push("queue_position_updated"))["payload"]["queue"]["position"]
        second_chat = await second.start_chat()
        queued = (await second.rtm.push("queue_position_updated"))["payload"]
        assert queued["chat_id"] == second_chat["id"]
        assert queued["queue"]["position"] == first_pos + 1
        # The head of the queue leaves: the one behind moves up.
        await first.close(first_chat["id"])
        moved = (await second.rtm.push("queue_position_updated"))["payload"]
        assert moved["chat_id"] == second_chat["id"]
        assert moved["queue"]["position"] == first_pos
    finally:
        assert await agent.rtm.call("set_routing_status", {"status": "accepting_chats"}) == {}
    assert (await second.rtm.push("chat_user_added"))["payload"]["chat_id"] == second_chat["id"]
    await second.close(second_chat["id"])
    await close_quietly(first.rtm, second.rtm, agent.rtm)


async def test_agent_leaving_is_pushed_to_the_customer(routed: Routed, http: aiohttp.ClientSession) -> None:
    server, agent = await online_agent(routed, http)
    me = await new_customer(server, http)
    chat = await routed_chat(me, agent)
    leave = {"chat_id": chat["id"], "user_id": agent.id, "user_type": "agent"}
    assert await agent.rtm.call("remove_user_from_chat", leave) == {}
    removed = (await me.rtm.push("chat_user_removed"))["payload"]
    assert removed == {
        "chat_id": chat["id"],
        "thread_id": chat["thread"]["id"],
        "user_id": agent.id,
        "user_type": "agent",
    }
    # A customer can never be removed.
    kick = {"chat_id": chat["id"], "user_id": me.id, "user_type": "customer"}
    assert (await agent.rtm.error("remove_user_from_chat", kick))["code"] in (400, 403)
    assert me.id in [u["id"] for u in (await me.chat(chat["id"]))["users"]]
    await me.close(chat["id"])
    await close_quietly(me.rtm, agent.rtm)


async def test_per_chat_last_seen_reaches_the_agent(routed: Routed, http: aiohttp.ClientSession) -> None:
    server, agent = await online_agent(routed, http)
    me = await new_customer(server, http)
    chat = await routed_chat(me, agent)
    await drain(agent.rtm, 0.1)
    seen = await me.call("update_last_seen_timestamp", {"chat_id": chat["id"]})
    got = (await agent.rtm.push("last_seen_timestamp_updated"))["payload"]
    assert got == {"user_id": me.id, "timestamp": seen["timestamp"], "chat_id": chat["id"]}
    await me.close(chat["id"])
    await close_quietly(me.rtm, agent.rtm)


async def test_banned_customer_is_disconnected_and_refused(routed: Routed, http: aiohttp.ClientSession) -> None:
    server, agent = await online_agent(routed, http)
    me = await new_customer(server, http)
    other = await me.connect()
    chat = await routed_chat(me, agent)
    assert await agent.rtm.call("ban_customer", {"customer_id": me.id, "ban": {"days": 1}}) == {}
    for rtm in (me.rtm, other):
        got = await rtm.push("customer_disconnected")
        assert got["payload"] == {"reason": "customer_banned"}
        assert await wait_closed(rtm) is not None
    rtm = await Rtm.connect(http, server.ws_base)
    assert_error(await rtm.error("login", {"token": me.access}), "customer_banned", 403)
    await rtm.close()
    status, body = await me.web("get_chats_summary", {})
    assert status == 403
    assert_error(body["error"], "customer_banned", 403)
    async with http.post(
        f"{server.base}/v3.0/customer/token", json={"license_id": 1, "refresh_token": me.token["refresh_token"]}
    ) as resp:
        assert resp.status == 403
        assert_error((await resp.json())["error"], "customer_banned", 403)
    await agent.rtm.call("close_thread", {"chat_id": chat["id"]})
    await close_quietly(agent.rtm)
