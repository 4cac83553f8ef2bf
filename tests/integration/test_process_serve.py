"""`parley serve` through its public surface (SPEC §1): flags and PARLEY_* variables, the
`listening on` line, `--demo`, and `/healthz`."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest

from tests.support import PARLEY, ROOT, Rtm, Server, admin, agent_token, customer_token

LISTENING = re.compile(r"listening on (http://(\S+):(\d+))")
START_TIMEOUT = 12.0


class Launched:
    """`parley serve` with exactly the given argv and environment (no flags added)."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
        self.proc = subprocess.Popen(
            [*PARLEY, "serve", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**clean, "PYTHONPATH": str(ROOT / "src"), **env},
            cwd=cwd,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.base = ""
        self.host = ""
        self.port = 0

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_listening(self, timeout: float = START_TIMEOUT) -> Launched:
        while True:
            try:
                line = self._queue.get(timeout=timeout)
            except queue.Empty:
                self.stop(signal.SIGKILL)
                raise AssertionError(f"no `listening on` line within {timeout} s: {self.lines}") from None
            if line is None:
                raise AssertionError(f"parley serve exited ({self.proc.wait(5)}) before listening: {self.lines}")
            self.lines.append(line)
            found = LISTENING.search(line)
            if found:
                self.base, self.host, self.port = found.group(1), found.group(2), int(found.group(3))
                return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 12.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise


@pytest.fixture
def launched() -> Iterator[list[Launched]]:
    """Collects what a test launches and makes sure it is gone afterwards."""
    procs: list[Launched] = []
    yield procs
    for p in procs:
        if p.proc.poll() is None:
            p.stop(signal.SIGKILL)


def launch(procs: list[Launched], args: list[str], env: dict[str, str], cwd: Path) -> Launched:
    p = Launched(args, env, cwd)
    procs.append(p)
    return p.wait_listening()


def demo_login(lines: list[str]) -> tuple[str, str]:
    found = [re.match(r"agent login: (\S+) (\S+)\s*$", line) for line in lines]
    matches = [f for f in found if f]
    assert len(matches) == 1, lines
    return matches[0].group(1), matches[0].group(2)


def printed_urls(lines: list[str]) -> list[str]:
    return [url for line in lines if not LISTENING.search(line) for url in re.findall(r"https?://\S+", line)]


async def healthy(http: aiohttp.ClientSession, base: str) -> None:
    async with http.get(f"{base}/healthz") as resp:
        assert resp.status == 200
        assert await resp.json() == {"status": "ok"}


# -- --port 0 and the listening line -------------------------------------------------------------


async def test_port_0_prints_listening_line(
    tmp_path: Path, launched: list[Launched], http: aiohttp.ClientSession
) -> None:
    p = launch(launched, ["--port", "0", "--host", "127.0.0.1", "--data-dir", str(tmp_path / "d")], {}, tmp_path)
    assert p.host == "127.0.0.1"
    assert 0 < p.port < 65536
    # "once it accepts connections": the very first request after the line succeeds
    await healthy(http, p.base)
    assert p.stop() == 0


async def test_two_servers_on_port_0_get_different_ports(
    tmp_path: Path, launched: list[Launched], http: aiohttp.ClientSession
) -> None:
    a = launch(launched, ["--port", "0", "--data-dir", str(tmp_path / "a")], {}, tmp_path)
    b = launch(launched, ["--port", "0", "--data-dir", str(tmp_path / "b")], {}, tmp_path)
    assert a.port != b.port
    await healthy(http, a.base)
    await healthy(http, b.base)


async def test_environment_instead_of_flags(
    tmp_path: Path, launched: list[Launched], http: aiohttp.ClientSession
) -> None:
    data = tmp_path / "env-data"
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    p = launch(launched, [], {"PARLEY_PORT": "0", "PARLEY_HOST": "127.0.0.1", "PARLEY_DATA_DIR": str(data)}, cwd)
    assert p.host == "127.0.0.1" and p.port > 0
    await healthy(http, p.base)
    # state went to PARLEY_DATA_DIR, not to the default ./parley-data
    assert data.is_dir() and any(data.iterdir())
    assert not (cwd / "parley-data").exists()
    assert p.stop() == 0


async def test_demo_from_environment(tmp_path: Path, launched: list[Launched], http: aiohttp.ClientSession) -> None:
    env = {"PARLEY_PORT": "0", "PARLEY_DATA_DIR": str(tmp_path / "d"), "PARLEY_DEMO": "1"}
    p = launch(launched, [], env, tmp_path)
    email, password = demo_login(p.lines)
    token = await agent_token(http, p.base, email, password)
    assert token["license_id"] == 1


async def test_flag_wins_over_environment(
    tmp_path: Path, launched: list[Launched], http: aiohttp.ClientSession
) -> None:
    env_dir, flag_dir = tmp_path / "from-env", tmp_path / "from-flag"
    p = launch(launched, ["--port", "0", "--data-dir", str(flag_dir)], {"PARLEY_DATA_DIR": str(env_dir)}, tmp_path)
    await healthy(http, p.base)
    assert flag_dir.is_dir() and any(flag_dir.iterdir())
    assert not env_dir.exists()


async def test_port_from_environment_is_overridden_by_flag(
    tmp_path: Path, launched: list[Launched], http: aiohttp.ClientSession
) -> None:
    # PARLEY_PORT names a port that cannot be bound; `--port 0` must win.
    p = launch(launched, ["--port", "0", "--data-dir", str(tmp_path / "d")], {"PARLEY_PORT": "1"}, tmp_path)
    assert p.port != 1
    await healthy(http, p.base)


# -- --demo ----------------------------------------------------------------------------------


async def test_demo_prints_urls_and_agent_login(
    tmp_path: Path, launched: list[Launched], http: aiohttp.ClientSession
) -> None:
    p = launch(launched, ["--port", "0", "--data-dir", str(tmp_path / "d"), "--demo"], {}, tmp_path)
    email, password = demo_login(p.lines)
    assert "@" in email and password
    urls = printed_urls(p.lines)
    assert len(urls) >= 2, p.lines
    for url in urls:
        assert url.startswith(p.base), (url, p.base)
    paths = [urlsplit(u).path for u in urls]
    assert "/" in paths, urls  # the widget demo page
    assert any(path.startswith("/agent") for path in paths), urls  # the agent console

    token = await agent_token(http, p.base, email, password)
    assert token["token_type"] == "Bearer"
    assert token["license_id"] == 1
    assert token["expires_in"] == 28800
    assert isinstance(token["agent_id"], str) and token["agent_id"]
    assert isinstance(token["access_token"], str) and token["access_token"]


async def test_demo_urls_serve_pages(tmp_path: Path, launched: list[Launched], http: aiohttp.ClientSession) -> None:
    p = launch(launched, ["--port", "0", "--data-dir", str(tmp_path / "d"), "--demo"], {}, tmp_path)
    for url in printed_urls(p.lines):
        async with http.get(url) as resp:
            assert resp.status == 200, url
            assert resp.content_type == "text/html", url


async def test_demo_agent_wrong_password_is_refused(
    server: Server, http: aiohttp.ClientSession, demo_agent: tuple[str, str]
) -> None:
    email, password = demo_agent
    body = {"license_id": 1, "email": email, "password": password + "x"}
    async with http.post(f"{server.base}/v3.0/agent/token", json=body) as resp:
        assert resp.status == 401
        assert (await resp.json())["error"]["type"] == "authentication"


async def test_demo_restart_keeps_licence_and_password(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    data = tmp_path / "d"
    first = Server(data, "--demo").start()
    try:
        email, password = demo_login(first.stdout_lines)
        await agent_token(http, first.base, email, password)
        async with http.get(f"{first.base}/v3.0/customer/config?license_id=1") as resp:
            assert resp.status == 200
            org_before = (await resp.json()).get("organization_id")
        customer = await customer_token(http, first.base)
        rtm = await Rtm.connect(http, first.ws_base)
        await rtm.login(customer["access_token"])
        chat = (await rtm.call("start_chat", {}))["chat"]
        await rtm.close()
    finally:
        assert first.stop() == 0

    second = Server(data, "--demo").start()
    try:
        assert demo_login(second.stdout_lines) == (email, password)
        again = await agent_token(http, second.base, email, password)
        assert again["license_id"] == 1
        async with http.get(f"{second.base}/v3.0/customer/config?license_id=1") as resp:
            assert resp.status == 200
            assert (await resp.json()).get("organization_id") == org_before
        # the demo set-up did not wipe anything: the chat from before is still there
        rtm = await Rtm.connect(http, second.ws_base)
        login = await rtm.login(customer["access_token"])
        assert login["total_chats"] == 1
        assert login["last_chats_summary"][0]["id"] == chat["id"]
        await rtm.close()
        # no second demo licence, no second demo agent
        async with http.post(f"{second.base}/v3.0/customer/token", json={"license_id": 2}) as resp:
            assert resp.status == 404
        agents = admin(data, "agent", "list", "--license", "1")
        assert [a["email"] for a in agents] == [email]
    finally:
        assert second.stop() == 0


async def test_without_demo_there_is_no_licence(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    srv = Server(tmp_path / "d").start()
    try:
        assert not any(line.startswith("agent login:") for line in srv.stdout_lines)
        async with http.post(f"{srv.base}/v3.0/customer/token", json={"license_id": 1}) as resp:
            assert resp.status == 404
            assert (await resp.json())["error"]["type"] == "license_not_found"
    finally:
        assert srv.stop() == 0


# -- /healthz --------------------------------------------------------------------------------


async def test_healthz(server: Server, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{server.base}/healthz") as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        assert await resp.json() == {"status": "ok"}


async def test_a_second_server_on_the_same_sqlite_directory_exits(tmp_path: Path) -> None:
    """One server per SQLite data directory: a second one says why and exits non-zero, and the
    first keeps serving."""
    data = tmp_path / "d"
    first = Server(data).start()
    try:
        second = subprocess.run(
            [*PARLEY, "serve", "--port", "0", "--data-dir", str(data)],
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
        assert second.returncode != 0
        assert "another `parley serve` is using" in second.stderr
        assert "listening on" not in second.stdout
        async with aiohttp.ClientSession() as http, http.get(f"{first.base}/healthz") as resp:
            assert resp.status == 200
    finally:
        assert first.stop() == 0
    # The lock goes with the process: a new server on the directory starts.
    again = Server(data).start()
    assert again.stop() == 0
