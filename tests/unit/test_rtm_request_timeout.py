"""A request that runs past REQUEST_TIMEOUT_S answers `request_timeout`; the connection lives on.

The server runs in this process (the only way to make a method slow on purpose), with the limit
cut to a fraction of a second so the test does not wait 15 s.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from parley.config import Settings
from parley.node import Node
from parley.protocol import limits
from parley.protocol import methods as m
from parley.service.context import Ctx
from parley.service.dispatch import Method
from parley.transport.app import create_app
from tests.support import Rtm, customer_token


@pytest.fixture
async def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[str, Node]]:
    monkeypatch.setattr(limits, "REQUEST_TIMEOUT_S", 0.3)
    node = Node(Settings(data_dir=tmp_path, token_rate_per_min=0))
    await node.start()
    await node.store.create_license("timeouts")
    server = TestServer(create_app(node), host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/"), node
    finally:
        await server.close()
        await node.stop()


async def test_a_slow_request_times_out_and_the_connection_goes_on(site: tuple[str, Node]) -> None:
    base, node = site
    release = asyncio.Event()

    async def slow(ctx: Ctx, req: m.Empty) -> dict[str, Any]:
        await release.wait()
        return {}

    methods = node.sides["customer"].methods
    async with aiohttp.ClientSession() as http:
        token = await customer_token(http, base)
        rtm = await Rtm.connect(http, base.replace("http", "ws", 1))
        try:
            await rtm.login(token["access_token"])
            methods["get_chats_summary"] = Method(m.Empty, slow)
            frame = await rtm.request("get_chats_summary", {}, timeout=5.0)
            assert frame["success"] is False
            assert frame["payload"]["error"]["type"] == "request_timeout"
            assert frame["request_id"] and frame["action"] == "get_chats_summary"
            # The same connection keeps serving: a fast request right after is answered.
            assert await rtm.call("ping") == {}
            release.set()
            ok = await rtm.request("get_chats_summary", {}, timeout=5.0)
            assert ok["success"] is True
        finally:
            await rtm.ws.close()
