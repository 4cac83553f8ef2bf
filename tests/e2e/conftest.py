"""Real-browser tests of the widget, the demo page and the agent console (SPEC §10).

They drive Debian's Chromium (/usr/bin/chromium, or $PARLEY_CHROMIUM) with Python Playwright and
find every control by its role and accessible name, as a screen reader would. When Chromium is
missing the fixtures try `apt-get install -y chromium` once (as root); only if that fails too are
the browser tests skipped, with the reason.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio

from tests.support import Rtm, Server, admin, agent_token

CHROMIUM = os.environ.get("PARLEY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 360, "height": 740}

_tenants = itertools.count(1)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: real-browser test (Chromium via Playwright)")


def _install_chromium() -> str:
    """An empty string when Chromium is there (installing it if we can), else why not."""
    if Path(CHROMIUM).exists():
        return ""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return f"{CHROMIUM} is missing and cannot be installed here (needs root and apt-get)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    error = ""
    for cmds in (
        [["apt-get", "install", "-y", "-q", "chromium"]],
        [["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]],
    ):
        for cmd in cmds:
            try:
                done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, check=False)
                error = done.stderr.strip()[-300:]
            except (OSError, subprocess.TimeoutExpired) as exc:
                error = str(exc)
        if Path(CHROMIUM).exists():
            return ""
    return f"{CHROMIUM} is missing and `apt-get install -y chromium` failed: {error}"


@pytest.fixture(scope="session")
def chromium_missing() -> str:
    return _install_chromium()


@pytest_asyncio.fixture(scope="session")
async def browser(chromium_missing: str) -> AsyncIterator[Any]:
    if chromium_missing:
        pytest.skip(f"browser tests need Chromium: {chromium_missing}")
    try:
        from playwright.async_api import async_playwright, expect
    except ImportError:
        pytest.skip("browser tests need the `playwright` package (pip install playwright==1.65.*)")
    expect.set_options(timeout=10_000)
    pw = await async_playwright().start()
    browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    await browser.close()
    await pw.stop()


@pytest.fixture(scope="session")
def e2e_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(
        tmp_path_factory.mktemp("e2e"),
        "--demo",
        env={"PARLEY_TOKEN_RATE_PER_MIN": "0", "PARLEY_RATE_LIMIT": "0"},
    ).start()
    yield srv
    srv.stop()


@dataclass
class Tenant:
    """A licence of its own with one agent, so that no test routes chats to another's agent."""

    server: Server
    license_id: int
    email: str
    password: str
    agent_id: str

    @property
    def widget_url(self) -> str:
        return f"{self.server.base}/?license_id={self.license_id}"

    @property
    def console_url(self) -> str:
        return f"{self.server.base}/agent/?license_id={self.license_id}"

    async def add_agent(self, name: str) -> tuple[str, str, str]:
        email = f"{name.lower()}-{self.license_id}@e2e.test"
        password = "pw-" + name.lower() + "-secret"
        made = await asyncio.to_thread(
            admin,
            self.server.data_dir,
            "agent",
            "create",
            "--license",
            str(self.license_id),
            "--email",
            email,
            "--name",
            name,
            "--password",
            password,
        )
        return made["agent_id"], email, password

    def set_license_setting(self, name: str, value: Any) -> None:
        """Licence settings have no operator command yet: write them before the server reads the licence."""
        with sqlite3.connect(self.server.data_dir / "parley.db", timeout=10) as db:
            (raw,) = db.execute("SELECT settings FROM licenses WHERE id = ?", (self.license_id,)).fetchone()
            settings = orjson.loads(raw)
            settings[name] = value
            db.execute(
                "UPDATE licenses SET settings = ? WHERE id = ?", (orjson.dumps(settings).decode(), self.license_id)
            )


async def make_tenant(server: Server, agent_name: str = "Alice") -> Tenant:
    n = next(_tenants)
    made = await asyncio.to_thread(admin, server.data_dir, "license", "create", "--name", f"e2e shop {n}")
    license_id = made["license_id"]
    email, password = f"{agent_name.lower()}-{license_id}@e2e.test", "correct horse battery"
    agent = await asyncio.to_thread(
        admin,
        server.data_dir,
        "agent",
        "create",
        "--license",
        str(license_id),
        "--email",
        email,
        "--name",
        agent_name,
        "--password",
        password,
    )
    return Tenant(server, license_id, email, password, agent["agent_id"])


@pytest_asyncio.fixture
async def tenant(e2e_server: Server) -> Tenant:
    return await make_tenant(e2e_server)


class Agent:
    """An agent over RTM (the console's protocol), for the widget tests."""

    def __init__(self, rtm: Rtm, agent_id: str) -> None:
        self.rtm = rtm
        self.id = agent_id

    @classmethod
    async def connect(
        cls, http: aiohttp.ClientSession, server: Server, license_id: int, email: str, password: str
    ) -> Agent:
        tok = await agent_token(http, server.base, email, password, license_id)
        rtm = await Rtm.connect(http, server.ws_base, "agent", license_id)
        await rtm.login(tok["access_token"])
        return cls(rtm, tok["agent_id"])

    async def push(self, action: str, timeout: float = 10.0) -> dict[str, Any]:
        return (await self.rtm.push(action, timeout))["payload"]

    async def heard(self, text: str, timeout: float = 10.0) -> dict[str, Any]:
        """The next incoming_event push carrying this text (earlier pushes are skipped)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            got = await self.push("incoming_event", max(left, 0.001))
            if got["event"].get("text") == text:
                return got

    async def say(self, chat_id: str, text: str) -> None:
        await self.rtm.call("send_event", {"chat_id": chat_id, "event": {"type": "message", "text": text}})

    async def texts(self, chat_id: str) -> list[str]:
        """Every message text of the chat, all threads, as stored."""
        summary = await self.rtm.call("get_chat_threads_summary", {"chat_id": chat_id})
        ids = [t["id"] for t in summary["chat"]["threads_summary"]]
        got = await self.rtm.call("get_chat_threads", {"chat_id": chat_id, "thread_ids": ids})
        return [e["text"] for t in got["chat"]["threads"] for e in t["events"] if e["type"] == "message"]

    async def close(self) -> None:
        await self.rtm.close()


@pytest_asyncio.fixture
async def agent(tenant: Tenant, http: aiohttp.ClientSession) -> AsyncIterator[Agent]:
    a = await Agent.connect(http, tenant.server, tenant.license_id, tenant.email, tenant.password)
    yield a
    await a.close()


class Watched:
    """A page plus what it complained about (CSP violations, script errors, alert dialogs)."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.problems: list[str] = []
        self.dialogs: list[str] = []
        self._tasks: set[asyncio.Future[Any]] = set()
        page.on("console", self._console)
        page.on("pageerror", lambda err: self.problems.append(f"pageerror: {err}"))
        page.on("dialog", self._dialog)

    def _console(self, msg: Any) -> None:
        if msg.type == "error" or "Content Security Policy" in msg.text:
            # A refused WebSocket/fetch while the server is deliberately down is expected noise.
            if "ERR_CONNECTION_REFUSED" in msg.text or "WebSocket connection" in msg.text:
                return
            self.problems.append(f"console {msg.type}: {msg.text}")

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        task = asyncio.ensure_future(dialog.dismiss())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


@pytest_asyncio.fixture
async def new_page(browser: Any) -> AsyncIterator[Any]:
    """new_page(url, viewport=…) -> Watched, each in a browser context of its own (a new visitor)."""
    contexts: list[Any] = []

    async def make(url: str, viewport: dict[str, int] | None = None, context: Any = None) -> Watched:
        if context is None:
            context = await browser.new_context(viewport=viewport or DESKTOP)
            contexts.append(context)
        watched = Watched(await context.new_page())
        await watched.page.goto(url)
        return watched

    yield make
    for context in contexts:
        await context.close()
