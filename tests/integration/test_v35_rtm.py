"""The LiveChat-SDK dialect over RTM (SPEC §11): paths, login, methods, echo pushes, shared store."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

from tests.integration.test_agent_support import Sites
from tests.integration.test_v35_support import (
    message,
    org_of,
    start_payload,
    v35_customer,
    v35_rtm,
)
from tests.support import Rtm, customer_token

SDK_LOGIN_EXTRAS = {
    "customer": {},
    "customer_side_storage": {},
    "is_mobile": False,
    "application": {"name": "customer_sdk", "version": "4.0.2"},
    "pushes": {"3.5": ["incoming_chat", "incoming_event", "chat_deactivated", "queue_position_updated"]},
}
STATISTICS = {
    "chats_count",
    "threads_count",
    "visits_count",
    "page_views_count",
    "greetings_shown_count",
    "greetings_accepted_count",
}


async def test_login_answers_what_customer_sdk_reads_and_ignores_its_extra_fields(sites: Sites) -> None:
    site = await sites()
    me = await v35_customer(site, **SDK_LOGIN_EXTRAS)
    answer = me.answer
    assert answer["customer_id"] == me.id
    assert answer["customer"]["id"] == me.id
    assert set(answer["customer"]["statistics"]) == STATISTICS
    assert answer["chats"] == []
    assert isinstance(answer["__priv_dynamic_config"], dict)
    assert "online_groups_ids" not in answer["__priv_dynamic_config"]


async def test_customer_sdk_envelope_with_version_field_is_accepted(sites: Sites) -> None:
    site = await sites()
    rtm = await v35_rtm(site)
    token = await customer_token(site.http, site.server.base, site.license_id)
    login = {"token": token["access_token"]}
    frame = {"request_id": "jbvg66bxep", "action": "login", "version": "3.5", "payload": login}
    await rtm.ws.send_str(json.dumps(frame, indent=4))
    answer = await asyncio.wait_for(rtm.unmatched.get(), 5)
    assert answer["success"] is True and answer["request_id"] == "jbvg66bxep"
    assert answer["payload"]["customer_id"] == token["customer_id"]
    await rtm.close()


async def test_start_chat_and_send_event_answer_v35_and_push_to_the_requester(sites: Sites) -> None:
    site = await sites()
    me = await v35_customer(site)
    frame, pushed = await me.echo("start_chat", {"active": True, **start_payload("hello")}, "incoming_chat")
    answer = frame["payload"]
    assert set(answer) == {"chat_id", "thread_id", "event_ids"}
    chat = pushed["payload"]["chat"]
    assert chat["id"] == answer["chat_id"] and chat["thread"]["id"] == answer["thread_id"]
    assert chat["access"] == {"group_ids": [0]}
    [event] = chat["thread"]["events"]
    assert event["id"] == answer["event_ids"][0] and event["text"] == "hello" and event["visibility"] == "all"
    assert "order" not in event and "recipients" not in event

    again = {"chat_id": answer["chat_id"], "event": message("again")}
    frame, pushed = await me.echo("send_event", again, "incoming_event")
    assert set(frame["payload"]) == {"event_id"}
    assert pushed["payload"]["event"]["id"] == frame["payload"]["event_id"]
    assert pushed["payload"]["chat_id"] == answer["chat_id"] and pushed["payload"]["thread_id"] == answer["thread_id"]


async def test_another_connection_of_the_customer_gets_the_pushes_without_request_id(sites: Sites) -> None:
    site = await sites()
    me = await v35_customer(site)
    other = await v35_customer(site, me.token)
    frame, _ = await me.echo("start_chat", start_payload("one"), "incoming_chat")
    chat_id = frame["payload"]["chat_id"]
    seen = await other.wait("incoming_chat")
    assert seen["chat"]["id"] == chat_id
    assert all("request_id" not in f for f in other.log)
    await me.echo("send_event", {"chat_id": chat_id, "event": message("two")}, "incoming_event")
    assert (await other.wait("incoming_event"))["event"]["text"] == "two"


async def test_a_v35_chat_is_seen_through_v30_and_by_the_agent_who_answers(sites: Sites) -> None:
    site = await sites(agents={"ann": ((), None)})
    agent = await site.agent("ann")
    me = await v35_customer(site)
    frame, _ = await me.echo("start_chat", start_payload("help me"), "incoming_chat")
    chat_id = frame["payload"]["chat_id"]
    added = await me.wait("user_added_to_chat", chat_id=chat_id)
    assert added["user"]["id"] == agent.id and "user_type" not in added
    incoming = await agent.wait("incoming_chat_thread")
    assert incoming["chat"]["id"] == chat_id
    assert [e["text"] for e in incoming["chat"]["thread"]["events"] if e["type"] == "message"] == ["help me"]

    # The v3.0 customer API shows the same chat to the same customer.
    v30 = await site.customer(me.token)
    summary = (await v30.call("get_chats_summary"))["chats_summary"]
    assert [c["id"] for c in summary] == [chat_id]

    await agent.call("send_event", {"chat_id": chat_id, "event": message("how can I help?")})
    pushed = await me.wait("incoming_event", where=lambda p: p["event"].get("text") == "how can I help?")
    assert pushed["event"]["author_id"] == agent.id and pushed["event"]["visibility"] == "all"
    assert "recipients" not in pushed["event"]
    # And the v3.0 connection gets the same news in v3.0 shape.
    v30_pushed = await v30.wait("incoming_event", where=lambda p: p["event"].get("text") == "how can I help?")
    assert v30_pushed["event"]["recipients"] == "all"

    await agent.call("send_typing_indicator", {"chat_id": chat_id, "is_typing": True})
    typing = await me.wait("incoming_typing_indicator")
    assert typing["typing_indicator"]["is_typing"] is True

    await agent.call("close_thread", {"chat_id": chat_id})
    closed = await me.wait("chat_deactivated")
    assert closed["chat_id"] == chat_id and closed["user_id"] == agent.id


async def test_a_v30_chat_is_seen_through_v35(sites: Sites) -> None:
    site = await sites()
    v30 = await site.customer()
    chat = await v30.start_chat(text="from v3.0")
    me = await v35_customer(site, v30.token)
    assert me.answer["chats"] == [{"chat_id": chat["id"], "has_active_thread": True, "has_unread_events": False}]
    got = await me.call("get_chat", {"chat_id": chat["id"]})
    assert got["id"] == chat["id"]
    assert [e["text"] for e in got["thread"]["events"]] == ["from v3.0"]
    listed = await me.call("list_chats")
    assert [c["id"] for c in listed["chats_summary"]] == [chat["id"]]
    assert listed["total_chats"] == 1
    # v3.0's connection hears v3.5's event, in v3.0 shape.
    await me.echo("send_event", {"chat_id": chat["id"], "event": message("from v3.5")}, "incoming_event")
    heard = await v30.wait("incoming_event")
    assert heard["event"]["text"] == "from v3.5" and "order" in heard["event"]


async def test_deactivate_and_resume(sites: Sites) -> None:
    site = await sites()
    me = await v35_customer(site)
    v30 = await site.customer(me.token)
    frame, _ = await me.echo("start_chat", start_payload("hi"), "incoming_chat")
    chat_id, first = frame["payload"]["chat_id"], frame["payload"]["thread_id"]
    err = await me.error("resume_chat", {"chat": {"id": chat_id}})
    assert err["type"] == "validation"
    _, pushed = await me.echo("deactivate_chat", {"id": chat_id}, "chat_deactivated")
    assert pushed["payload"] == {"chat_id": chat_id, "thread_id": first, "user_id": me.id}
    closed = await v30.wait("thread_closed")
    assert closed["thread_id"] == first
    err = await me.error("deactivate_chat", {"id": chat_id})
    assert err["type"] == "chat_inactive"

    unknown_group = {"chat": {"id": chat_id, "access": {"group_ids": [77]}, "thread": {"events": [message("x")]}}}
    assert (await me.error("resume_chat", unknown_group))["type"] == "group_not_found"
    too_big = {"chat": {"id": chat_id, "thread": {"events": [message("x" * 17000)]}}}
    assert (await me.error("resume_chat", too_big))["type"] == "entity_too_large"
    assert (await me.call("get_chat", {"chat_id": chat_id}))["thread"]["active"] is False

    payload = {"chat": {"id": chat_id, "thread": {"events": [message("back")]}}, "continuous": True}
    frame, pushed = await me.echo("resume_chat", payload, "incoming_chat")
    second = frame["payload"]["thread_id"]
    assert second != first and len(frame["payload"]["event_ids"]) == 1
    assert pushed["payload"]["chat"]["thread"]["id"] == second
    reopened = await v30.wait("incoming_chat_thread", where=lambda p: p["chat"]["thread"]["id"] == second)
    assert [e["text"] for e in reopened["chat"]["thread"]["events"]] == ["back"]

    threads = await me.call("list_threads", {"chat_id": chat_id, "sort_order": "asc"})
    assert [t["id"] for t in threads["threads"]] == [first, second] and threads["found_threads"] == 2
    newest = await me.call("get_chat", {"chat_id": chat_id})
    assert newest["thread"]["id"] == second and newest["thread"]["previous_thread_id"] == first
    assert "next_thread_id" not in newest["thread"]
    old = await me.call("get_chat", {"chat_id": chat_id, "thread_id": first})
    assert old["thread"]["active"] is False and old["thread"]["next_thread_id"] == second
    err = await me.error("get_chat", {"chat_id": chat_id, "thread_id": "NOSUCHTHREAD"})
    assert err["type"] == "not_found"


async def test_properties_update_and_delete_with_their_pushes(sites: Sites) -> None:
    site = await sites()
    me = await v35_customer(site)
    v30 = await site.customer(me.token)
    frame, _ = await me.echo("start_chat", start_payload("hi"), "incoming_chat")
    chat_id, thread_id = frame["payload"]["chat_id"], frame["payload"]["thread_id"]

    _, pushed = await me.echo(
        "update_chat_properties", {"id": chat_id, "properties": {"ns": {"a": 1, "b": "x"}}}, "chat_properties_updated"
    )
    assert pushed["payload"] == {"chat_id": chat_id, "properties": {"ns": {"a": 1, "b": "x"}}}
    assert (await v30.wait("chat_properties_updated"))["properties"] == {"ns": {"a": 1, "b": "x"}}
    _, pushed = await me.echo(
        "delete_chat_properties", {"id": chat_id, "properties": {"ns": ["a"]}}, "chat_properties_deleted"
    )
    assert pushed["payload"] == {"chat_id": chat_id, "properties": {"ns": ["a"]}}
    assert (await v30.wait("chat_properties_updated"))["properties"] == {"ns": {"a": None}}

    update = {"chat_id": chat_id, "thread_id": thread_id, "properties": {"t": {"k": True}}}
    _, pushed = await me.echo("update_thread_properties", update, "thread_properties_updated")
    assert pushed["payload"]["properties"] == {"t": {"k": True}}
    delete = {"chat_id": chat_id, "thread_id": thread_id, "properties": {"t": ["k"]}}
    _, pushed = await me.echo("delete_thread_properties", delete, "thread_properties_deleted")
    assert pushed["payload"]["properties"] == {"t": ["k"]}

    got = await me.call("get_chat", {"chat_id": chat_id})
    assert got["properties"] == {"ns": {"b": "x"}} and got["thread"]["properties"] == {}


async def test_customer_profile_and_session_fields_are_the_v30_customer(sites: Sites) -> None:
    site = await sites()
    me = await v35_customer(site, customer={"name": "Ann", "session_fields": [{"plan": "gold"}]})
    assert me.answer["customer"]["name"] == "Ann"
    assert me.answer["customer"]["session_fields"] == [{"plan": "gold"}]
    _, pushed = await me.echo("update_customer", {"email": "ann@example.com", "avatar": "ignored"}, "customer_updated")
    assert pushed["payload"] == {"id": me.id, "email": "ann@example.com"}
    _, pushed = await me.echo(
        "set_customer_session_fields", {"session_fields": [{"plan": "platinum"}, {"seat": "3"}]}, "customer_updated"
    )
    assert pushed["payload"]["session_fields"] == [{"plan": "platinum"}, {"seat": "3"}]
    me_now = await me.call("get_customer")
    assert me_now["email"] == "ann@example.com" and me_now["name"] == "Ann"
    assert me_now["session_fields"] == [{"plan": "platinum"}, {"seat": "3"}]
    v30 = await site.customer(me.token)
    answer = await v30.call("update_customer", {"customer": {}})
    assert answer["customer"]["properties"] == {"plan": "platinum", "seat": "3"}
    assert answer["customer"]["email"] == "ann@example.com"


async def test_mark_events_as_seen_tells_the_agent(sites: Sites) -> None:
    site = await sites(agents={"ann": ((), None)})
    agent = await site.agent("ann")
    me = await v35_customer(site)
    frame, _ = await me.echo("start_chat", start_payload("hi"), "incoming_chat")
    chat_id = frame["payload"]["chat_id"]
    await agent.wait("incoming_chat_thread")
    seen_up_to = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(time.time() - 5))
    _, pushed = await me.echo("mark_events_as_seen", {"chat_id": chat_id, "seen_up_to": seen_up_to}, None)
    assert pushed["action"] == "events_marked_as_seen"
    assert pushed["payload"] == {"user_id": me.id, "chat_id": chat_id, "seen_up_to": seen_up_to}
    told = await agent.wait("last_seen_timestamp_updated", user_id=me.id)
    assert told["chat_id"] == chat_id
    future = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    assert (await me.error("mark_events_as_seen", {"chat_id": chat_id, "seen_up_to": future}))["type"] == "validation"


async def test_list_chats_pages_both_ways(sites: Sites) -> None:
    site = await sites()
    me = await v35_customer(site)
    ids = []
    for i in range(3):
        frame, _ = await me.echo("start_chat", start_payload(f"chat {i}"), "incoming_chat")
        ids.append(frame["payload"]["chat_id"])
    first = await me.call("list_chats", {"limit": 2})
    assert [c["id"] for c in first["chats_summary"]] == [ids[2], ids[1]]
    assert first["total_chats"] == 3 and "previous_page_id" not in first
    second = await me.call("list_chats", {"page_id": first["next_page_id"]})
    assert [c["id"] for c in second["chats_summary"]] == [ids[0]] and "next_page_id" not in second
    oldest = await me.call("list_chats", {"limit": 2, "sort_order": "asc"})
    assert [c["id"] for c in oldest["chats_summary"]] == [ids[0], ids[1]]
    item = oldest["chats_summary"][0]
    assert item["active"] is True and item["access"] == {"group_ids": [0]}
    assert item["last_event_per_type"]["message"]["event"]["text"] == "chat 0"
    assert (await me.error("list_chats", {"page_id": "forged"}))["type"] == "validation"


async def test_group_statuses_follow_the_agents(sites: Sites) -> None:
    site = await sites(groups=["sales"], agents={"ann": (["sales"], 1)})
    me = await v35_customer(site)
    sales = site.groups["sales"]
    offline = await me.call("list_group_statuses", {"all": True})
    assert offline["groups_status"] == {"0": "offline", str(sales): "offline"}
    agent = await site.agent("ann")
    online = await me.call("list_group_statuses", {"group_ids": [sales, 999]})
    assert online["groups_status"] == {str(sales): "online"}
    frame, _ = await me.echo("start_chat", start_payload("busy?", access={"group_ids": [sales]}), "incoming_chat")
    await agent.wait("incoming_chat_thread")
    full = await me.call("list_group_statuses", {"group_ids": [sales]})
    assert full["groups_status"] == {str(sales): "online_for_queue"}
    assert frame["payload"]["chat_id"]


async def test_queue_push_name_follows_the_login_subscription(sites: Sites) -> None:
    site = await sites()
    plain = await v35_customer(site)
    await plain.echo("start_chat", start_payload("waiting"), "incoming_chat")
    assert (await plain.wait("queue_positions_updated"))["queue"]["position"] >= 1
    sdk = await v35_customer(site, **SDK_LOGIN_EXTRAS)
    await sdk.echo("start_chat", start_payload("waiting too"), "incoming_chat")
    assert (await sdk.wait("queue_position_updated"))["queue"]["position"] >= 1
    assert not sdk.pushes("queue_positions_updated")


@pytest.mark.parametrize("version", ["v3.4", "v3.6", "v3.7"])
async def test_other_sdk_versions_speak_the_same_dialect(sites: Sites, version: str) -> None:
    site = await sites()
    me = await v35_customer(site, version=version)
    frame, _ = await me.echo("start_chat", start_payload("hi"), "incoming_chat")
    assert set(frame["payload"]) == {"chat_id", "thread_id", "event_ids"}


async def test_tenant_by_license_id_and_unknown_tenants(sites: Sites, http: aiohttp.ClientSession) -> None:
    site = await sites()
    rtm = await v35_rtm(site, query=f"license_id={site.license_id}")
    token = await customer_token(site.http, site.server.base, site.license_id)
    answer = await rtm.call("login", {"token": token["access_token"]})
    assert answer["customer_id"] == token["customer_id"]
    await rtm.close()
    base = site.server.ws_base
    for path, kind in [
        ("/v3.5/customer/rtm/ws?organization_id=00000000-0000-0000-0000-000000000000", "license_not_found"),
        (f"/v3.8/customer/rtm/ws?organization_id={await org_of(site)}", "unsupported_version"),
        (f"/v3.5/agent/rtm/ws?license_id={site.license_id}", "unsupported_version"),
    ]:
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await http.ws_connect(base + path)
        async with http.get(site.server.base + path) as resp:
            assert (await resp.json())["error"]["type"] == kind


async def test_login_first_and_bad_login_leave_the_connection_usable(sites: Sites) -> None:
    site = await sites()
    rtm = await v35_rtm(site)
    assert (await Rtm.error(rtm, "list_chats"))["type"] == "authentication"
    token = await customer_token(site.http, site.server.base, site.license_id)
    bad = await rtm.error("login", {"token": token["access_token"], "customer": {"email": "nope"}})
    assert bad["type"] == "validation"
    assert (await rtm.error("list_chats"))["type"] == "authentication"
    assert (await rtm.call("login", {"token": token["access_token"]}))["customer_id"] == token["customer_id"]
    assert await rtm.call("ping") == {}
    await rtm.close()


async def test_bad_input_gets_the_documented_error_and_changes_nothing(sites: Sites) -> None:
    site = await sites()
    me = await v35_customer(site)
    frame, _ = await me.echo("start_chat", start_payload("hi"), "incoming_chat")
    chat_id = frame["payload"]["chat_id"]
    before = await me.call("get_chat", {"chat_id": chat_id})
    cases = [
        ("send_event", {"chat_id": chat_id, "event": message("é" * 9000)}, "entity_too_large"),
        ("send_event", {"chat_id": chat_id, "event": {"type": "message", "text": 5}}, "validation"),
        ("send_event", {"chat_id": chat_id, "event": message("note", visibility="agents")}, "validation"),
        ("send_event", {"chat_id": chat_id, "event": {"type": "system_message", "text": "x"}}, "validation"),
        ("send_event", {"chat_id": "NOSUCHCHAT", "event": message("x")}, "not_found"),
        ("update_chat_properties", {"id": chat_id, "properties": {"ns": {"k": "v" * 5000}}}, "entity_too_large"),
        ("update_chat_properties", {"id": chat_id, "properties": {"bad name": {"k": 1}}}, "validation"),
        ("delete_chat_properties", {"id": chat_id, "properties": {"ns": "k"}}, "validation"),
        ("send_sneak_peek", {"chat_id": chat_id, "sneak_peek_text": "x" * 4097}, "entity_too_large"),
        ("start_chat", {"chat": {"access": {"group_ids": [42]}}}, "group_not_found"),
        ("start_chat", {"chat": {"thread": {"events": [message("x")] * 11}}}, "validation"),
        ("start_chat", {"active": False}, "validation"),
        ("update_customer", {"session_fields": [{"k": "v" * 5000}]}, "entity_too_large"),
        ("update_customer", {"email": 7}, "validation"),
        ("list_threads", {"chat_id": chat_id, "limit": 101}, "validation"),
        ("mark_events_as_seen", {"chat_id": chat_id, "seen_up_to": "soon"}, "validation"),
        ("no_such_action", {}, "validation"),
        ("upload_file", {}, "validation"),
    ]
    for action, payload, kind in cases:
        err = await me.error(action, payload)
        assert err["type"] == kind, (action, payload, err)
        assert not me.tagged_now("nothing"), action
    after = await me.call("get_chat", {"chat_id": chat_id})
    assert after == before
    assert (await me.call("list_chats"))["total_chats"] == 1
    assert (await me.call("get_customer"))["session_fields"] == []
