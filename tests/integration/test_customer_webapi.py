"""Customer Web API, access tokens and upload_file (SPEC §2, §3, §4, §5, §8, §12)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from tests.integration.test_customer_support import (
    CUSTOMER_KEYS,
    EVENT_KEYS,
    assert_error,
    event_push,
    is_system,
    message,
    new_customer,
    no_push_of,
    own,
    second_licence,
)
from tests.support import Rtm, Server, agent_token, customer_token, web_call

ACTION = "/v3.0/customer/action"


async def post(
    http: aiohttp.ClientSession, url: str, token: str | None, headers: dict[str, str] | None = None, **kw: Any
) -> tuple[int, Any, aiohttp.ClientResponse]:
    headers = {**(headers or {}), **({"Authorization": f"Bearer {token}"} if token else {})}
    async with http.post(url, headers=headers, **kw) as resp:
        body = await resp.json(content_type=None)
        return resp.status, body, resp


def assert_error_body(status: int, body: Any, type_: str, code: int, names: str | None = None) -> None:
    assert status == code, body
    assert set(body) == {"error"}, body
    assert_error(body["error"], type_, code, names)


# -- every method over HTTP ----------------------------------------------------------------


async def test_every_customer_method_works_over_the_web_api(server: Server, http: aiohttp.ClientSession) -> None:
    token = (await customer_token(http, server.base))["access_token"]

    async def ok(action: str, payload: Any = None) -> Any:
        status, body = await web_call(http, server.base, token, action, payload)
        assert status == 200, (action, body)
        return body

    chat = (await ok("start_chat", {"chat": {"thread": {"events": [message("hi")]}}}))["chat"]
    cid, tid = chat["id"], chat["thread"]["id"]
    sent = await ok("send_event", {"chat_id": cid, "event": message("over http")})
    assert sent["thread_id"] == tid and set(sent["event"]) >= EVENT_KEYS
    assert await ok("send_sneak_peek", {"chat_id": cid, "sneak_peek_text": "typing"}) == {}
    assert await ok("update_chat_properties", {"chat_id": cid, "properties": {"a": {"b": 1}}}) == {}
    assert (
        await ok("update_chat_thread_properties", {"chat_id": cid, "thread_id": tid, "properties": {"c": {"d": 2}}})
        == {}
    )
    assert await ok("update_chat_scopes", {"chat_id": cid, "add_scopes": {"groups": [0]}}) == {}
    customer = (await ok("update_customer", {"customer": {"name": "Web"}}))["customer"]
    assert set(customer) >= CUSTOMER_KEYS and customer["name"] == "Web"
    assert set(await ok("update_last_seen_timestamp", {})) == {"timestamp"}
    summary = await ok("get_chats_summary", {})
    assert [c["id"] for c in summary["chats_summary"]] == [cid]
    assert summary["chats_summary"][0]["properties"] == {"a": {"b": 1}}
    last_event = summary["chats_summary"][0]["last_event"]
    assert last_event["thread_id"] == tid
    assert last_event["event"]["id"] == sent["event"]["id"] or is_system(last_event["event"])
    threads = await ok("get_chat_threads_summary", {"chat_id": cid})
    assert [t["thread_id"] for t in threads["chat"]["threads_summary"]] == [tid]
    full = await ok("get_chat_threads", {"chat_id": cid, "thread_ids": [tid]})
    assert [e["text"] for e in own(full["chat"]["threads"][0]["events"])] == ["hi", "over http"]
    assert full["chat"]["threads"][0]["properties"] == {"c": {"d": 2}}
    assert await ok("close_thread", {"chat_id": cid}) == {}
    status, body = await web_call(http, server.base, token, "close_thread", {"chat_id": cid})
    assert_error_body(status, body, "chat_inactive", 409)


@pytest.mark.parametrize("action", ["login", "ping"])
async def test_rtm_only_methods_are_validation_over_http(
    server: Server, http: aiohttp.ClientSession, action: str
) -> None:
    token = await customer_token(http, server.base)
    status, body = await web_call(http, server.base, token["access_token"], action, {"token": token["access_token"]})
    assert_error_body(status, body, "validation", 400)


async def test_unknown_action_over_http_is_validation(server: Server, http: aiohttp.ClientSession) -> None:
    token = await customer_token(http, server.base)
    status, body = await web_call(http, server.base, token["access_token"], "launch_rockets", {})
    assert_error_body(status, body, "validation", 400, "launch_rockets")


async def test_upload_file_over_rtm_is_validation(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    assert_error(await me.error("upload_file", {}), "validation", 400)
    assert await me.call("ping") == {}
    await me.rtm.close()


@pytest.mark.parametrize(
    ("action", "payload", "type_", "code", "field"),
    [
        ("get_chats_summary", {"pagination": {"limit": 26}}, "validation", 400, "limit"),
        ("get_chats_summary", {"bogus": True}, "validation", 400, "bogus"),
        ("get_chat_threads", {"chat_id": "X", "thread_ids": []}, "validation", 400, "thread_ids"),
        ("get_chat_threads_summary", {"chat_id": "X", "pagination": {"limit": 1001}}, "validation", 400, "limit"),
        ("send_event", {"chat_id": "NOSUCHCHAT", "event": message("x")}, "not_found", 404, None),
        ("start_chat", {"chat": {"scopes": {"groups": [987654]}}}, "group_not_found", 404, None),
        ("start_chat", {"chat": {"events": [{"type": "system_message", "text": "x"}]}}, "validation", 400, None),
        ("update_customer", {"customer": {"properties": {"k": "x" * 4097}}}, "entity_too_large", 413, None),
        ("update_last_seen_timestamp", {"timestamp": 2**40}, "validation", 400, "timestamp"),
    ],
)
async def test_web_api_validates_like_rtm(
    server: Server, http: aiohttp.ClientSession, action: str, payload: Any, type_: str, code: int, field: str | None
) -> None:
    me = await new_customer(server, http)
    status, body = await me.web(action, payload)
    assert_error_body(status, body, type_, code, field)
    assert (await me.error(action, payload))["type"] == type_
    assert (await me.chats())["pagination"]["total"] == 0
    await me.rtm.close()


async def test_web_api_errors_on_chat_state(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat()
    await me.close(chat["id"])
    status, body = await me.web("send_sneak_peek", {"chat_id": chat["id"], "sneak_peek_text": "x"})
    assert_error_body(status, body, "chat_inactive", 409)
    status, body = await me.web("send_event", {"chat_id": chat["id"], "event": message("é" * 8193)})
    assert_error_body(status, body, "entity_too_large", 413, "text")
    assert [t["active"] for t in await me.threads(chat["id"])] == [False]
    await me.rtm.close()


async def test_no_or_bad_token_is_401(server: Server, http: aiohttp.ClientSession) -> None:
    url = f"{server.base}{ACTION}/get_chats_summary?license_id=1"
    status, body, _ = await post(http, url, None, json={})
    assert_error_body(status, body, "authentication", 401)
    status, body, _ = await post(http, url, "not.a.token", json={})
    assert_error_body(status, body, "authentication", 401)
    async with http.post(url, json={}, headers={"Authorization": "Basic dXNlcjpwYXNz"}) as resp:
        assert resp.status == 401
        assert_error((await resp.json())["error"], "authentication", 401)
    # An agent's token is no customer token.
    agent_email, agent_password = next(
        line.split()[2:4] for line in server.stdout_lines if line.startswith("agent login:")
    )
    agent = await agent_token(http, server.base, agent_email, agent_password)
    status, body, _ = await post(http, url, agent["access_token"], json={})
    assert_error_body(status, body, "authentication", 401)


async def test_empty_body_means_empty_payload(server: Server, http: aiohttp.ClientSession) -> None:
    token = (await customer_token(http, server.base))["access_token"]
    url = f"{server.base}{ACTION}/get_chats_summary?license_id=1"
    status, body, _ = await post(http, url, token)
    assert status == 200, body
    assert body["chats_summary"] == [] and body["pagination"]["total"] == 0
    status, body, _ = await post(
        http,
        f"{server.base}{ACTION}/start_chat?license_id=1",
        token,
        data=b"",
        headers={"Content-Type": "application/json"},
    )
    assert status == 200, body
    status, body, _ = await post(http, f"{server.base}{ACTION}/start_chat?license_id=1", token)
    assert status == 200 and body["chat"]["scopes"] == {"groups": [0]}


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b'"text"', b'{"unterminated": '])
async def test_bad_json_body_is_validation(server: Server, http: aiohttp.ClientSession, raw: bytes) -> None:
    token = (await customer_token(http, server.base))["access_token"]
    url = f"{server.base}{ACTION}/start_chat?license_id=1"
    status, body, _ = await post(http, url, token, data=raw, headers={"Content-Type": "application/json"})
    assert_error_body(status, body, "validation", 400)
    status, body = await web_call(http, server.base, token, "get_chats_summary", {})
    assert body["pagination"]["total"] == 0


async def test_body_over_64_kib_is_entity_too_large(server: Server, http: aiohttp.ClientSession) -> None:
    token = (await customer_token(http, server.base))["access_token"]
    url = f"{server.base}{ACTION}/update_customer?license_id=1"
    big = b'{"customer": {"name": "' + b"x" * (64 * 1024) + b'"}}'
    status, body, _ = await post(http, url, token, data=big, headers={"Content-Type": "application/json"})
    assert_error_body(status, body, "entity_too_large", 413)
    # Also without a Content-Length (chunked).

    async def chunks() -> Any:
        for _ in range(5):
            yield b" " * (16 * 1024)
        yield b"{}"

    status, body, _ = await post(http, url, token, data=chunks(), headers={"Content-Type": "application/json"})
    assert_error_body(status, body, "entity_too_large", 413)


async def test_web_api_send_event_pushes_to_every_rtm_connection(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat()
    other = await me.connect()
    status, sent = await me.web("send_event", {"chat_id": chat["id"], "event": message("from http")})
    assert status == 200
    for rtm in (me.rtm, other):
        got = await event_push(rtm)
        assert got == {"chat_id": chat["id"], "thread_id": sent["thread_id"], "event": sent["event"]}
    status, _ = await me.web("update_chat_properties", {"chat_id": chat["id"], "properties": {"p": {"q": 1}}})
    assert status == 200
    for rtm in (me.rtm, other):
        assert (await rtm.push("chat_properties_updated"))["payload"]["properties"] == {"p": {"q": 1}}
    status, _ = await me.web("close_thread", {"chat_id": chat["id"]})
    assert status == 200
    for rtm in (me.rtm, other):
        assert (await rtm.push("thread_closed"))["payload"]["thread_id"] == chat["thread"]["id"]
    status, reopened = await me.web("send_event", {"chat_id": chat["id"], "event": message("again")})
    for rtm in (me.rtm, other):
        assert (await rtm.push("incoming_chat_thread"))["payload"]["chat"]["thread"]["id"] == reopened["thread_id"]
    await other.close()
    await me.rtm.close()


async def test_web_api_start_chat_pushes_to_rtm_connections(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    status, body = await me.web("start_chat", {})
    assert status == 200
    got = (await me.rtm.push("incoming_chat_thread"))["payload"]["chat"]
    assert got["id"] == body["chat"]["id"]
    await me.rtm.close()


async def test_web_api_custom_id_is_idempotent_too(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat()
    payload = {"chat_id": chat["id"], "event": message("once", custom_id="web-1")}
    first = await me.web("send_event", payload)
    second = await me.web("send_event", payload)
    assert first == second and first[0] == 200
    assert (await event_push(me.rtm))["event"]["id"] == first[1]["event"]["id"]
    await no_push_of(me.rtm, "incoming_event")
    assert len(await me.events(chat["id"])) == 1
    await me.rtm.close()


# -- access tokens -------------------------------------------------------------------------


async def test_customer_token_answer(server: Server, http: aiohttp.ClientSession) -> None:
    async with http.post(f"{server.base}/v3.0/customer/token", json={"license_id": 1}) as resp:
        assert resp.status == 200
        body = await resp.json()
        cookie_headers = resp.headers.getall("Set-Cookie", [])
    assert {"access_token", "token_type", "expires_in", "refresh_token", "customer_id", "license_id"} <= set(body)
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 28800
    assert body["license_id"] == 1
    assert isinstance(body["customer_id"], str) and body["customer_id"]
    assert body["access_token"] != body["refresh_token"]
    assert any("httponly" in h.lower() for h in cookie_headers), cookie_headers


async def test_each_token_request_without_cookie_is_a_new_customer(server: Server) -> None:
    ids = set()
    for _ in range(3):
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
            ids.add((await customer_token(session, server.base))["customer_id"])
    assert len(ids) == 3


async def test_refresh_token_keeps_the_customer(server: Server, http: aiohttp.ClientSession) -> None:
    first = await customer_token(http, server.base)
    me = await new_customer(server, http)  # an unrelated customer, to be sure identities do not mix
    async with http.post(
        f"{server.base}/v3.0/customer/token", json={"license_id": 1, "refresh_token": first["refresh_token"]}
    ) as resp:
        assert resp.status == 200
        again = await resp.json()
    assert again["customer_id"] == first["customer_id"]
    rtm = await Rtm.connect(http, server.ws_base)
    assert (await rtm.login(again["access_token"]))["customer_id"] == first["customer_id"]
    await rtm.close()
    await me.rtm.close()


async def test_bad_refresh_token_is_authentication(server: Server, http: aiohttp.ClientSession) -> None:
    for refresh in ("garbage", "a.b.c"):
        async with http.post(
            f"{server.base}/v3.0/customer/token", json={"license_id": 1, "refresh_token": refresh}
        ) as resp:
            assert resp.status == 401
            assert_error((await resp.json())["error"], "authentication", 401)


@pytest.mark.parametrize("body", [{}, {"license_id": "1"}, {"license_id": 1, "extra": 1}])
async def test_bad_token_request_is_validation(
    server: Server, http: aiohttp.ClientSession, body: dict[str, Any]
) -> None:
    async with http.post(f"{server.base}/v3.0/customer/token", json=body) as resp:
        assert resp.status == 400
        assert_error((await resp.json())["error"], "validation", 400)


async def test_cookie_keeps_the_identity(server: Server) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        first = await customer_token(browser, server.base)
        second = await customer_token(browser, server.base)
    assert second["customer_id"] == first["customer_id"]
    assert second["access_token"]


async def test_a_second_licence_token_does_not_reuse_the_licence_one_cookie(server: Server) -> None:
    licence = second_licence(server)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        one = await customer_token(browser, server.base, 1)
        two = await customer_token(browser, server.base, licence)
        one_again = await customer_token(browser, server.base, 1)
    assert two["customer_id"] != one["customer_id"]
    assert two["license_id"] == licence
    assert one_again["customer_id"] == one["customer_id"]


async def test_agent_token_with_wrong_password(
    server: Server, http: aiohttp.ClientSession, demo_agent: tuple[str, str]
) -> None:
    email, password = demo_agent
    for body in (
        {"license_id": 1, "email": email, "password": password + "x"},
        {"license_id": 1, "email": "nobody@example.com", "password": password},
    ):
        async with http.post(f"{server.base}/v3.0/agent/token", json=body) as resp:
            assert resp.status == 401
            assert_error((await resp.json())["error"], "authentication", 401)
    good = await agent_token(http, server.base, email, password)
    assert good["token_type"] == "Bearer" and good["license_id"] == 1


async def test_customer_token_on_the_agent_side_is_401(server: Server, http: aiohttp.ClientSession) -> None:
    token = await customer_token(http, server.base)
    status, body = await web_call(http, server.base, token["access_token"], "get_chats_summary", {}, side="agent")
    assert_error_body(status, body, "authentication", 401)
    rtm = await Rtm.connect(http, server.ws_base, side="agent")
    assert_error(await rtm.error("login", {"token": token["access_token"]}), "authentication", 401)
    await rtm.close()


# -- upload_file ---------------------------------------------------------------------------


async def upload(
    http: aiohttp.ClientSession,
    base: str,
    token: str,
    data: bytes,
    filename: str,
    content_type: str,
    *,
    part: str = "file",
    license_id: int = 1,
) -> tuple[int, Any]:
    form = aiohttp.FormData()
    form.add_field(part, data, filename=filename, content_type=content_type)
    status, body, _ = await post(http, f"{base}{ACTION}/upload_file?license_id={license_id}", token, data=form)
    return status, body


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


async def test_upload_image_is_served_inline(server: Server, http: aiohttp.ClientSession) -> None:
    token = (await customer_token(http, server.base))["access_token"]
    status, body = await upload(http, server.base, token, PNG, "pic.png", "image/png")
    assert status == 200, body
    assert set(body) == {"url"}
    url = body["url"]
    assert "/files/" in url
    async with http.get(url) as resp:
        assert resp.status == 200
        assert await resp.read() == PNG
        assert resp.headers["Content-Type"].startswith("image/png")
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert not resp.headers.get("Content-Disposition", "inline").lower().startswith("attachment")


async def test_upload_other_file_is_served_as_attachment(server: Server, http: aiohttp.ClientSession) -> None:
    token = (await customer_token(http, server.base))["access_token"]
    html = b"<html><script>alert(1)</script></html>"
    for data, name, ctype in ((b"hello, world\n", "notes.txt", "text/plain"), (html, "page.html", "text/html")):
        status, body = await upload(http, server.base, token, data, name, ctype)
        assert status == 200, body
        async with http.get(body["url"]) as resp:
            assert resp.status == 200
            assert await resp.read() == data
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
            assert resp.headers["Content-Disposition"].lower().startswith("attachment")


async def test_two_uploads_get_different_urls(server: Server, http: aiohttp.ClientSession) -> None:
    token = (await customer_token(http, server.base))["access_token"]
    a = await upload(http, server.base, token, b"same", "a.txt", "text/plain")
    b = await upload(http, server.base, token, b"same", "a.txt", "text/plain")
    assert a[1]["url"] != b[1]["url"]


async def test_upload_over_10_mib_is_entity_too_large(server: Server, http: aiohttp.ClientSession) -> None:
    token = (await customer_token(http, server.base))["access_token"]
    status, body = await upload(
        http, server.base, token, b"\x00" * (10 * 1024 * 1024 + 1), "big.bin", "application/octet-stream"
    )
    assert_error_body(status, body, "entity_too_large", 413)


async def test_upload_of_exactly_10_mib_is_fine(server: Server, http: aiohttp.ClientSession) -> None:
    token = (await customer_token(http, server.base))["access_token"]
    data = bytes(range(256)) * (10 * 1024 * 1024 // 256)
    status, body = await upload(http, server.base, token, data, "ten.bin", "application/octet-stream")
    assert status == 200, body
    async with http.get(body["url"]) as resp:
        assert await resp.read() == data


async def test_upload_needs_one_part_named_file(server: Server, http: aiohttp.ClientSession) -> None:
    token = (await customer_token(http, server.base))["access_token"]
    status, body = await upload(http, server.base, token, b"x", "x.txt", "text/plain", part="document")
    assert_error_body(status, body, "validation", 400, "file")
    status, body, _ = await post(http, f"{server.base}{ACTION}/upload_file?license_id=1", token, json={"file": "x"})
    assert_error_body(status, body, "validation", 400)
    status, body = await upload(http, server.base, "", b"x", "x.txt", "text/plain")
    assert_error_body(status, body, "authentication", 401)


async def test_file_event_with_an_uploaded_url(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat()
    status, body = await upload(http, server.base, me.access, PNG, "cat.png", "image/png")
    assert status == 200
    sent = await me.call(
        "send_event", {"chat_id": chat["id"], "event": {"type": "file", "url": body["url"], "name": "cat.png"}}
    )
    event = sent["event"]
    assert event["type"] == "file"
    assert event["url"] == body["url"]
    assert event["name"] == "cat.png"
    assert event["content_type"] == "image/png"
    assert event["size"] == len(PNG)
    assert (await me.events(chat["id"]))[0] == event
    await me.rtm.close()


async def test_file_event_with_a_foreign_url_is_validation(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat()
    other_licence = second_licence(server)
    stranger = await customer_token(http, server.base, other_licence)
    status, foreign = await upload(
        http, server.base, stranger["access_token"], PNG, "x.png", "image/png", license_id=other_licence
    )
    assert status == 200, foreign
    for url in ("https://evil.example/files/abc", f"{server.base}/files/not-an-upload", foreign["url"], "", "x"):
        err = await me.error("send_event", {"chat_id": chat["id"], "event": {"type": "file", "url": url}})
        assert_error(err, "validation", 400, "url")
    assert await me.events(chat["id"]) == []
    await me.rtm.close()


async def test_unknown_file_url_is_404(server: Server, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{server.base}/files/definitely-not-a-file") as resp:
        assert resp.status == 404


@pytest.mark.parametrize("version", ["v2.0", "v3.1", "v9.9"])
async def test_unsupported_version(server: Server, http: aiohttp.ClientSession, version: str) -> None:
    token = (await customer_token(http, server.base))["access_token"]
    url = f"{server.base}/{version}/customer/action/get_chats_summary?license_id=1"
    status, body, _ = await post(http, url, token, json={})
    assert_error_body(status, body, "unsupported_version", 400)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(f"{server.ws_base}/{version}/customer/rtm/ws?license_id=1")
    assert refused.value.status == 400


async def test_web_api_answers_json(server: Server, http: aiohttp.ClientSession) -> None:
    token = (await customer_token(http, server.base))["access_token"]
    url = f"{server.base}{ACTION}/get_chats_summary?license_id=1"
    for payload in ({}, {"pagination": {"limit": 0}}):
        status, _, resp = await post(http, url, token, json=payload)
        assert resp.content_type == "application/json", (status, resp.content_type)
    # A JSON body without a Content-Type header is still the payload.
    status, body, _ = await post(http, url, token, data=b'{"pagination": {"limit": 0}}', headers={"Content-Type": ""})
    assert_error_body(status, body, "validation", 400, "limit")


async def test_customer_is_not_present_without_connections(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    assert (await me.me())["present"] is True
    await me.rtm.close()
    await asyncio.sleep(0.2)
    status, body = await me.web("update_customer", {"customer": {}})
    assert status == 200
    assert body["customer"]["present"] is False


async def test_file_event_takes_type_and_size_from_the_upload(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    chat = await me.start_chat()
    status, body = await upload(http, server.base, me.access, b"plain text", "a.txt", "text/plain")
    assert status == 200
    event = {"type": "file", "url": body["url"], "name": "a.txt", "content_type": "image/png", "size": 999999}
    frame = await me.rtm.request("send_event", {"chat_id": chat["id"], "event": event})
    if frame["success"]:
        stored = frame["payload"]["event"]
        assert stored["content_type"].startswith("text/plain")
        assert stored["size"] == len(b"plain text")
    else:
        assert_error(frame["payload"]["error"], "validation", 400)
        assert await me.events(chat["id"]) == []
    await me.rtm.close()


async def test_refresh_token_is_no_access_token(server: Server, http: aiohttp.ClientSession) -> None:
    token = await customer_token(http, server.base)
    rtm = await Rtm.connect(http, server.ws_base)
    assert_error(await rtm.error("login", {"token": token["refresh_token"]}), "authentication", 401)
    await rtm.close()
    status, body = await web_call(http, server.base, token["refresh_token"], "get_chats_summary", {})
    assert_error_body(status, body, "authentication", 401)


async def test_tampered_or_foreign_side_token_is_refused(
    server: Server, http: aiohttp.ClientSession, demo_agent: tuple[str, str]
) -> None:
    token = (await customer_token(http, server.base))["access_token"]
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    agent = (await agent_token(http, server.base, *demo_agent))["access_token"]
    for bad in (tampered, agent, token + "x", "Bearer"):
        rtm = await Rtm.connect(http, server.ws_base)
        assert_error(await rtm.error("login", {"token": bad}), "authentication", 401)
        await rtm.close()
        status, body = await web_call(http, server.base, bad, "get_chats_summary", {})
        assert_error_body(status, body, "authentication", 401)
