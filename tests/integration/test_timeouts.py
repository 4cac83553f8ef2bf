"""SPEC §2 timeouts, in real time: no login within 30 s, and 60 s without any frame, close a connection.

Runs the three cases side by side, so the whole test costs one idle period (~61 s).
"""

from __future__ import annotations

import asyncio
import time

import aiohttp

from tests.support import Rtm, Server, customer_token


async def test_login_and_idle_timeouts(server: Server, http: aiohttp.ClientSession) -> None:
    start = time.monotonic()
    silent = await Rtm.connect(http, server.ws_base)  # never logs in
    idle = await Rtm.connect(http, server.ws_base)
    await idle.login((await customer_token(http, server.base))["access_token"])
    # Only WebSocket ping control frames: they count as traffic too.
    pinging = await Rtm.connect(http, server.ws_base, autoping=True)
    await pinging.login((await customer_token(http, server.base))["access_token"])

    async def ping_frames() -> None:
        while not pinging.closed.done():
            await pinging.ws.ping()
            await asyncio.sleep(20)

    keeper = asyncio.get_running_loop().create_task(ping_frames())
    try:
        await asyncio.wait_for(asyncio.shield(silent.closed), 40)
        login_closed = time.monotonic() - start
        assert 29 <= login_closed <= 36, login_closed
        assert silent.closed.result() in (1000, 1001)

        await asyncio.wait_for(asyncio.shield(idle.closed), 40)
        idle_closed = time.monotonic() - start
        assert 59 <= idle_closed <= 66, idle_closed
        assert idle.closed.result() in (1000, 1001)
        reason = await idle.push("customer_disconnected", timeout=1)
        assert reason["payload"] == {"reason": "ping_timeout"}

        assert not pinging.closed.done(), "WebSocket pings must keep a connection open"
        assert (await pinging.call("ping")) == {}
    finally:
        keeper.cancel()
        await pinging.close()
