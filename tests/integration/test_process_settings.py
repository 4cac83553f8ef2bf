"""`parley admin license set`: licence settings change beside a running server and reach it within 5 s."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from tests.support import AdminError, Server, admin


async def config(http: aiohttp.ClientSession, server: Server) -> dict:
    async with http.get(f"{server.base}/v3.0/customer/config?license_id=1") as resp:
        assert resp.status == 200
        return await resp.json()


async def test_settings_reach_a_running_server(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    data = tmp_path / "d"
    admin(data, "license", "create", "--name", "S")
    server = Server(data).start()
    try:
        assert (await config(http, server))["prechat_form"] is False
        answer = admin(data, "license", "set", "--license", "1", "--prechat-form", "on")
        assert answer == {"license_id": 1, "settings": {"prechat_form": True}}
        start = time.monotonic()
        while not (await config(http, server))["prechat_form"]:
            assert time.monotonic() - start < 6.5, "the setting did not reach the server within 5 s"
            await asyncio.sleep(0.25)
    finally:
        server.stop()


@pytest.mark.parametrize(
    "args",
    [
        ["--license", "1"],  # nothing to set
        ["--license", "1", "--max-chats-per-agent", "0"],
        ["--license", "2", "--prechat-form", "on"],  # unknown licence
    ],
)
def test_bad_settings_change_nothing(tmp_path: Path, args: list[str]) -> None:
    data = tmp_path / "d"
    admin(data, "license", "create", "--name", "S")
    with pytest.raises(AdminError) as caught:
        admin(data, "license", "set", *args)
    assert caught.value.code != 0 and len(caught.value.stderr.splitlines()) == 1
    assert admin(data, "license", "set", "--license", "1", "--public-agent-email", "off")["settings"] == {
        "public_agent_email": False
    }
