"""Helpers shared by the agent-side integration tests (test_agent_*.py).

This module holds no tests; it is named `test_agent_support` only because the agent test suite
lives in files of the `test_agent_*` pattern and nothing else.

Every test builds its own *site*: a fresh licence on a server of its own module, with groups and
agents made by `parley admin`, so that routing (which is per licence) never sees another test's
agents, customers or queue. The shared demo server of conftest is never used: logging its agent in
would make it a routing target for every other test file.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support import Rtm, Server, admin, agent_token, customer_token, web_call

PASSWORD = "password1"
RFC3339_US = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
AGENT_USER_KEYS = {"id", "type", "name", "avatar", "present", "last_seen_timestamp", "routing_status"}
PROFILE_KEYS = AGENT_USER_KEYS | {"email", "groups", "max_chats"}

Payload = dict[str, Any]
Match = Callable[[Payload], bool]

_names = itertools.count(1)


def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Body of a module-scoped fixture: a server of its own, licence 1 made before it starts."""
    data = tmp_path_factory.mktemp("agents")
    admin(data, "license", "create", "--name", "T")
    srv = Server(data, env={"PARLEY_TOKEN_RATE_PER_MIN": "0"}).start()
    try:
        yield srv
    finally:
        srv.stop()


async def run_admin(data_dir: Path, *args: str) -> Any:
    return await asyncio.to_thread(admin, data_dir, *args)


def message(text: str, **extra: Any) -> Payload:
    return {"type": "message", "text": text, **extra}


# -- connections that record every push ---------------------------------------------------


class Conn:
    """One logged-in RTM connection that keeps every push it receives, in arrival order.

    Unlike `Rtm.push`, waiting for one push never throws the others away, so a test can still
    count them all at the end."""

    def __init__(self, rtm: Rtm, user_id: str) -> None:
        self.rtm = rtm
        self.id = user_id
        self.log: list[dict[str, Any]] = []
        self._taken: set[int] = set()
        self._cond = asyncio.Condition()
        self._pump = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            frame = await self.rtm.pushes.get()
            async with self._cond:
                self.log.append(frame)
                self._cond.notify_all()

    # requests

    async def call(self, action: str, payload: Any = None) -> Payload:
        return await self.rtm.call(action, payload)

    async def error(self, action: str, payload: Any = None) -> Payload:
        return await self.rtm.error(action, payload)

    async def request(self, action: str, payload: Any = None) -> Payload:
        return await self.rtm.request(action, payload)

    # pushes

    def pushes(self, action: str, where: Match | None = None, **match: Any) -> list[Payload]:
        """Every push of that action received so far (taken or not) whose payload matches."""
        return [f["payload"] for f in self.log if f["action"] == action and _matches(f["payload"], where, match)]

    def actions(self) -> list[str]:
        return [f["action"] for f in self.log]

    async def wait(self, action: str, where: Match | None = None, timeout: float = 5.0, **match: Any) -> Payload:
        """The oldest push of that action not handed out before whose payload matches."""

        def find() -> int | None:
            for i, f in enumerate(self.log):
                if i not in self._taken and f["action"] == action and _matches(f["payload"], where, match):
                    return i
            return None

        async def until() -> int:
            async with self._cond:
                await self._cond.wait_for(lambda: find() is not None)
                found = find()
                assert found is not None
                return found

        try:
            index = await asyncio.wait_for(until(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"no {action} push matching {match or where} within {timeout}s; got {self.actions()}"
            ) from None
        self._taken.add(index)
        return self.log[index]["payload"]

    async def none(self, action: str, where: Match | None = None, within: float = 0.4, **match: Any) -> None:
        """Wait a little, then make sure no push of that action (matching) ever arrived."""
        await asyncio.sleep(within)
        found = self.pushes(action, where, **match)
        assert not found, f"unexpected {action} push(es): {found}"

    async def close(self) -> None:
        self._pump.cancel()
        with contextlib.suppress(Exception):
            await self.rtm.close()


def _matches(payload: Payload, where: Match | None, match: dict[str, Any]) -> bool:
    if any(payload.get(k) != v for k, v in match.items()):
        return False
    return where is None or where(payload)


class AgentConn(Conn):
    def __init__(self, rtm: Rtm, user_id: str, token: str, answer: Payload) -> None:
        super().__init__(rtm, user_id)
        self.token = token
        self.answer = answer


class CustomerConn(Conn):
    def __init__(self, rtm: Rtm, user_id: str, token: Payload, answer: Payload) -> None:
        super().__init__(rtm, user_id)
        self.token = token
        self.answer = answer

    @property
    def access(self) -> str:
        return str(self.token["access_token"])

    async def start_chat(self, groups: Sequence[int] | None = None, text: str | None = None) -> Payload:
        chat: Payload = {}
        if groups is not None:
            chat["scopes"] = {"groups": list(groups)}
        if text is not None:
            chat["thread"] = {"events": [message(text)]}
        return (await self.call("start_chat", {"chat": chat}))["chat"]

    async def say(self, chat_id: str, text: str) -> Payload:
        return await self.call("send_event", {"chat_id": chat_id, "event": message(text)})


# -- sites ------------------------------------------------------------------------------


@dataclass
class Account:
    key: str
    email: str
    id: str
    groups: list[int]


@dataclass
class Site:
    """A licence of its own on a running server, with groups and agents made by `parley admin`."""

    server: Server
    http: aiohttp.ClientSession
    license_id: int
    groups: dict[str, int]
    accounts: dict[str, Account]
    conns: list[Conn] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        return self.server.data_dir

    def agent_id(self, key: str) -> str:
        return self.accounts[key].id

    async def admin(self, *args: str) -> Any:
        return await run_admin(self.data_dir, *args)

    async def add_agent(self, key: str, groups: Sequence[str] = (), max_chats: int | None = None) -> Account:
        email = f"{key}-{self.license_id}-{next(_names)}@agents.example"
        args = ["agent", "create", "--license", str(self.license_id), "--email", email, "--name", key.upper()]
        args += ["--password", PASSWORD]
        for g in groups:
            args += ["--group", str(self.groups[g])]
        if max_chats is not None:
            args += ["--max-chats", str(max_chats)]
        made = await self.admin(*args)
        account = Account(key, email, made["agent_id"], sorted({0, *(self.groups[g] for g in groups)}))
        self.accounts[key] = account
        return account

    async def agent_token(self, key: str) -> str:
        got = await agent_token(self.http, self.server.base, self.accounts[key].email, PASSWORD, self.license_id)
        return str(got["access_token"])

    async def rtm(self, side: str) -> Rtm:
        return await Rtm.connect(self.http, self.server.ws_base, side=side, license_id=self.license_id)

    async def agent(self, key: str, token: str | None = None) -> AgentConn:
        """A new logged-in RTM connection of that agent."""
        token = token or await self.agent_token(key)
        rtm = await self.rtm("agent")
        answer = await rtm.login(token)
        conn = AgentConn(rtm, answer["my_profile"]["id"], token, answer)
        self.conns.append(conn)
        return conn

    async def customer(self, token: Payload | None = None, **login: Any) -> CustomerConn:
        """A new customer (or, given its token answer, another connection of that one)."""
        token = token or await customer_token(self.http, self.server.base, self.license_id)
        rtm = await self.rtm("customer")
        answer = await rtm.login(token["access_token"], **login)
        conn = CustomerConn(rtm, token["customer_id"], token, answer)
        self.conns.append(conn)
        return conn

    async def web(self, token: str, action: str, payload: Any = None, side: str = "agent") -> tuple[int, Any]:
        return await web_call(
            self.http, self.server.base, token, action, payload, side=side, license_id=self.license_id
        )

    async def close(self) -> None:
        for conn in self.conns:
            await conn.close()


class Sites:
    """Per-test factory of sites; closes every connection they opened afterwards."""

    def __init__(self, server: Server, http: aiohttp.ClientSession) -> None:
        self.server = server
        self.http = http
        self.made: list[Site] = []

    async def __call__(self, groups: Sequence[str] = (), agents: dict[str, Any] | None = None) -> Site:
        """`agents` maps a key to (group names, max_chats or None)."""
        lic = await run_admin(self.server.data_dir, "license", "create", "--name", f"L{next(_names)}")
        license_id = int(lic["license_id"])
        ids: dict[str, int] = {}
        for name in groups:
            ids[name] = int(
                (
                    await run_admin(
                        self.server.data_dir, "group", "create", "--license", str(license_id), "--name", name
                    )
                )["id"]
            )
        site = Site(self.server, self.http, license_id, ids, {})
        self.made.append(site)
        for key, (agent_groups, max_chats) in (agents or {}).items():
            await site.add_agent(key, agent_groups, max_chats)
        return site

    async def close(self) -> None:
        for site in self.made:
            await site.close()


def now() -> int:
    return int(time.time())


def user_ids(chat: Payload) -> list[str]:
    return [u["id"] for u in chat["users"]]


def agent_ids(chat: Payload) -> list[str]:
    return [u["id"] for u in chat["users"] if u["type"] == "agent"]


def texts(events: list[Payload]) -> list[str]:
    return [e["text"] for e in events if e["type"] == "message"]
