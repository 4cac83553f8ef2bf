"""The agent API through a real server (SPEC §2, §3, §7, §12): tokens, login, access, lists,
archives, events, notes, typing, pushes from customers, bans and the Web API."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import aiohttp

from tests.integration.test_agent_support import (
    PASSWORD,
    PROFILE_KEYS,
    AgentConn,
    CustomerConn,
    Site,
    Sites,
    agent_ids,
    message,
    now,
    texts,
)
from tests.support import Rtm, customer_token


async def routed_chat(site: Site, agent: AgentConn, text: str = "hello") -> tuple[CustomerConn, dict]:
    """A customer whose new chat (opened with `text`) was routed to `agent`, the only one connected."""
    customer = await site.customer()
    chat = await customer.start_chat(text=text)
    assert agent_ids(chat) == [agent.id], chat
    await agent.wait("incoming_chat_thread", where=lambda p: p["chat"]["id"] == chat["id"])
    return customer, chat


# -- tokens and login ---------------------------------------------------------------------


async def test_agent_token_answers_the_spec_shape(sites: Sites, http: aiohttp.ClientSession) -> None:
    site = await sites(agents={"a": ((), None)})
    account = site.accounts["a"]
    url = f"{site.server.base}/v3.0/agent/token"
    body = {"license_id": site.license_id, "email": account.email, "password": PASSWORD}
    async with http.post(url, json=body) as resp:
        assert resp.status == 200
        got = await resp.json()
    assert set(got) >= {"access_token", "token_type", "expires_in", "agent_id", "license_id"}
    assert got["token_type"] == "Bearer"
    assert got["expires_in"] == 28800
    assert got["agent_id"] == account.id
    assert got["license_id"] == site.license_id
    # e-mail is case-insensitive? not specified; wrong password and unknown e-mail are both 401.
    for wrong in ({**body, "password": "password2"}, {**body, "email": "nobody@agents.example"}):
        async with http.post(url, json=wrong) as resp:
            assert resp.status == 401
            error = (await resp.json())["error"]
            assert error["type"] == "authentication"
            assert error["code"] == 401
            assert error["message"]
    async with http.post(url, json={**body, "license_id": 987654}) as resp:
        assert resp.status == 404
        assert (await resp.json())["error"]["type"] == "license_not_found"


async def test_unknown_licence_is_license_not_found_before_the_token(sites: Sites, http: aiohttp.ClientSession) -> None:
    site = await sites(agents={"a": ((), None)})
    token = await site.agent_token("a")
    url = f"{site.server.base}/v3.0/agent/action/get_chats_summary?license_id=987654"
    for headers in ({"Authorization": f"Bearer {token}"}, {}):
        async with http.post(url, json={}, headers=headers) as resp:
            assert resp.status == 404
            assert (await resp.json())["error"]["type"] == "license_not_found"
    # RTM: either the upgrade is refused with 404, or login answers license_not_found
    try:
        rtm = await Rtm.connect(http, site.server.ws_base, side="agent", license_id=987654)
    except aiohttp.WSServerHandshakeError as exc:
        assert exc.status == 404
    else:
        assert (await rtm.error("login", {"token": token}))["type"] == "license_not_found"
        await rtm.close()


async def test_login_answers_license_profile_and_chats_summary(sites: Sites) -> None:
    site = await sites(groups=["Sales"], agents={"a": (["Sales"], 3)})
    token = await site.agent_token("a")
    rtm = await site.rtm("agent")
    # the token works without the `Bearer ` prefix too
    answer = await rtm.call("login", {"token": token})
    assert answer["license"]["id"] == site.license_id
    me = answer["my_profile"]
    assert set(me) >= PROFILE_KEYS
    assert me["id"] == site.agent_id("a")
    assert me["type"] == "agent"
    assert me["name"] == "A"
    assert me["email"] == site.accounts["a"].email
    assert me["present"] is True
    assert me["routing_status"] == "accepting_chats"
    assert sorted(me["groups"]) == [0, site.groups["Sales"]]
    assert me["max_chats"] == 3
    assert answer["chats_summary"] == []
    await rtm.close()


async def test_login_lists_the_agents_active_chats(sites: Sites) -> None:
    site = await sites(agents={"a": ((), None)})
    agent = await site.agent("a")
    _, chat = await routed_chat(site, agent, "hi there")
    again = await site.agent("a")
    summary = again.answer["chats_summary"]
    assert [c["id"] for c in summary] == [chat["id"]]
    assert site.agent_id("a") in agent_ids(summary[0])


async def test_login_must_come_first_and_only_once(sites: Sites) -> None:
    site = await sites(agents={"a": ((), None)})
    token = await site.agent_token("a")
    rtm = await site.rtm("agent")
    assert (await rtm.error("get_chats_summary", {}))["type"] == "authentication"
    assert (await rtm.error("ping"))["type"] == "authentication"
    assert (await rtm.error("login", {"token": "Bearer not-a-token"}))["type"] == "authentication"
    # still open after the failures: a good login works
    await rtm.login(token)
    assert (await rtm.error("login", {"token": f"Bearer {token}"}))["type"] == "validation"
    assert await rtm.call("ping") == {}
    await rtm.close()


async def test_tokens_of_other_sides_and_licences_are_refused(sites: Sites, http: aiohttp.ClientSession) -> None:
    one = await sites(agents={"a": ((), None)})
    two = await sites(agents={"b": ((), None)})
    agent_one = await one.agent_token("a")
    # an agent token of licence 1 on licence 2
    rtm = await two.rtm("agent")
    assert (await rtm.error("login", {"token": f"Bearer {agent_one}"}))["type"] == "authentication"
    # a customer token on the agent side
    cust = await customer_token(http, one.server.base, one.license_id)
    assert (await rtm.error("login", {"token": f"Bearer {cust['access_token']}"}))["type"] == "authentication"
    await rtm.close()
    # an agent token on the customer side
    rtm = await one.rtm("customer")
    assert (await rtm.error("login", {"token": f"Bearer {agent_one}"}))["type"] == "authentication"
    await rtm.close()
    status, body = await two.web(agent_one, "get_chats_summary", {})
    assert (status, body["error"]["type"]) == (401, "authentication")
    status, body = await one.web(cust["access_token"], "get_chats_summary", {})
    assert (status, body["error"]["type"]) == (401, "authentication")


async def test_login_and_ping_are_rtm_only(sites: Sites) -> None:
    site = await sites(agents={"a": ((), None)})
    token = await site.agent_token("a")
    for action, payload in (("login", {"token": token}), ("ping", {})):
        status, body = await site.web(token, action, payload)
        assert status == 400, (action, body)
        assert body["error"]["type"] == "validation"
    status, body = await site.web(token, "no_such_action", {})
    assert (status, body["error"]["type"]) == (400, "validation")


async def test_web_api_without_a_token_is_authentication(sites: Sites, http: aiohttp.ClientSession) -> None:
    site = await sites(agents={"a": ((), None)})
    url = f"{site.server.base}/v3.0/agent/action/get_chats_summary?license_id={site.license_id}"
    async with http.post(url, json={}) as resp:
        assert resp.status == 401
        assert (await resp.json())["error"]["type"] == "authentication"


async def test_unknown_and_ill_typed_fields_are_validation(sites: Sites) -> None:
    site = await sites(agents={"a": ((), None)})
    agent = await site.agent("a")
    customer, chat = await routed_chat(site, agent)
    bad: list[tuple[str, dict]] = [
        ("get_chats_summary", {"filters": {"sttus": "active"}}),
        ("get_chats_summary", {"filters": {"status": "sleeping"}}),
        ("get_chats_summary", {"pagination": {"limit": 0}}),
        ("get_archives", {"filters": {"date_from": "yesterday"}}),
        ("get_archives", {"filters": {"date_from": "2026-13-45"}}),
        ("set_routing_status", {"status": "away"}),
        ("set_routing_status", {}),
        ("send_typing_indicator", {"chat_id": chat["id"]}),
        ("send_typing_indicator", {"chat_id": chat["id"], "is_typing": True, "recipients": "everybody"}),
        ("add_user_to_chat", {"chat_id": chat["id"], "user_id": customer.id, "user_type": "customer"}),
        ("remove_user_from_chat", {"chat_id": chat["id"], "user_id": customer.id, "user_type": "customer"}),
        ("transfer_chat", {"chat_id": chat["id"], "target": {"type": "bot", "ids": [agent.id]}}),
        ("transfer_chat", {"chat_id": chat["id"], "target": {"type": "agent", "ids": []}}),
        ("transfer_chat", {"chat_id": chat["id"]}),
        ("ban_customer", {"customer_id": customer.id}),
        ("send_event", {"chat_id": chat["id"], "event": {"type": "system_message", "text": "x"}}),
        ("send_event", {"chat_id": chat["id"], "event": message("x"), "extra": 1}),
    ]
    for action, payload in bad:
        error = await agent.error(action, payload)
        assert error["type"] == "validation", (action, payload, error)
        assert error["code"] == 400
    # nothing changed: the customer is still in the chat, still unbanned, still talking to the agent
    sent = await customer.say(chat["id"], "still here")
    assert (await agent.wait("incoming_event", chat_id=chat["id"]))["event"]["id"] == sent["event"]["id"]


# -- access -------------------------------------------------------------------------------


async def test_chat_outside_the_agents_groups_looks_missing(sites: Sites) -> None:
    site = await sites(groups=["Sales"], agents={"sales": (["Sales"], None), "plain": ((), None)})
    sales_group = site.groups["Sales"]
    customer = await site.customer()
    chat = await customer.start_chat(groups=[sales_group], text="for sales only")
    thread_id = chat["thread"]["id"]
    plain = await site.agent("plain")
    tries: list[tuple[str, dict]] = [
        ("get_chat_threads", {"chat_id": chat["id"], "thread_ids": [thread_id]}),
        ("get_chat_threads_summary", {"chat_id": chat["id"]}),
        ("send_event", {"chat_id": chat["id"], "event": message("peek")}),
        ("send_typing_indicator", {"chat_id": chat["id"], "is_typing": True}),
        ("add_user_to_chat", {"chat_id": chat["id"], "user_id": plain.id, "user_type": "agent"}),
        ("update_chat_properties", {"chat_id": chat["id"], "properties": {"ns": {"k": 1}}}),
        ("close_thread", {"chat_id": chat["id"]}),
        ("transfer_chat", {"chat_id": chat["id"], "target": {"type": "group", "ids": [0]}, "force": True}),
    ]
    for action, payload in tries:
        error = await plain.error(action, payload)
        assert error["type"] == "not_found", (action, error)
        assert error["code"] == 404
    listed = await plain.call("get_chats_summary", {})
    assert chat["id"] not in [c["id"] for c in listed["chats_summary"]]
    # the customer heard nothing of those attempts
    await customer.none("incoming_event", within=0.2)
    await customer.none("chat_user_added", within=0)
    await customer.none("thread_closed", within=0)
    # an agent of the group does see it
    sales = await site.agent("sales")
    await sales.wait("incoming_chat_thread", where=lambda p: p["chat"]["id"] == chat["id"])
    got = await sales.call("get_chat_threads", {"chat_id": chat["id"], "thread_ids": [thread_id]})
    assert texts(got["chat"]["threads"][0]["events"]) == ["for sales only"]


async def test_nothing_of_another_licence_is_visible(sites: Sites) -> None:
    one = await sites(agents={"a": ((), None)})
    two = await sites(agents={"b": ((), None)})
    a = await one.agent("a")
    customer, chat = await routed_chat(one, a, "licence one")
    b = await two.agent("b")
    error = await b.error("get_chat_threads", {"chat_id": chat["id"], "thread_ids": [chat["thread"]["id"]]})
    assert error["type"] == "not_found"
    assert (await b.error("send_event", {"chat_id": chat["id"], "event": message("x")}))["type"] == "not_found"
    assert (await b.error("ban_customer", {"customer_id": customer.id, "ban": {"days": 1}}))["type"] == "not_found"
    assert (await b.call("get_chats_summary", {}))["chats_summary"] == []
    assert (await b.call("get_archives", {}))["chats"] == []
    # the customer of licence one is not banned
    await customer.say(chat["id"], "fine")


# -- lists and archives -------------------------------------------------------------------


async def test_get_chats_summary_filters_and_pages(sites: Sites) -> None:
    site = await sites(agents={"a": ((), 1)})
    agent = await site.agent("a")
    c1, chat1 = await routed_chat(site, agent, "first")
    await c1.call("close_thread", {"chat_id": chat1["id"]})
    c2, chat2 = await routed_chat(site, agent, "second")
    c3 = await site.customer()
    chat3 = await c3.start_chat(text="third")
    assert agent_ids(chat3) == []  # the agent is full: queued
    await c3.wait("queue_position_updated", chat_id=chat3["id"])

    def ids(answer: dict) -> list[str]:
        return [c["id"] for c in answer["chats_summary"]]

    everything = await agent.call("get_chats_summary", {})
    assert set(everything) == {"chats_summary", "pagination"}
    assert ids(everything) == [chat3["id"], chat2["id"], chat1["id"]]
    assert everything["pagination"]["total"] == 3
    item = everything["chats_summary"][1]
    assert {"id", "order", "users", "properties", "scopes"} <= set(item)
    # the newest event of chat 2 is the routing's system message, written after "second"
    assert item["last_event"]["thread_id"] == chat2["thread"]["id"]
    assert item["last_event"]["event"]["type"] == "system_message"
    orders = [c["order"] for c in everything["chats_summary"]]
    assert orders == sorted(orders, reverse=True)

    active = ids(await agent.call("get_chats_summary", {"filters": {"status": "active"}}))
    assert chat2["id"] in active
    assert chat1["id"] not in active
    assert ids(await agent.call("get_chats_summary", {"filters": {"status": "queued"}})) == [chat3["id"]]
    assert ids(await agent.call("get_chats_summary", {"filters": {"status": "closed"}})) == [chat1["id"]]
    mine_active = await agent.call("get_chats_summary", {"filters": {"status": "active", "mine": True}})
    assert ids(mine_active) == [chat2["id"]]
    assert mine_active["pagination"]["total"] == 1

    first = await agent.call("get_chats_summary", {"pagination": {"page": 1, "limit": 2}})
    second = await agent.call("get_chats_summary", {"pagination": {"page": 2, "limit": 2}})
    assert ids(first) + ids(second) == ids(everything)
    assert first["pagination"]["total"] == second["pagination"]["total"] == 3
    for conn in (c2,):
        await conn.close()


async def test_get_archives_searches_closed_chats(sites: Sites) -> None:
    site = await sites(groups=["Sales"], agents={"a": ((), None), "sales": (["Sales"], None)})
    agent = await site.agent("a")
    c1, chat1 = await routed_chat(site, agent, "the blue submarine leaks")
    await agent.call("send_event", {"chat_id": chat1["id"], "event": message("try the yellow bucket")})
    await c1.call("close_thread", {"chat_id": chat1["id"]})
    _, chat2 = await routed_chat(site, agent, "nothing relevant here")
    await agent.call("close_thread", {"chat_id": chat2["id"]})
    _, chat3 = await routed_chat(site, agent, "blue submarine again, still open")
    # a closed chat of a group the agent is not in
    c4 = await site.customer()
    chat4 = await c4.start_chat(groups=[site.groups["Sales"]], text="submarine for sales")
    await c4.call("close_thread", {"chat_id": chat4["id"]})

    def chat_ids(answer: dict) -> list[str]:
        return [c["chat"]["id"] for c in answer["chats"]]

    found = await agent.call("get_archives", {"filters": {"query": "submarine"}})
    assert chat_ids(found) == [chat1["id"]]
    assert found["pagination"]["total"] == 1
    hit = found["chats"][0]["chat"]
    assert texts(hit["thread"]["events"]) == ["the blue submarine leaks", "try the yellow bucket"]
    assert {u["type"] for u in hit["users"]} == {"customer", "agent"}
    assert chat_ids(await agent.call("get_archives", {"filters": {"query": "yellow"}})) == [chat1["id"]]
    assert chat_ids(await agent.call("get_archives", {"filters": {"query": "zeppelin"}})) == []
    assert chat3["id"] not in chat_ids(await agent.call("get_archives", {}))

    today = datetime.now(UTC).date()
    day = today.isoformat()
    tomorrow = (today + timedelta(days=1)).isoformat()
    yesterday = (today - timedelta(days=1)).isoformat()
    both = await agent.call("get_archives", {"filters": {"date_from": day, "date_to": day}})
    assert set(chat_ids(both)) == {chat1["id"], chat2["id"]}
    assert chat_ids(await agent.call("get_archives", {"filters": {"date_from": tomorrow}})) == []
    assert chat_ids(await agent.call("get_archives", {"filters": {"date_to": yesterday}})) == []
    page1 = await agent.call("get_archives", {"pagination": {"page": 1, "limit": 1}})
    page2 = await agent.call("get_archives", {"pagination": {"page": 2, "limit": 1}})
    assert len(page1["chats"]) == len(page2["chats"]) == 1
    assert {*chat_ids(page1), *chat_ids(page2)} == {chat1["id"], chat2["id"]}
    assert page1["pagination"]["total"] == 2
    # an agent of the group finds the group's chat too
    sales = await site.agent("sales")
    assert set(chat_ids(await sales.call("get_archives", {"filters": {"query": "submarine"}}))) == {
        chat1["id"],
        chat4["id"],
    }


# -- events, notes, typing, sneak peeks ---------------------------------------------------


async def test_agent_message_reaches_the_customer_and_its_own_other_connections(sites: Sites) -> None:
    site = await sites(agents={"a": ((), None)})
    agent = await site.agent("a")
    customer, chat = await routed_chat(site, agent)
    tab = await site.agent("a")
    sent = await agent.call("send_event", {"chat_id": chat["id"], "event": message("how can I help?")})
    event = sent["event"]
    assert sent["thread_id"] == chat["thread"]["id"]
    assert event["author_id"] == agent.id
    assert event["text"] == "how can I help?"
    assert event["recipients"] == "all"
    expected = {"chat_id": chat["id"], "thread_id": sent["thread_id"], "event": event}
    assert await customer.wait("incoming_event", where=lambda p: p["event"]["type"] == "message") == expected
    assert await tab.wait("incoming_event", where=lambda p: p["event"]["id"] == event["id"]) == expected
    await agent.none("incoming_event", where=lambda p: p["event"]["id"] == event["id"])
    assert len(customer.pushes("incoming_event", where=lambda p: p["event"]["id"] == event["id"])) == 1
    # and the customer replies to the agent
    reply = await customer.say(chat["id"], "my order is late")
    for conn in (agent, tab):
        got = await conn.wait("incoming_event", where=lambda p: p["event"]["id"] == reply["event"]["id"])
        assert got["event"]["text"] == "my order is late"


async def test_internal_note_never_reaches_the_customer(sites: Sites) -> None:
    site = await sites(agents={"a": ((), None), "b": ((), None)})
    a = await site.agent("a")
    customer = await site.customer()
    chat = await customer.start_chat(text="help")
    assert agent_ids(chat) == [a.id]
    b = await site.agent("b")
    await b.call("add_user_to_chat", {"chat_id": chat["id"], "user_id": b.id, "user_type": "agent"})
    await a.wait("chat_user_added", chat_id=chat["id"])
    note = await a.call("send_event", {"chat_id": chat["id"], "event": message("VIP, be nice", recipients="agents")})
    assert note["event"]["recipients"] == "agents"
    got = await b.wait("incoming_event", where=lambda p: p["event"]["id"] == note["event"]["id"])
    assert got["event"]["text"] == "VIP, be nice"
    await customer.none("incoming_event", where=lambda p: p["event"]["id"] == note["event"]["id"])
    # nor reads it back
    threads = await customer.call("get_chat_threads", {"chat_id": chat["id"], "thread_ids": [chat["thread"]["id"]]})
    assert note["event"]["id"] not in [e["id"] for e in threads["chat"]["threads"][0]["events"]]
    assert "VIP, be nice" not in texts(threads["chat"]["threads"][0]["events"])
    summary = await customer.call("get_chats_summary", {})
    last = summary["chats_summary"][0].get("last_event", {}).get("event", {})
    assert last.get("id") != note["event"]["id"]
    again = await site.customer(customer.token)
    for item in again.answer["last_chats_summary"]:
        events = item.get("last_event_per_type", {}).get("events", [])
        assert note["event"]["id"] not in [e["id"] for e in events]
    # the agents read it back
    seen = await b.call("get_chat_threads", {"chat_id": chat["id"], "thread_ids": [chat["thread"]["id"]]})
    notes = [e for e in seen["chat"]["threads"][0]["events"] if e["id"] == note["event"]["id"]]
    assert notes and notes[0]["recipients"] == "agents"
    # a customer may not write one
    error = await customer.error("send_event", {"chat_id": chat["id"], "event": message("x", recipients="agents")})
    assert error["type"] == "validation"


async def test_internal_note_is_not_counted_for_the_customer(sites: Sites) -> None:
    """The customer's thread summaries count the events it can read, not the agents' notes."""
    site = await sites(agents={"a": ((), None)})
    a = await site.agent("a")
    customer, chat = await routed_chat(site, a)
    await a.call("send_event", {"chat_id": chat["id"], "event": message("note", recipients="agents")})
    await a.call("send_event", {"chat_id": chat["id"], "event": message("visible")})
    await customer.wait("incoming_event", where=lambda p: p["event"].get("text") == "visible")
    threads = await customer.call("get_chat_threads", {"chat_id": chat["id"], "thread_ids": [chat["thread"]["id"]]})
    readable = len(threads["chat"]["threads"][0]["events"])
    summary = await customer.call("get_chat_threads_summary", {"chat_id": chat["id"]})
    assert summary["chat"]["threads_summary"][0]["events_count"] == readable
    again = await site.customer(customer.token)
    assert again.answer["last_chats_summary"][0]["last_threads_summary"][-1]["events_count"] == readable
    # the agent's count includes the note
    mine = await a.call("get_chat_threads_summary", {"chat_id": chat["id"]})
    assert mine["chat"]["threads_summary"][0]["events_count"] == readable + 1


async def test_typing_indicator_reaches_the_customer(sites: Sites) -> None:
    site = await sites(agents={"a": ((), None), "b": ((), None)})
    a = await site.agent("a")
    customer, chat = await routed_chat(site, a)
    b = await site.agent("b")
    await b.call("add_user_to_chat", {"chat_id": chat["id"], "user_id": b.id, "user_type": "agent"})
    before = now()
    assert await a.call("send_typing_indicator", {"chat_id": chat["id"], "is_typing": True}) == {}
    got = await customer.wait("incoming_typing_indicator")
    assert got["chat_id"] == chat["id"]
    assert got["thread_id"] == chat["thread"]["id"]
    indicator = got["typing_indicator"]
    assert indicator["author_id"] == a.id
    assert indicator["is_typing"] is True
    assert isinstance(indicator["timestamp"], int)
    assert before - 1 <= indicator["timestamp"] <= now() + 1
    await a.none("incoming_typing_indicator")
    # for agents only: the other agent hears, the customer does not
    await a.call("send_typing_indicator", {"chat_id": chat["id"], "is_typing": False, "recipients": "agents"})
    got = await b.wait("incoming_typing_indicator", where=lambda p: not p["typing_indicator"]["is_typing"])
    assert got["typing_indicator"]["author_id"] == a.id
    await customer.none("incoming_typing_indicator", where=lambda p: not p["typing_indicator"]["is_typing"])
    # no active thread
    await customer.call("close_thread", {"chat_id": chat["id"]})
    error = await a.error("send_typing_indicator", {"chat_id": chat["id"], "is_typing": True})
    assert error["type"] == "chat_inactive"


async def test_customer_sneak_peek_reaches_the_chats_agents_only(sites: Sites) -> None:
    site = await sites(agents={"a": ((), None), "idle": ((), None)})
    a = await site.agent("a")
    customer, chat = await routed_chat(site, a)
    idle = await site.agent("idle")
    tab = await site.customer(customer.token)
    assert await customer.call("send_sneak_peek", {"chat_id": chat["id"], "sneak_peek_text": "I am typ"}) == {}
    got = await a.wait("incoming_sneak_peek")
    assert got["chat_id"] == chat["id"]
    assert got["thread_id"] == chat["thread"]["id"]
    assert got["sneak_peek"]["author_id"] == customer.id
    assert got["sneak_peek"]["text"] == "I am typ"
    assert isinstance(got["sneak_peek"]["timestamp"], int)
    await tab.none("incoming_sneak_peek")
    await idle.none("incoming_sneak_peek", within=0)


async def test_agents_get_the_customers_pushes(sites: Sites) -> None:
    site = await sites(groups=["Sales"], agents={"a": ((), None)})
    a = await site.agent("a")
    customer, chat = await routed_chat(site, a)
    chat_id, thread_id = chat["id"], chat["thread"]["id"]

    answer = await customer.call(
        "update_customer",
        {"customer": {"name": "Ada", "monitoring": {"page": {"url": "https://shop.example/cart", "title": "Cart"}}}},
    )
    got = await a.wait("customer_updated")
    assert got["chat_id"] == chat_id
    assert got["customer"]["id"] == customer.id
    assert got["customer"]["name"] == "Ada"
    assert got["customer"] == answer["customer"]
    page = await a.wait("customer_page_updated")
    assert page["customer_id"] == customer.id
    assert page["url"] == "https://shop.example/cart"
    assert page["title"] == "Cart"
    assert {"referrer", "opened_at"} <= set(page)

    stamp = await customer.call("update_last_seen_timestamp", {"chat_id": chat_id})
    got = await a.wait("last_seen_timestamp_updated")
    assert got == {"user_id": customer.id, "timestamp": stamp["timestamp"], "chat_id": chat_id}

    await customer.call("update_chat_properties", {"chat_id": chat_id, "properties": {"form": {"rating": 5}}})
    assert await a.wait("chat_properties_updated") == {"chat_id": chat_id, "properties": {"form": {"rating": 5}}}
    await customer.call(
        "update_chat_thread_properties",
        {"chat_id": chat_id, "thread_id": thread_id, "properties": {"form": {"step": "two"}}},
    )
    assert await a.wait("chat_thread_properties_updated") == {
        "chat_id": chat_id,
        "thread_id": thread_id,
        "properties": {"form": {"step": "two"}},
    }
    sales = site.groups["Sales"]
    await customer.call("update_chat_scopes", {"chat_id": chat_id, "add_scopes": {"groups": [sales]}})
    assert await a.wait("chat_scopes_updated") == {
        "chat_id": chat_id,
        "scopes_added": {"groups": [sales]},
        "scopes_removed": {"groups": []},
    }
    await customer.call("close_thread", {"chat_id": chat_id})
    assert await a.wait("thread_closed") == {"chat_id": chat_id, "thread_id": thread_id, "user_id": customer.id}
    # the agent was never removed along the way
    assert a.pushes("chat_user_removed") == []


async def test_agents_updates_reach_the_customer(sites: Sites) -> None:
    site = await sites(agents={"a": ((), None)})
    a = await site.agent("a")
    customer, chat = await routed_chat(site, a)
    tab = await site.agent("a")
    chat_id, thread_id = chat["id"], chat["thread"]["id"]
    props = {"crm": {"ticket": "T-1"}}
    assert await a.call("update_chat_properties", {"chat_id": chat_id, "properties": props}) == {}
    for conn in (customer, tab):
        assert await conn.wait("chat_properties_updated") == {"chat_id": chat_id, "properties": props}
    await a.none("chat_properties_updated")
    await a.call("update_chat_thread_properties", {"chat_id": chat_id, "thread_id": thread_id, "properties": props})
    expected = {"chat_id": chat_id, "thread_id": thread_id, "properties": props}
    for conn in (customer, tab):
        assert await conn.wait("chat_thread_properties_updated") == expected
    await a.none("chat_thread_properties_updated")
    seen = await a.call("update_last_seen_timestamp", {"chat_id": chat_id})
    got = await customer.wait("last_seen_timestamp_updated")
    assert got == {"user_id": a.id, "timestamp": seen["timestamp"], "chat_id": chat_id}
    assert await a.call("close_thread", {"chat_id": chat_id}) == {}
    expected = {"chat_id": chat_id, "thread_id": thread_id, "user_id": a.id}
    for conn in (customer, tab):
        assert await conn.wait("thread_closed") == expected
    await a.none("thread_closed")
    assert (await a.error("close_thread", {"chat_id": chat_id}))["type"] == "chat_inactive"


# -- bans ---------------------------------------------------------------------------------


async def test_ban_customer_disconnects_and_locks_out(sites: Sites, http: aiohttp.ClientSession) -> None:
    site = await sites(agents={"a": ((), None)})
    a = await site.agent("a")
    customer, chat = await routed_chat(site, a)
    tab = await site.customer(customer.token)
    for days in (0, 366):
        error = await a.error("ban_customer", {"customer_id": customer.id, "ban": {"days": days}})
        assert error["type"] == "validation", days
    await customer.say(chat["id"], "not banned yet")  # the failed bans changed nothing
    assert await a.call("ban_customer", {"customer_id": customer.id, "ban": {"days": 1}}) == {}
    for conn in (customer, tab):
        got = await conn.wait("customer_disconnected")
        assert got == {"reason": "customer_banned"}
        await asyncio_wait(conn.rtm)
    status, body = await site.web(customer.access, "get_chats_summary", {}, side="customer")
    assert (status, body["error"]["type"], body["error"]["code"]) == (403, "customer_banned", 403)
    body = {"license_id": site.license_id, "refresh_token": customer.token["refresh_token"]}
    async with http.post(f"{site.server.base}/v3.0/customer/token", json=body) as resp:
        assert resp.status == 403
        assert (await resp.json())["error"]["type"] == "customer_banned"
    rtm = await site.rtm("customer")
    assert (await rtm.error("login", {"token": customer.access}))["type"] == "customer_banned"
    await rtm.close()
    # an unknown customer
    error = await a.error("ban_customer", {"customer_id": "no-such-customer", "ban": {"days": 1}})
    assert error["type"] == "not_found"


async def asyncio_wait(rtm: Rtm, timeout: float = 5.0) -> None:
    """The server closed that connection."""
    await asyncio.wait_for(asyncio.shield(rtm.closed), timeout)


# -- the Web API --------------------------------------------------------------------------


async def test_every_agent_method_works_over_the_web_api(sites: Sites) -> None:
    site = await sites(groups=["Sales"], agents={"a": ((), None), "b": ((), None)})
    a = await site.agent("a")
    customer, chat = await routed_chat(site, a, "web api please")
    chat_id, thread_id = chat["id"], chat["thread"]["id"]
    token = a.token
    b_token = await site.agent_token("b")
    b = await site.agent("b", b_token)

    async def ok(action: str, payload: dict, who: str = token) -> dict:
        status, body = await site.web(who, action, payload)
        assert status == 200, (action, body)
        return dict(body)

    listed = await ok("get_chats_summary", {"filters": {"mine": True}})
    assert [c["id"] for c in listed["chats_summary"]] == [chat_id]
    threads = await ok("get_chat_threads", {"chat_id": chat_id, "thread_ids": [thread_id]})
    assert "web api please" in texts(threads["chat"]["threads"][0]["events"])
    summary = await ok("get_chat_threads_summary", {"chat_id": chat_id})
    assert summary["pagination"]["total"] == 1

    # over the Web API there is no requesting connection: the agent's own RTM connection hears too
    sent = await ok("send_event", {"chat_id": chat_id, "event": message("from the web")})
    for conn in (customer, a):
        got = await conn.wait("incoming_event", where=lambda p: p["event"]["id"] == sent["event"]["id"])
        assert got["event"]["text"] == "from the web"
    await ok("send_typing_indicator", {"chat_id": chat_id, "is_typing": True})
    assert (await customer.wait("incoming_typing_indicator"))["typing_indicator"]["author_id"] == a.id
    await ok("update_chat_properties", {"chat_id": chat_id, "properties": {"w": {"x": 1}}})
    await customer.wait("chat_properties_updated", chat_id=chat_id)
    await a.wait("chat_properties_updated", chat_id=chat_id)
    await ok(
        "update_chat_thread_properties", {"chat_id": chat_id, "thread_id": thread_id, "properties": {"w": {"y": 2}}}
    )
    await customer.wait("chat_thread_properties_updated", chat_id=chat_id)
    stamp = await ok("update_last_seen_timestamp", {"chat_id": chat_id})
    assert (await customer.wait("last_seen_timestamp_updated"))["timestamp"] == stamp["timestamp"]

    await ok("add_user_to_chat", {"chat_id": chat_id, "user_id": b.id, "user_type": "agent"}, b_token)
    assert (await customer.wait("chat_user_added", where=lambda p: p["user"]["id"] == b.id))["user_type"] == "agent"
    await b.wait("incoming_chat_thread", where=lambda p: p["chat"]["id"] == chat_id)
    await ok("remove_user_from_chat", {"chat_id": chat_id, "user_id": b.id, "user_type": "agent"}, b_token)
    await customer.wait("chat_user_removed", user_id=b.id)

    await ok("set_routing_status", {"status": "not_accepting_chats"})
    assert await a.wait("routing_status_set") == {"agent_id": a.id, "status": "not_accepting_chats"}
    await ok("set_routing_status", {"status": "accepting_chats"})
    await a.wait("routing_status_set", status="accepting_chats")

    await ok("transfer_chat", {"chat_id": chat_id, "target": {"type": "agent", "ids": [b.id]}})
    transferred = await customer.wait("chat_transferred")
    assert transferred["requester_id"] == a.id
    await b.wait("incoming_chat_thread", where=lambda p: p["chat"]["id"] == chat_id)

    archives = await ok("get_archives", {})
    assert archives["chats"] == []
    status, body = await site.web(
        token, "transfer_chat", {"chat_id": chat_id, "target": {"type": "group", "ids": [77]}}
    )
    assert (status, body["error"]["type"]) == (404, "group_not_found")
    await ok("close_thread", {"chat_id": chat_id}, b_token)
    await customer.wait("thread_closed", chat_id=chat_id)
    archives = await ok("get_archives", {"filters": {"query": "web"}})
    assert [c["chat"]["id"] for c in archives["chats"]] == [chat_id]

    await ok("ban_customer", {"customer_id": customer.id, "ban": {"days": 2}})
    assert await customer.wait("customer_disconnected") == {"reason": "customer_banned"}

    # the same validation as over RTM
    status, body = await site.web(token, "ban_customer", {"customer_id": customer.id, "ban": {"days": 0}})
    assert (status, body["error"]["type"]) == (400, "validation")
