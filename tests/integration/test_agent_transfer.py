"""Join, leave and transfer through a real server (SPEC §6, §7): add_user_to_chat,
remove_user_from_chat and transfer_chat, with the pushes each one owes the chat's users."""

from __future__ import annotations

from tests.integration.test_agent_support import (
    AgentConn,
    CustomerConn,
    Site,
    Sites,
    agent_ids,
    message,
    texts,
)


async def chat_with(site: Site, agent: AgentConn, groups: list[int] | None = None) -> tuple[CustomerConn, dict]:
    """A new chat routed to `agent` (which must be the only agent able to take it)."""
    customer = await site.customer()
    chat = await customer.start_chat(groups=groups, text="hello")
    assert agent_ids(chat) == [agent.id], chat
    await agent.wait("incoming_chat_thread", where=lambda p: p["chat"]["id"] == chat["id"])
    await customer.wait("chat_user_added", where=lambda p: p["user"]["id"] == agent.id)
    return customer, chat


async def not_accepting(site: Site, key: str) -> AgentConn:
    """Connect an agent that takes no routed chats (set over the Web API before connecting)."""
    token = await site.agent_token(key)
    status, body = await site.web(token, "set_routing_status", {"status": "not_accepting_chats"})
    assert status == 200, body
    return await site.agent(key, token)


async def thread_events(conn: AgentConn | CustomerConn, chat: dict) -> list[dict]:
    got = await conn.call("get_chat_threads", {"chat_id": chat["id"], "thread_ids": [chat["thread"]["id"]]})
    return list(got["chat"]["threads"][0]["events"])


# -- join and leave -----------------------------------------------------------------------


async def test_agent_joins_and_leaves_a_chat(sites: Sites) -> None:
    site = await sites(agents={"a": ((), None), "b": ((), None)})
    a = await site.agent("a")
    b = await not_accepting(site, "b")
    customer, chat = await chat_with(site, a)
    chat_id, thread_id = chat["id"], chat["thread"]["id"]

    assert await b.call("add_user_to_chat", {"chat_id": chat_id, "user_id": b.id, "user_type": "agent"}) == {}
    for conn in (customer, a):
        added = await conn.wait("chat_user_added", where=lambda p: p["user"]["id"] == b.id)
        assert added["chat_id"] == chat_id
        assert added["thread_id"] == thread_id
        assert added["user_type"] == "agent"
        assert added["user"]["type"] == "agent"
    pushed = (await b.wait("incoming_chat_thread"))["chat"]
    assert pushed["id"] == chat_id
    assert pushed["thread"]["id"] == thread_id
    assert {u["id"] for u in pushed["users"]} == {customer.id, a.id, b.id}
    assert "hello" in texts(pushed["thread"]["events"])
    # a system message tells the chat
    await customer.wait(
        "incoming_event",
        where=lambda p: (
            p["event"]["type"] == "system_message"
            and p["event"]["id"] not in [e["id"] for e in chat["thread"]["events"]]
        ),
    )
    # now b hears the chat and speaks in it
    said = await customer.say(chat_id, "thanks both")
    await b.wait("incoming_event", where=lambda p: p["event"]["id"] == said["event"]["id"])
    sent = await b.call("send_event", {"chat_id": chat_id, "event": message("b here")})
    for conn in (customer, a):
        await conn.wait("incoming_event", where=lambda p: p["event"]["id"] == sent["event"]["id"])
    users = (await customer.call("get_chats_summary", {}))["chats_summary"][0]["users"]
    assert {u["id"] for u in users} == {customer.id, a.id, b.id}

    assert await b.call("remove_user_from_chat", {"chat_id": chat_id, "user_id": b.id, "user_type": "agent"}) == {}
    expected = {"chat_id": chat_id, "thread_id": thread_id, "user_id": b.id, "user_type": "agent"}
    for conn in (customer, a):
        assert await conn.wait("chat_user_removed") == expected
    # b no longer hears the chat; a still does
    said = await customer.say(chat_id, "bye b")
    await a.wait("incoming_event", where=lambda p: p["event"]["id"] == said["event"]["id"])
    await b.none("incoming_event", where=lambda p: p["event"]["id"] == said["event"]["id"])
    users = (await customer.call("get_chats_summary", {}))["chats_summary"][0]["users"]
    assert {u["id"] for u in users} == {customer.id, a.id}
    # each push exactly once
    assert len(customer.pushes("chat_user_added", where=lambda p: p["user"]["id"] == b.id)) == 1
    assert len(customer.pushes("chat_user_removed")) == 1
    assert len(b.pushes("incoming_chat_thread")) == 1


async def test_agent_adds_and_removes_another_agent(sites: Sites) -> None:
    site = await sites(agents={"a": ((), None), "b": ((), None)})
    a = await site.agent("a")
    b = await not_accepting(site, "b")
    customer, chat = await chat_with(site, a)
    await a.call("add_user_to_chat", {"chat_id": chat["id"], "user_id": b.id, "user_type": "agent"})
    assert (await b.wait("incoming_chat_thread"))["chat"]["id"] == chat["id"]
    assert (await customer.wait("chat_user_added", where=lambda p: p["user"]["id"] == b.id))["user_type"] == "agent"
    await a.call("remove_user_from_chat", {"chat_id": chat["id"], "user_id": b.id, "user_type": "agent"})
    assert (await customer.wait("chat_user_removed"))["user_id"] == b.id
    assert (await b.wait("chat_user_removed"))["user_id"] == b.id


async def test_join_and_leave_errors_change_nothing(sites: Sites) -> None:
    site = await sites(agents={"a": ((), None), "b": ((), None)})
    a = await site.agent("a")
    b = await not_accepting(site, "b")
    customer, chat = await chat_with(site, a)
    chat_id = chat["id"]
    unknown = await a.error("add_user_to_chat", {"chat_id": chat_id, "user_id": "no-such-agent", "user_type": "agent"})
    assert unknown["type"] == "not_found"
    unknown = await a.error("add_user_to_chat", {"chat_id": "no-such-chat", "user_id": b.id, "user_type": "agent"})
    assert unknown["type"] == "not_found"
    # a customer can never be removed, whatever user_type says
    for user_type in ("customer", "agent"):
        error = await a.error(
            "remove_user_from_chat", {"chat_id": chat_id, "user_id": customer.id, "user_type": user_type}
        )
        assert error["type"] in {"validation", "not_found", "authorization"}, error
    error = await a.error("add_user_to_chat", {"chat_id": chat_id, "user_id": customer.id, "user_type": "customer"})
    assert error["type"] == "validation"
    await customer.none("chat_user_removed")
    await customer.none("chat_user_added", where=lambda p: p["user"]["id"] != a.id, within=0)
    await customer.call("close_thread", {"chat_id": chat_id})
    error = await b.error("add_user_to_chat", {"chat_id": chat_id, "user_id": b.id, "user_type": "agent"})
    assert error["type"] == "chat_inactive"


# -- transfer -----------------------------------------------------------------------------


async def test_transfer_to_an_agent(sites: Sites) -> None:
    site = await sites(agents={"a": ((), None), "b": ((), None)})
    a = await site.agent("a")
    customer, chat = await chat_with(site, a)
    a_tab = await site.agent("a")
    b = await site.agent("b")
    chat_id, thread_id = chat["id"], chat["thread"]["id"]
    answer = await a.call("transfer_chat", {"chat_id": chat_id, "target": {"type": "agent", "ids": [b.id]}})
    assert answer == {}
    expected = {"chat_id": chat_id, "thread_id": thread_id, "requester_id": a.id, "type": "agent", "ids": [b.id]}
    for conn in (customer, a_tab, b):
        assert await conn.wait("chat_transferred") == expected
    removed = await customer.wait("chat_user_removed")
    assert removed == {"chat_id": chat_id, "thread_id": thread_id, "user_id": a.id, "user_type": "agent"}
    await a_tab.wait("chat_user_removed", user_id=a.id)
    added = await customer.wait("chat_user_added", where=lambda p: p["user"]["id"] == b.id)
    assert (added["chat_id"], added["thread_id"], added["user_type"]) == (chat_id, thread_id, "agent")
    pushed = (await b.wait("incoming_chat_thread"))["chat"]
    assert pushed["id"] == chat_id
    assert pushed["thread"]["id"] == thread_id
    assert b.id in [u["id"] for u in pushed["users"]]
    # a system message is stored in the thread, and the customer heard it
    before = {e["id"] for e in chat["thread"]["events"]}
    stored = [e for e in await thread_events(customer, chat) if e["id"] not in before]
    assert "system_message" in [e["type"] for e in stored]
    system_ids = {e["id"] for e in stored if e["type"] == "system_message"}
    await customer.wait("incoming_event", where=lambda p: p["event"]["id"] in system_ids)
    # the chat is b's now
    said = await customer.say(chat_id, "hello b")
    await b.wait("incoming_event", where=lambda p: p["event"]["id"] == said["event"]["id"])
    await a_tab.none("incoming_event", where=lambda p: p["event"]["id"] == said["event"]["id"])
    mine = await a.call("get_chats_summary", {"filters": {"mine": True, "status": "active"}})
    assert mine["chats_summary"] == []
    mine = await b.call("get_chats_summary", {"filters": {"mine": True, "status": "active"}})
    assert [c["id"] for c in mine["chats_summary"]] == [chat_id]
    assert len(customer.pushes("chat_transferred")) == 1


async def test_transfer_to_a_group(sites: Sites) -> None:
    site = await sites(groups=["Sales", "Support"], agents={"s": (["Sales"], None), "t": (["Support"], None)})
    sales, support = site.groups["Sales"], site.groups["Support"]
    s = await site.agent("s")
    t = await site.agent("t")
    customer, chat = await chat_with(site, s, [sales])
    chat_id, thread_id = chat["id"], chat["thread"]["id"]
    await s.call("transfer_chat", {"chat_id": chat_id, "target": {"type": "group", "ids": [support]}})
    expected = {"chat_id": chat_id, "thread_id": thread_id, "requester_id": s.id, "type": "group", "ids": [support]}
    assert await customer.wait("chat_transferred") == expected
    assert (await customer.wait("chat_user_removed"))["user_id"] == s.id
    assert (await customer.wait("chat_user_added", where=lambda p: p["user"]["id"] == t.id))["user_type"] == "agent"
    pushed = (await t.wait("incoming_chat_thread"))["chat"]
    assert pushed["id"] == chat_id
    assert support in pushed["scopes"]["groups"]
    said = await customer.say(chat_id, "support?")
    await t.wait("incoming_event", where=lambda p: p["event"]["id"] == said["event"]["id"])


async def test_group_transfer_goes_to_another_agent_of_the_group(sites: Sites) -> None:
    """Transferring to one's own group hands the chat to a colleague, even a busier one."""
    site = await sites(groups=["Sales"], agents={"a": (["Sales"], None), "b": (["Sales"], None)})
    sales = site.groups["Sales"]
    b = await site.agent("b")
    for _ in range(2):  # b is busier than a will be
        other = await site.customer()
        assert agent_ids(await other.start_chat(groups=[sales])) == [b.id]
    a = await site.agent("a")
    customer, chat = await chat_with(site, a, [sales])
    await a.call("transfer_chat", {"chat_id": chat["id"], "target": {"type": "group", "ids": [sales]}})
    added = await customer.wait("chat_user_added", where=lambda p: p["user"]["id"] != a.id)
    assert added["user"]["id"] == b.id
    await b.wait("incoming_chat_thread", where=lambda p: p["chat"]["id"] == chat["id"])
    assert len(customer.pushes("chat_user_added", where=lambda p: p["user"]["id"] == a.id)) == 1


async def test_transfer_to_a_group_nobody_serves(sites: Sites) -> None:
    site = await sites(groups=["Sales", "Support"], agents={"s": (["Sales"], None), "t": (["Support"], None)})
    sales, support = site.groups["Sales"], site.groups["Support"]
    s = await site.agent("s")
    customer, chat = await chat_with(site, s, [sales])
    target = {"type": "group", "ids": [support]}
    # without force: fails, because no agent of Support can take it; nothing changes
    failed = await s.request("transfer_chat", {"chat_id": chat["id"], "target": target})
    assert failed["success"] is False, failed
    await customer.none("chat_user_removed")
    await customer.none("chat_transferred", within=0)
    said = await customer.say(chat["id"], "still with sales?")
    await s.wait("incoming_event", where=lambda p: p["event"]["id"] == said["event"]["id"])
    # with force: the chat leaves s and waits for Support
    await s.call("transfer_chat", {"chat_id": chat["id"], "target": target, "force": True})
    await customer.wait("chat_transferred")
    assert (await customer.wait("chat_user_removed"))["user_id"] == s.id
    got = await customer.wait("queue_position_updated")
    assert (got["chat_id"], got["queue"]["position"]) == (chat["id"], 1)
    t = await site.agent("t")
    assert (await t.wait("incoming_chat_thread"))["chat"]["id"] == chat["id"]
    assert (await customer.wait("chat_user_added", where=lambda p: p["user"]["id"] == t.id))["chat_id"] == chat["id"]


async def test_transfer_errors_change_nothing(sites: Sites) -> None:
    site = await sites(agents={"a": ((), None), "b": ((), None)})
    a = await site.agent("a")
    customer, chat = await chat_with(site, a)
    chat_id = chat["id"]
    error = await a.error("transfer_chat", {"chat_id": chat_id, "target": {"type": "group", "ids": [42]}})
    assert (error["type"], error["code"]) == ("group_not_found", 404)
    error = await a.error(
        "transfer_chat", {"chat_id": chat_id, "target": {"type": "group", "ids": [42]}, "force": True}
    )
    assert error["type"] == "group_not_found"
    error = await a.error("transfer_chat", {"chat_id": chat_id, "target": {"type": "agent", "ids": ["no-such-agent"]}})
    assert error["type"] == "not_found"
    error = await a.error("transfer_chat", {"chat_id": "no-such-chat", "target": {"type": "agent", "ids": [a.id]}})
    assert error["type"] == "not_found"
    stranger = await sites(agents={"x": ((), None)})
    x_id = stranger.agent_id("x")
    error = await a.error(
        "transfer_chat", {"chat_id": chat_id, "target": {"type": "agent", "ids": [x_id]}, "force": True}
    )
    assert error["type"] == "not_found"
    error = await a.error("add_user_to_chat", {"chat_id": chat_id, "user_id": x_id, "user_type": "agent"})
    assert error["type"] == "not_found"
    await customer.none("chat_transferred")
    await customer.none("chat_user_removed", within=0)
    users = (await customer.call("get_chats_summary", {}))["chats_summary"][0]["users"]
    assert {u["id"] for u in users} == {customer.id, a.id}
    await customer.call("close_thread", {"chat_id": chat_id})
    b_id = site.agent_id("b")
    error = await a.error(
        "transfer_chat", {"chat_id": chat_id, "target": {"type": "agent", "ids": [b_id]}, "force": True}
    )
    assert error["type"] == "chat_inactive"


async def test_transfer_may_target_an_agent_not_accepting_chats(sites: Sites) -> None:
    """LiveChat: "Transfers may target agents who are not accepting chats" (reference §5, routing)."""
    site = await sites(agents={"a": ((), None), "b": ((), None)})
    a = await site.agent("a")
    b = await not_accepting(site, "b")
    customer, chat = await chat_with(site, a)
    answer = await a.request("transfer_chat", {"chat_id": chat["id"], "target": {"type": "agent", "ids": [b.id]}})
    assert answer["success"] is True, answer
    assert (await b.wait("incoming_chat_thread"))["chat"]["id"] == chat["id"]
    assert (await customer.wait("chat_user_added", where=lambda p: p["user"]["id"] == b.id))["user_type"] == "agent"


async def test_forced_transfer_to_an_offline_agent(sites: Sites) -> None:
    site = await sites(agents={"a": ((), None), "b": ((), None)})
    a = await site.agent("a")
    customer, chat = await chat_with(site, a)
    b_id = site.agent_id("b")
    await a.call("transfer_chat", {"chat_id": chat["id"], "target": {"type": "agent", "ids": [b_id]}, "force": True})
    added = await customer.wait("chat_user_added", where=lambda p: p["user"]["id"] == b_id)
    assert added["user"]["present"] is False
    b = await site.agent("b")
    assert [c["id"] for c in b.answer["chats_summary"]] == [chat["id"]]
