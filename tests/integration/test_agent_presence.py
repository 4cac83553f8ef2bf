"""Presence and routing status through a real server (SPEC §4, §7, §9): `present` and
`last_seen_timestamp` follow connections; routing status is pushed and persists; an agent gone for
30 s stops getting new chats."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from tests.integration.test_agent_support import (
    AgentConn,
    CustomerConn,
    Sites,
    agent_ids,
    now,
)


async def user_in_chat(conn: AgentConn | CustomerConn, chat: dict, user_id: str) -> dict:
    got = await conn.call("get_chat_threads", {"chat_id": chat["id"], "thread_ids": [chat["thread"]["id"]]})
    return next(u for u in got["chat"]["users"] if u["id"] == user_id)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition never became true"
        await asyncio.sleep(0.05)


async def test_agent_presence_follows_its_connections(sites: Sites) -> None:
    site = await sites(agents={"a": ((), None)})
    a1 = await site.agent("a")
    a2 = await site.agent("a")
    customer = await site.customer()
    chat = await customer.start_chat(text="hi")
    assert agent_ids(chat) == [a1.id]
    assert next(u for u in chat["users"] if u["id"] == a1.id)["present"] is True
    assert (await user_in_chat(customer, chat, a1.id))["present"] is True

    await a1.close()
    await asyncio.sleep(0.3)
    assert (await user_in_chat(customer, chat, a2.id))["present"] is True  # one tab is still open

    before = now()
    await a2.close()

    async def gone() -> bool:
        return (await user_in_chat(customer, chat, a1.id))["present"] is False

    await eventually(gone)
    seen = (await user_in_chat(customer, chat, a1.id))["last_seen_timestamp"]
    assert isinstance(seen, int)
    assert before - 2 <= seen <= now() + 1

    back = await site.agent("a")
    assert back.answer["my_profile"]["present"] is True
    assert back.answer["my_profile"]["last_seen_timestamp"] == seen
    assert (await user_in_chat(customer, chat, back.id))["present"] is True


async def test_customer_presence_as_the_agent_sees_it(sites: Sites) -> None:
    site = await sites(agents={"a": ((), None)})
    a = await site.agent("a")
    customer = await site.customer()
    chat = await customer.start_chat(text="hi")
    pushed = (await a.wait("incoming_chat_thread"))["chat"]
    assert next(u for u in pushed["users"] if u["id"] == customer.id)["present"] is True
    assert (await user_in_chat(a, chat, customer.id))["present"] is True
    tab = await site.customer(customer.token)
    before = now()
    await customer.close()
    await asyncio.sleep(0.3)
    assert (await user_in_chat(a, chat, customer.id))["present"] is True
    await tab.close()

    async def gone() -> bool:
        return (await user_in_chat(a, chat, customer.id))["present"] is False

    await eventually(gone)
    seen = (await user_in_chat(a, chat, customer.id))["last_seen_timestamp"]
    assert isinstance(seen, int)
    assert before - 2 <= seen <= now() + 1


async def test_routing_status_is_pushed_and_persists(sites: Sites) -> None:
    site = await sites(agents={"a": ((), None), "b": ((), None)})
    a = await site.agent("a")
    tab = await site.agent("a")
    assert a.answer["my_profile"]["routing_status"] == "accepting_chats"
    listed = {x["agent_id"]: x for x in await site.admin("agent", "list", "--license", str(site.license_id))}
    assert listed[a.id]["routing_status"] == "accepting_chats"

    assert await a.call("set_routing_status", {"status": "not_accepting_chats"}) == {}
    assert await tab.wait("routing_status_set") == {"agent_id": a.id, "status": "not_accepting_chats"}
    await a.none("routing_status_set")
    again = await site.agent("a")
    assert again.answer["my_profile"]["routing_status"] == "not_accepting_chats"
    listed = {x["agent_id"]: x for x in await site.admin("agent", "list", "--license", str(site.license_id))}
    assert listed[a.id]["routing_status"] == "not_accepting_chats"
    assert listed[site.agent_id("b")]["routing_status"] == "accepting_chats"
    # User objects show it too
    customer = await site.customer()
    b = await site.agent("b")
    chat = await customer.start_chat()
    assert agent_ids(chat) == [b.id]
    await b.call("add_user_to_chat", {"chat_id": chat["id"], "user_id": a.id, "user_type": "agent"})
    added = await customer.wait("chat_user_added", where=lambda p: p["user"]["id"] == a.id)
    assert added["user"]["routing_status"] == "not_accepting_chats"

    # another agent's status, by agent_id
    await a.call("set_routing_status", {"status": "not_accepting_chats", "agent_id": b.id})
    assert await b.wait("routing_status_set") == {"agent_id": b.id, "status": "not_accepting_chats"}
    listed = {x["agent_id"]: x for x in await site.admin("agent", "list", "--license", str(site.license_id))}
    assert listed[b.id]["routing_status"] == "not_accepting_chats"
    error = await a.error("set_routing_status", {"status": "accepting_chats", "agent_id": "no-such-agent"})
    assert error["type"] == "not_found"
    stranger = await sites(agents={"x": ((), None)})
    error = await a.error("set_routing_status", {"status": "accepting_chats", "agent_id": stranger.agent_id("x")})
    assert error["type"] == "not_found"


async def test_agent_gone_for_30_seconds_gets_no_new_chats(sites: Sites) -> None:
    """The one slow test (~32 s): SPEC §7's 30 s grace, then queueing, then the agent's return."""
    site = await sites(agents={"a": ((), None)})
    a = await site.agent("a")
    await a.close()
    await asyncio.sleep(31)
    customer = await site.customer()
    chat = await customer.start_chat(text="anyone?")
    assert agent_ids(chat) == []
    got = await customer.wait("queue_position_updated")
    assert (got["chat_id"], got["queue"]["position"]) == (chat["id"], 1)
    back = await site.agent("a")
    assert (await back.wait("incoming_chat_thread"))["chat"]["id"] == chat["id"]
    assert (await customer.wait("chat_user_added"))["user"]["id"] == back.id
