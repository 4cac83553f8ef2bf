from __future__ import annotations

import aiohttp

from tests.support import Rtm, Server, customer_token


async def test_customer_can_start_a_chat_and_send(server: Server, http: aiohttp.ClientSession) -> None:
    token = await customer_token(http, server.base)
    rtm = await Rtm.connect(http, server.ws_base)
    login = await rtm.login(token["access_token"])
    assert login["customer_id"] == token["customer_id"]
    chat = (await rtm.call("start_chat", {}))["chat"]
    sent = await rtm.call("send_event", {"chat_id": chat["id"], "event": {"type": "message", "text": "hi"}})
    assert sent["thread_id"] == chat["thread"]["id"]
    assert sent["event"]["text"] == "hi"
    await rtm.close()
