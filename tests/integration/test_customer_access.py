"""Who may touch what (SPEC §2, §5): another customer's chat looks absent; licences never mix."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.integration.test_customer_support import (
    Customer,
    assert_error,
    extra_group,
    message,
    new_customer,
    no_push_of,
    own,
    second_licence,
)
from tests.support import Rtm, Server, customer_token, web_call


def chat_requests(chat_id: str, thread_id: str, group: int) -> list[tuple[str, dict[str, Any]]]:
    """One request of every customer method that names a chat."""
    return [
        ("get_chat_threads", {"chat_id": chat_id, "thread_ids": [thread_id]}),
        ("get_chat_threads_summary", {"chat_id": chat_id}),
        ("send_event", {"chat_id": chat_id, "event": message("intruder")}),
        ("send_sneak_peek", {"chat_id": chat_id, "sneak_peek_text": "intruder"}),
        ("close_thread", {"chat_id": chat_id}),
        ("close_thread", {"chat_id": chat_id, "thread_id": thread_id}),
        ("update_chat_scopes", {"chat_id": chat_id, "add_scopes": {"groups": [group]}}),
        ("update_chat_properties", {"chat_id": chat_id, "properties": {"x": {"y": 1}}}),
        ("update_chat_thread_properties", {"chat_id": chat_id, "thread_id": thread_id, "properties": {"x": {"y": 1}}}),
        ("update_last_seen_timestamp", {"chat_id": chat_id}),
    ]


async def owner_view(owner: Customer, chat_id: str) -> dict[str, Any]:
    """What an intruder could have changed (routing news, such as an agent joining, left out)."""
    item = await owner.chat(chat_id)
    threads = await owner.threads(chat_id)
    return {
        "properties": item["properties"],
        "scopes": item["scopes"],
        "threads": [(t["id"], t["active"], t["properties"], [e["id"] for e in own(t["events"])]) for t in threads],
    }


@pytest.mark.parametrize("transport", ["rtm", "web"])
@pytest.mark.parametrize("closed", [False, True], ids=["active", "closed"])
async def test_another_customers_chat_is_not_found(
    server: Server, http: aiohttp.ClientSession, transport: str, closed: bool
) -> None:
    group = extra_group(server)
    owner = await new_customer(server, http)
    chat = await owner.start_chat({"chat": {"thread": {"events": [message("mine")]}}})
    if closed:  # then chat_inactive would leak that the chat exists, and send_event must not reopen it
        await owner.close(chat["id"])
    watcher = await owner.connect()
    before = await owner_view(owner, chat["id"])
    intruder = await new_customer(server, http)
    for action, payload in chat_requests(chat["id"], chat["thread"]["id"], group):
        if transport == "rtm":
            err = await intruder.error(action, payload)
        else:
            status, body = await intruder.web(action, payload)
            assert status == 404, (action, body)
            err = body["error"]
        assert_error(err, "not_found", 404)
        # Exactly what a chat that does not exist answers: no existence leak.
        absent = {**payload, "chat_id": "NOSUCHCHAT0"}
        if transport == "rtm":
            assert (await intruder.error(action, absent))["type"] == err["type"], action
        else:
            assert (await intruder.web(action, absent))[1]["error"]["type"] == err["type"], action
    # Nothing changed for the owner, who heard nothing.
    assert await owner_view(owner, chat["id"]) == before
    await no_push_of(
        watcher,
        "incoming_event",
        "thread_closed",
        "chat_scopes_updated",
        "chat_properties_updated",
        "chat_thread_properties_updated",
        "incoming_chat_thread",
        within=0.1,
    )
    # And the intruder got no chat out of it.
    assert (await intruder.chats())["pagination"]["total"] == 0
    await watcher.close()
    await owner.rtm.close()
    await intruder.rtm.close()


async def test_another_customers_thread_is_not_found_in_own_chat(server: Server, http: aiohttp.ClientSession) -> None:
    owner = await new_customer(server, http)
    theirs = await owner.start_chat()
    me = await new_customer(server, http)
    mine = await me.start_chat()
    err = await me.error("get_chat_threads", {"chat_id": mine["id"], "thread_ids": [theirs["thread"]["id"]]})
    assert_error(err, "not_found", 404)
    payload = {"chat_id": mine["id"], "thread_id": theirs["thread"]["id"], "properties": {"a": {"b": 1}}}
    assert_error(await me.error("update_chat_thread_properties", payload), "not_found", 404)
    assert_error(
        await me.error("close_thread", {"chat_id": mine["id"], "thread_id": theirs["thread"]["id"]}), "not_found", 404
    )
    [own_thread] = await me.threads(mine["id"])
    assert own_thread["active"] is True and own_thread["properties"] == {}
    await owner.rtm.close()
    await me.rtm.close()


# -- licences ------------------------------------------------------------------------------


async def test_licence_one_token_is_refused_on_licence_two(server: Server, http: aiohttp.ClientSession) -> None:
    licence = second_licence(server)
    token = await customer_token(http, server.base, 1)
    rtm = await Rtm.connect(http, server.ws_base, license_id=licence)
    assert_error(await rtm.error("login", {"token": f"Bearer {token['access_token']}"}), "authentication", 401)
    await rtm.close()
    status, body = await web_call(http, server.base, token["access_token"], "get_chats_summary", {}, license_id=licence)
    assert status == 401
    assert_error(body["error"], "authentication", 401)
    # A refresh token of licence 1 does not mint a licence-2 customer either.
    async with http.post(
        f"{server.base}/v3.0/customer/token", json={"license_id": licence, "refresh_token": token["refresh_token"]}
    ) as resp:
        assert resp.status == 401
        assert_error((await resp.json())["error"], "authentication", 401)


async def test_licences_never_see_each_other(server: Server, http: aiohttp.ClientSession) -> None:
    licence = second_licence(server)
    one = await new_customer(server, http)
    chat = await one.start_chat()
    two = await new_customer(server, http, license_id=licence)
    assert two.token["license_id"] == licence
    assert_error(await two.error("get_chat_threads_summary", {"chat_id": chat["id"]}), "not_found", 404)
    assert_error(await two.error("send_event", {"chat_id": chat["id"], "event": message("x")}), "not_found", 404)
    # Licence 2 has no group but 0.
    group = extra_group(server)
    err = await two.error("start_chat", {"chat": {"scopes": {"groups": [group]}}})
    assert_error(err, "group_not_found", 404)
    own = await two.start_chat()
    assert own["scopes"] == {"groups": [0]}
    assert (await two.chats())["pagination"]["total"] == 1
    # A licence-2 token is no good on licence 1.
    rtm = await Rtm.connect(http, server.ws_base, license_id=1)
    assert_error(await rtm.error("login", {"token": two.access}), "authentication", 401)
    await rtm.close()
    await one.rtm.close()
    await two.rtm.close()


@pytest.mark.parametrize("license_id", [987654, 0, -3])
async def test_unknown_licence_on_the_token_endpoint(
    server: Server, http: aiohttp.ClientSession, license_id: int
) -> None:
    async with http.post(f"{server.base}/v3.0/customer/token", json={"license_id": license_id}) as resp:
        body = await resp.json()
    if license_id > 0:
        assert resp.status == 404
        assert_error(body["error"], "license_not_found", 404)
    else:
        # Not a positive integer: either a validation error or simply no such licence.
        assert (resp.status, body["error"]["type"]) in {(400, "validation"), (404, "license_not_found")}


async def test_unknown_licence_on_the_web_api_comes_before_the_token(
    server: Server, http: aiohttp.ClientSession
) -> None:
    token = await customer_token(http, server.base)
    for bearer in (token["access_token"], "garbage"):
        status, body = await web_call(http, server.base, bearer, "get_chats_summary", {}, license_id=987654)
        assert status == 404
        assert_error(body["error"], "license_not_found", 404)
    url = f"{server.base}/v3.0/customer/action/get_chats_summary?license_id=987654"
    async with http.post(url, json={}) as resp:  # no Authorization header at all
        assert resp.status == 404
        assert_error((await resp.json())["error"], "license_not_found", 404)


async def test_unknown_licence_on_the_websocket_url(server: Server, http: aiohttp.ClientSession) -> None:
    url = f"{server.ws_base}/v3.0/customer/rtm/ws?license_id=987654"
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(url)
    assert refused.value.status == 404
    # The refusal carries the usual error body.
    async with http.get(f"{server.base}/v3.0/customer/rtm/ws?license_id=987654") as resp:
        assert resp.status == 404
        assert_error((await resp.json())["error"], "license_not_found", 404)


async def test_static_config_of_an_unknown_licence(server: Server, http: aiohttp.ClientSession) -> None:
    me = await new_customer(server, http)
    path = me.login_answer["static_config_path"]
    assert "license_id=1" in path or "/1/" in path or path.endswith("/1")
    licence = second_licence(server)
    two = await new_customer(server, http, license_id=licence)
    assert two.login_answer["static_config_path"] != path
    async with http.get(server.base + two.login_answer["static_config_path"]) as resp:
        assert resp.status == 200
    async with http.get(f"{server.base}/v3.0/customer/config?license_id=987654") as resp:
        assert resp.status == 404
        assert_error((await resp.json())["error"], "license_not_found", 404)
    await me.rtm.close()
    await two.rtm.close()
