"""The LiveChat-SDK dialect over the Web API (SPEC §11): same methods, same rules, pushes to RTM."""

from __future__ import annotations

import aiohttp

from tests.integration.test_agent_support import Sites
from tests.integration.test_v35_support import message, org_of, start_payload, v35_customer, v35_web
from tests.support import customer_token


async def test_web_start_chat_and_send_event_reach_rtm_and_the_agent(sites: Sites) -> None:
    site = await sites(agents={"ann": ((), None)})
    agent = await site.agent("ann")
    me = await v35_customer(site)
    status, answer = await v35_web(site, me.access, "start_chat", {"continuous": True, **start_payload("by web")})
    assert status == 200 and set(answer) == {"chat_id", "thread_id", "event_ids"}
    chat_id = answer["chat_id"]
    pushed = await me.wait("incoming_chat")
    assert pushed["chat"]["id"] == chat_id
    assert all("request_id" not in f for f in me.log)  # nobody's request on this connection
    assert (await agent.wait("incoming_chat_thread"))["chat"]["id"] == chat_id

    status, sent = await v35_web(site, me.access, "send_event", {"chat_id": chat_id, "event": message("more")})
    assert status == 200 and set(sent) == {"event_id"}
    assert (await me.wait("incoming_event", where=lambda p: p["event"]["id"] == sent["event_id"]))["chat_id"] == chat_id
    heard = await agent.wait("incoming_event", where=lambda p: p["event"].get("text") == "more")
    assert heard["event"]["id"] == sent["event_id"]

    status, got = await v35_web(site, me.access, "get_chat", {"chat_id": chat_id})
    assert status == 200 and [e.get("text") for e in got["thread"]["events"] if e["type"] == "message"] == [
        "by web",
        "more",
    ]
    status, listed = await v35_web(site, me.access, "list_chats", {})
    assert status == 200 and listed["total_chats"] == 1


async def test_every_sdk_version_and_tenant_form_works(sites: Sites) -> None:
    site = await sites()
    token = await customer_token(site.http, site.server.base, site.license_id)
    for version in ("v3.4", "v3.5", "v3.6", "v3.7"):
        status, body = await v35_web(site, token["access_token"], "get_customer", version=version)
        assert status == 200 and body["id"] == token["customer_id"], (version, body)
    status, body = await v35_web(site, token["access_token"], "get_customer", query=f"license_id={site.license_id}")
    assert status == 200 and body["id"] == token["customer_id"]
    status, body = await v35_web(
        site, token["access_token"], "get_customer", query="organization_id=00000000-0000-0000-0000-000000000000"
    )
    assert status == 404 and body["error"]["type"] == "license_not_found"
    status, body = await v35_web(site, token["access_token"], "get_customer", query="")
    assert status == 400 and body["error"]["type"] == "validation"
    status, body = await v35_web(site, token["access_token"], "get_customer", version="v3.8")
    assert status == 400 and body["error"]["type"] == "unsupported_version"
    status, body = await v35_web(site, "not-a-token", "get_customer")
    assert status == 401 and body["error"]["type"] == "authentication"


async def test_rtm_only_methods_and_unknown_fields(sites: Sites) -> None:
    site = await sites()
    token = (await customer_token(site.http, site.server.base, site.license_id))["access_token"]
    for action in ("login", "ping", "update_customer_page", "list_customer_stuff"):
        status, body = await v35_web(site, token, action, {"token": token, "url": "https://x.example/"})
        assert status == 400 and body["error"]["type"] == "validation", action
    status, body = await v35_web(site, token, "list_group_statuses", {"all": True, "some_future_field": [1, 2]})
    assert status == 200 and body == {"groups_status": {"0": "offline"}}


async def test_bad_input_over_the_web_api_changes_nothing(sites: Sites) -> None:
    site = await sites()
    token = (await customer_token(site.http, site.server.base, site.license_id))["access_token"]
    status, answer = await v35_web(site, token, "start_chat", start_payload("hi"))
    assert status == 200
    chat_id = answer["chat_id"]
    cases = [
        ("send_event", {"chat_id": chat_id, "event": message("x" * (16 * 1024 + 1))}, 413, "entity_too_large"),
        ("send_event", {"chat_id": chat_id, "event": {"type": "message"}}, 400, "validation"),
        ("send_event", {"chat_id": [chat_id], "event": message("x")}, 400, "validation"),
        ("update_thread_properties", {"chat_id": chat_id, "thread_id": "NOPE", "properties": {"a": {"b": 1}}}, 404,
         "not_found"),
        ("set_customer_session_fields", {"session_fields": [{"k": "v"}] * 101}, 400, "validation"),
        ("resume_chat", {"chat": {"id": chat_id}}, 400, "validation"),
    ]
    for action, payload, code, kind in cases:
        status, body = await v35_web(site, token, action, payload)
        assert (status, body["error"]["type"]) == (code, kind), (action, body)
    status, got = await v35_web(site, token, "get_chat", {"chat_id": chat_id})
    assert [e["text"] for e in got["thread"]["events"]] == ["hi"] and got["thread"]["properties"] == {}
    status, me = await v35_web(site, token, "get_customer")
    assert me["session_fields"] == []


async def test_another_customer_cannot_see_the_chat(sites: Sites) -> None:
    site = await sites()
    mine = (await customer_token(site.http, site.server.base, site.license_id))["access_token"]
    theirs = (await customer_token(site.http, site.server.base, site.license_id))["access_token"]
    _, answer = await v35_web(site, mine, "start_chat", start_payload("private"))
    for action, payload in [
        ("get_chat", {"chat_id": answer["chat_id"]}),
        ("list_threads", {"chat_id": answer["chat_id"]}),
        ("send_event", {"chat_id": answer["chat_id"], "event": message("x")}),
        ("deactivate_chat", {"id": answer["chat_id"]}),
        ("update_chat_properties", {"id": answer["chat_id"], "properties": {"a": {"b": 1}}}),
    ]:
        status, body = await v35_web(site, theirs, action, payload)
        assert status == 404 and body["error"]["type"] == "not_found", action


async def test_upload_then_file_event_and_cors(sites: Sites, http: aiohttp.ClientSession) -> None:
    site = await sites()
    token = (await customer_token(site.http, site.server.base, site.license_id))["access_token"]
    _, answer = await v35_web(site, token, "start_chat", start_payload("hi"))
    form = aiohttp.FormData()
    form.add_field("file", b"hello", filename="a.txt", content_type="text/plain")
    url = f"{site.server.base}/v3.5/customer/action/upload_file?organization_id={await org_of(site)}"
    async with http.post(url, data=form, headers={"Authorization": f"Bearer {token}", "Origin": "https://shop"}) as r:
        assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == "*"
        uploaded = await r.json()
    event = {"type": "file", "url": uploaded["url"], "name": "a.txt"}
    status, sent = await v35_web(site, token, "send_event", {"chat_id": answer["chat_id"], "event": event})
    assert status == 200
    _, got = await v35_web(site, token, "get_chat", {"chat_id": answer["chat_id"]})
    [file_event] = [e for e in got["thread"]["events"] if e["id"] == sent["event_id"]]
    assert file_event["content_type"] == "text/plain" and file_event["size"] == 5
    async with http.options(url, headers={"Origin": "https://shop", "Access-Control-Request-Method": "POST"}) as r:
        assert r.status == 204 and r.headers["Access-Control-Allow-Origin"] == "*"
