"""Routing through a real server (SPEC §7): who gets a new thread, the per-licence FIFO queue,
queue positions, capacity, routing status, scopes and re-routing. Every test has a licence of its own."""

from __future__ import annotations

import json

from tests.integration.test_agent_support import (
    AGENT_USER_KEYS,
    AgentConn,
    CustomerConn,
    Site,
    Sites,
    agent_ids,
    message,
)


async def new_chat(site: Site, groups: list[int] | None = None, text: str = "hi") -> tuple[CustomerConn, dict]:
    customer = await site.customer()
    return customer, await customer.start_chat(groups=groups, text=text)


async def queued(site: Site, groups: list[int] | None = None, position: int | None = None) -> tuple[CustomerConn, dict]:
    """A new chat that must wait in the queue (at `position`, when given)."""
    customer, chat = await new_chat(site, groups)
    assert agent_ids(chat) == [], chat
    got = await customer.wait("queue_position_updated", chat_id=chat["id"])
    if position is not None:
        assert got["queue"]["position"] == position, got
    return customer, chat


def got_chat(agent: AgentConn, chat_id: str) -> bool:
    return bool(agent.pushes("incoming_chat_thread", where=lambda p: p["chat"]["id"] == chat_id))


# -- assignment ---------------------------------------------------------------------------


async def test_new_chat_goes_to_the_connected_agent(sites: Sites) -> None:
    site = await sites(agents={"a": ((), None)})
    a = await site.agent("a")
    customer, chat = await new_chat(site, text="where is my parcel?")
    # start_chat's answer already holds the agent
    users = {u["type"]: u for u in chat["users"]}
    assert users["agent"]["id"] == a.id
    assert users["customer"]["id"] == customer.id
    assert set(users["agent"]) >= AGENT_USER_KEYS
    # the customer hears who joined, and a system message
    added = await customer.wait("chat_user_added")
    assert added["chat_id"] == chat["id"]
    assert added["thread_id"] == chat["thread"]["id"]
    assert added["user_type"] == "agent"
    assert added["user"]["id"] == a.id
    assert added["user"]["type"] == "agent"
    assert added["user"]["present"] is True
    assert set(added["user"]) >= AGENT_USER_KEYS
    system = await customer.wait("incoming_event", where=lambda p: p["event"]["type"] == "system_message")
    assert system["chat_id"] == chat["id"]
    assert system["thread_id"] == chat["thread"]["id"]
    assert system["event"]["text"]
    assert "system_message_type" in system["event"]
    # a customer never sees the agent's e-mail (the licence does not make it public)
    email = site.accounts["a"].email
    assert email not in json.dumps([chat, added, system])
    # the agent gets the thread with the customer's first message
    pushed = (await a.wait("incoming_chat_thread"))["chat"]
    assert {"id", "order", "users", "properties", "scopes", "thread"} <= set(pushed)
    assert pushed["id"] == chat["id"]
    assert pushed["thread"]["id"] == chat["thread"]["id"]
    assert pushed["thread"]["active"] is True
    assert "where is my parcel?" in [e.get("text") for e in pushed["thread"]["events"]]
    assert {u["id"] for u in pushed["users"]} == {customer.id, a.id}
    assert pushed["scopes"] == {"groups": [0]}
    # each exactly once
    await customer.none("chat_user_added", where=lambda p: p is not added and p["user"]["id"] != a.id)
    assert len(customer.pushes("chat_user_added")) == 1
    assert len(a.pushes("incoming_chat_thread")) == 1
    assert customer.pushes("queue_position_updated") == []
    # the system message is stored in the thread
    threads = await customer.call("get_chat_threads", {"chat_id": chat["id"], "thread_ids": [chat["thread"]["id"]]})
    kinds = [e["type"] for e in threads["chat"]["threads"][0]["events"]]
    assert kinds.count("system_message") >= 1
    assert a.id in threads["chat"]["threads"][0]["user_ids"]


async def test_fewest_active_chats_wins_and_ties_go_to_the_longest_idle(sites: Sites) -> None:
    site = await sites(agents={"a": ((), None), "b": ((), None)})
    a = await site.agent("a")
    b = await site.agent("b")
    c1, chat1 = await new_chat(site)
    first = agent_ids(chat1)
    assert len(first) == 1
    x = first[0]
    y = b.id if x == a.id else a.id
    _, chat2 = await new_chat(site)
    assert agent_ids(chat2) == [y]  # 0 chats beats 1
    _, chat3 = await new_chat(site)
    assert agent_ids(chat3) == [x]  # 1 each: x was assigned longer ago
    _, chat4 = await new_chat(site)
    assert agent_ids(chat4) == [y]
    await c1.call("close_thread", {"chat_id": chat1["id"]})  # x: 1, y: 2
    _, chat5 = await new_chat(site)
    assert agent_ids(chat5) == [x]


async def test_only_agents_of_the_chats_groups_get_it(sites: Sites) -> None:
    site = await sites(groups=["Sales", "Support"], agents={"s": (["Sales"], None), "t": (["Support"], None)})
    sales, support = site.groups["Sales"], site.groups["Support"]
    s = await site.agent("s")
    t = await site.agent("t")
    _, chat1 = await new_chat(site, [support])
    assert agent_ids(chat1) == [t.id]
    _, chat2 = await new_chat(site, [support])
    assert agent_ids(chat2) == [t.id]  # s is free, but not in scope
    _, chat3 = await new_chat(site, [sales, support])
    assert agent_ids(chat3) == [s.id]  # both in scope: fewer chats
    _, chat4 = await new_chat(site, [sales])
    assert agent_ids(chat4) == [s.id]
    assert not got_chat(s, chat1["id"])
    assert not got_chat(s, chat2["id"])
    assert not got_chat(t, chat3["id"])
    assert not got_chat(t, chat4["id"])


async def test_chat_waits_until_an_agent_of_its_group_connects(sites: Sites) -> None:
    site = await sites(groups=["Sales", "Support"], agents={"s": (["Sales"], None), "t": (["Support"], None)})
    t = await site.agent("t")
    customer, chat = await new_chat(site, [site.groups["Sales"]])
    assert agent_ids(chat) == []
    got = await customer.wait("queue_position_updated")
    assert got["chat_id"] == chat["id"]
    assert got["thread_id"] == chat["thread"]["id"]
    assert got["queue"]["position"] == 1
    assert isinstance(got["queue"]["wait_time"], int)
    assert got["queue"]["wait_time"] >= 0
    s = await site.agent("s")
    pushed = (await s.wait("incoming_chat_thread"))["chat"]
    assert pushed["id"] == chat["id"]
    added = await customer.wait("chat_user_added")
    assert added["user"]["id"] == s.id
    assert added["thread_id"] == chat["thread"]["id"]
    await t.none("incoming_chat_thread", within=0.1)
    assert (await s.call("get_chats_summary", {"filters": {"status": "queued"}}))["chats_summary"] == []


async def test_not_accepting_agent_gets_no_chats_until_it_accepts(sites: Sites) -> None:
    site = await sites(agents={"a": ((), None)})
    a = await site.agent("a")
    tab = await site.agent("a")
    assert await a.call("set_routing_status", {"status": "not_accepting_chats"}) == {}
    assert await tab.wait("routing_status_set") == {"agent_id": a.id, "status": "not_accepting_chats"}
    await a.none("routing_status_set", within=0.1)
    c1, chat1 = await queued(site, position=1)
    c2, chat2 = await queued(site, position=2)
    await a.call("set_routing_status", {"status": "accepting_chats"})
    assert await tab.wait("routing_status_set", status="accepting_chats") == {
        "agent_id": a.id,
        "status": "accepting_chats",
    }
    for customer, chat in ((c1, chat1), (c2, chat2)):
        added = await customer.wait("chat_user_added")
        assert (added["chat_id"], added["user"]["id"]) == (chat["id"], a.id)
        await a.wait("incoming_chat_thread", where=lambda p, cid=chat["id"]: p["chat"]["id"] == cid)


async def test_queue_is_fifo_and_positions_follow(sites: Sites) -> None:
    site = await sites(agents={"a": ((), 1)})
    a = await site.agent("a")
    c0, chat0 = await new_chat(site)
    assert agent_ids(chat0) == [a.id]
    waiting = [await queued(site, position=n) for n in (1, 2, 3)]
    queue_ids = [chat["id"] for _, chat in waiting]
    listed = await a.call("get_chats_summary", {"filters": {"status": "queued"}})
    assert sorted(c["id"] for c in listed["chats_summary"]) == sorted(queue_ids)

    await c0.call("close_thread", {"chat_id": chat0["id"]})
    (c1, chat1), (c2, chat2), (c3, chat3) = waiting
    assert (await c1.wait("chat_user_added"))["user"]["id"] == a.id
    await a.wait("incoming_chat_thread", where=lambda p: p["chat"]["id"] == chat1["id"])
    assert (await c2.wait("queue_position_updated", chat_id=chat2["id"]))["queue"]["position"] == 1
    assert (await c3.wait("queue_position_updated", chat_id=chat3["id"]))["queue"]["position"] == 2

    await a.call("close_thread", {"chat_id": chat1["id"]})
    assert (await c2.wait("chat_user_added"))["user"]["id"] == a.id
    assert (await c3.wait("queue_position_updated", chat_id=chat3["id"]))["queue"]["position"] == 1
    await c3.none("chat_user_added", within=0.3)
    # every position was told once, in order; the one being served heard no more
    assert [p["queue"]["position"] for p in c1.pushes("queue_position_updated")] == [1]
    assert [p["queue"]["position"] for p in c2.pushes("queue_position_updated")] == [2, 1]
    assert [p["queue"]["position"] for p in c3.pushes("queue_position_updated")] == [3, 2, 1]
    waits = [p["queue"]["wait_time"] for p in c3.pushes("queue_position_updated")]
    assert waits == sorted(waits, reverse=True)


async def test_leaving_the_queue_moves_the_others_up(sites: Sites) -> None:
    site = await sites(agents={"a": ((), None)})
    c1, chat1 = await queued(site, position=1)  # nobody connected
    c2, chat2 = await queued(site, position=2)
    await c1.call("close_thread", {"chat_id": chat1["id"]})
    assert (await c2.wait("queue_position_updated"))["queue"]["position"] == 1
    a = await site.agent("a")
    await a.wait("incoming_chat_thread", where=lambda p: p["chat"]["id"] == chat2["id"])
    await a.none("incoming_chat_thread", where=lambda p: p["chat"]["id"] == chat1["id"])


async def test_agent_joining_a_queued_chat_moves_the_queue(sites: Sites) -> None:
    """Taking a chat from the queue by hand (the console's "Accept") changes the others' positions."""
    site = await sites(agents={"a": ((), None)})
    token = await site.agent_token("a")
    status, _ = await site.web(token, "set_routing_status", {"status": "not_accepting_chats"})
    assert status == 200
    a = await site.agent("a", token)
    c1, chat1 = await queued(site, position=1)
    c2, chat2 = await queued(site, position=2)
    await a.call("add_user_to_chat", {"chat_id": chat1["id"], "user_id": a.id, "user_type": "agent"})
    added = await c1.wait("chat_user_added")
    assert added["user"]["id"] == a.id
    listed = await a.call("get_chats_summary", {"filters": {"status": "queued"}})
    assert [c["id"] for c in listed["chats_summary"]] == [chat2["id"]]
    got = await c2.wait("queue_position_updated", where=lambda p: p["queue"]["position"] == 1)
    assert got["chat_id"] == chat2["id"]


async def test_licence_default_capacity_is_six(sites: Sites) -> None:
    site = await sites(agents={"a": ((), None)})
    a = await site.agent("a")
    for _ in range(6):
        _, chat = await new_chat(site)
        assert agent_ids(chat) == [a.id]
    await queued(site, position=1)


async def test_per_agent_capacity_overrides_the_default(sites: Sites) -> None:
    site = await sites(agents={"a": ((), 2), "b": ((), 1)})
    a = await site.agent("a")
    b = await site.agent("b")
    chats = [(await new_chat(site))[1] for _ in range(3)]
    loads = [agent_ids(chat)[0] for chat in chats]
    assert sorted(loads) == sorted([a.id, a.id, b.id])
    await queued(site, position=1)


async def test_freed_slot_takes_the_oldest_chat_it_can_serve(sites: Sites) -> None:
    """The head of the licence's queue waits for a group nobody serves; it does not block the rest."""
    site = await sites(groups=["Sales"], agents={"a": ((), 1)})
    a = await site.agent("a")
    c0, chat0 = await new_chat(site)
    assert agent_ids(chat0) == [a.id]
    sales_customer, _ = await queued(site, [site.groups["Sales"]], position=1)
    c2, _ = await queued(site, position=2)
    c3, _ = await queued(site, position=3)
    await c0.call("close_thread", {"chat_id": chat0["id"]})
    assert (await c2.wait("chat_user_added"))["user"]["id"] == a.id
    assert await c3.wait("queue_position_updated", where=lambda p: p["queue"]["position"] == 2)
    assert sales_customer.pushes("chat_user_added") == []
    assert [p["queue"]["position"] for p in sales_customer.pushes("queue_position_updated")] == [1]


async def test_agent_who_just_disconnected_still_gets_chats(sites: Sites) -> None:
    """Within 30 s of its last connection closing, an agent still counts (it may be reconnecting)."""
    site = await sites(agents={"a": ((), None)})
    a = await site.agent("a")
    await a.close()
    customer, chat = await new_chat(site, text="anyone?")
    assert agent_ids(chat) == [a.id]
    added = await customer.wait("chat_user_added")
    assert added["user"]["id"] == a.id
    assert added["user"]["present"] is False
    back = await site.agent("a")
    assert chat["id"] in [c["id"] for c in back.answer["chats_summary"]]


async def test_customer_scope_change_reroutes_to_an_agent_in_scope(sites: Sites) -> None:
    site = await sites(groups=["Sales", "Support"], agents={"s": (["Sales"], None), "t": (["Support"], None)})
    sales, support = site.groups["Sales"], site.groups["Support"]
    s = await site.agent("s")
    t = await site.agent("t")
    customer, chat = await new_chat(site, [sales])
    assert agent_ids(chat) == [s.id]
    await customer.call(
        "update_chat_scopes",
        {"chat_id": chat["id"], "add_scopes": {"groups": [support]}, "remove_scopes": {"groups": [sales]}},
    )
    removed = await customer.wait("chat_user_removed")
    assert removed == {"chat_id": chat["id"], "thread_id": chat["thread"]["id"], "user_id": s.id, "user_type": "agent"}
    assert (await s.wait("chat_user_removed"))["user_id"] == s.id
    added = await customer.wait("chat_user_added", where=lambda p: p["user"]["id"] == t.id)
    assert added["thread_id"] == chat["thread"]["id"]
    pushed = (await t.wait("incoming_chat_thread"))["chat"]
    assert pushed["id"] == chat["id"]
    assert pushed["scopes"] == {"groups": [support]}
    # the chat is now out of the old agent's sight
    error = await s.error("get_chat_threads", {"chat_id": chat["id"], "thread_ids": [chat["thread"]["id"]]})
    assert error["type"] == "not_found"
    # and the new agent talks to the customer
    sent = await t.call("send_event", {"chat_id": chat["id"], "event": message("support here")})
    assert await customer.wait("incoming_event", where=lambda p: p["event"]["id"] == sent["event"]["id"])


async def test_customer_scope_change_queues_when_nobody_is_in_scope(sites: Sites) -> None:
    site = await sites(groups=["Sales", "Support"], agents={"s": (["Sales"], None)})
    sales, support = site.groups["Sales"], site.groups["Support"]
    s = await site.agent("s")
    customer, chat = await new_chat(site, [sales])
    assert agent_ids(chat) == [s.id]
    await customer.call(
        "update_chat_scopes",
        {"chat_id": chat["id"], "add_scopes": {"groups": [support]}, "remove_scopes": {"groups": [sales]}},
    )
    assert (await customer.wait("chat_user_removed"))["user_id"] == s.id
    got = await customer.wait("queue_position_updated")
    assert (got["chat_id"], got["queue"]["position"]) == (chat["id"], 1)
    assert customer.pushes("chat_user_added", where=lambda p: p["user"]["id"] != s.id) == []


async def test_widening_a_queued_chats_scopes_routes_it(sites: Sites) -> None:
    """A waiting thread waits only while no agent in its scopes can take it (SPEC §7)."""
    site = await sites(groups=["Sales", "Support"], agents={"t": (["Support"], None)})
    t = await site.agent("t")
    customer, chat = await queued(site, [site.groups["Sales"]], position=1)
    await customer.call(
        "update_chat_scopes", {"chat_id": chat["id"], "add_scopes": {"groups": [site.groups["Support"]]}}
    )
    added = await customer.wait("chat_user_added")
    assert (added["chat_id"], added["user"]["id"]) == (chat["id"], t.id)
    assert (await t.wait("incoming_chat_thread"))["chat"]["id"] == chat["id"]


async def test_scope_change_keeping_the_agent_in_scope_changes_no_one(sites: Sites) -> None:
    site = await sites(groups=["Sales", "Support"], agents={"s": (["Sales"], None)})
    s = await site.agent("s")
    customer, chat = await new_chat(site, [site.groups["Sales"]])
    await customer.call(
        "update_chat_scopes", {"chat_id": chat["id"], "add_scopes": {"groups": [site.groups["Support"]]}}
    )
    await s.wait("chat_scopes_updated")
    await customer.none("chat_user_removed")
    await s.none("chat_user_removed", within=0)


async def test_reopened_chat_is_routed_again(sites: Sites) -> None:
    site = await sites(agents={"a": ((), None)})
    a = await site.agent("a")
    customer, chat = await new_chat(site)
    await customer.call("close_thread", {"chat_id": chat["id"]})
    await a.wait("thread_closed")
    sent = await customer.say(chat["id"], "one more thing")
    assert sent["thread_id"] != chat["thread"]["id"]
    pushed = await a.wait("incoming_chat_thread", where=lambda p: p["chat"]["thread"]["id"] == sent["thread_id"])
    assert pushed["chat"]["id"] == chat["id"]
    assert "one more thing" in [e.get("text") for e in pushed["chat"]["thread"]["events"]]
    added = await customer.wait("chat_user_added", thread_id=sent["thread_id"])
    assert added["user"]["id"] == a.id


async def test_agent_cannot_join_a_chat_beyond_its_groups(sites: Sites) -> None:
    site = await sites(groups=["Sales"], agents={"a": (["Sales"], None), "b": ((), None)})
    a = await site.agent("a")
    _, chat = await new_chat(site, [site.groups["Sales"]])
    assert agent_ids(chat) == [a.id]
    b = await site.agent("b")
    # b may not see the chat at all
    error = await b.error("add_user_to_chat", {"chat_id": chat["id"], "user_id": b.id, "user_type": "agent"})
    assert error["type"] == "not_found"
    # a may not add b either: b is in none of the chat's groups
    error = await a.error("add_user_to_chat", {"chat_id": chat["id"], "user_id": b.id, "user_type": "agent"})
    assert error["type"] in {"authorization", "validation"}
    await b.none("incoming_chat_thread")
