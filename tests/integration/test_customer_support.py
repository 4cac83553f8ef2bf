"""Helpers shared by the customer-side integration tests (test_customer_*.py).

This module holds no tests; it lives under a `test_customer_` name only because the customer
test suite may add files of that pattern and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from typing import Any

import aiohttp

from tests.support import Rtm, Server, admin, customer_token, web_call

RFC3339_US = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")

# Keys every stored event carries (SPEC §4); custom_id and properties are optional.
EVENT_KEYS = {"id", "type", "order", "author_id", "created_at", "timestamp", "recipients"}
CUSTOMER_KEYS = {"id", "type", "name", "email", "present", "last_seen_timestamp", "monitoring", "properties"}
THREAD_KEYS = {"id", "active", "order", "created_at", "user_ids", "events", "properties"}


class Customer:
    """One customer: its token answer and one logged-in RTM connection (more via `connect`)."""

    def __init__(self, server: Server, http: aiohttp.ClientSession, token: dict[str, Any], rtm: Rtm) -> None:
        self.server = server
        self.http = http
        self.token = token
        self.rtm = rtm
        self.login_answer: dict[str, Any] = {}

    @property
    def id(self) -> str:
        return self.token["customer_id"]

    @property
    def access(self) -> str:
        return self.token["access_token"]

    async def connect(self, **login: Any) -> Rtm:
        """Another logged-in connection of the same customer (another browser tab)."""
        rtm = await Rtm.connect(self.http, self.server.ws_base)
        await rtm.login(self.access, **login)
        return rtm

    async def call(self, action: str, payload: Any = None) -> dict[str, Any]:
        return await self.rtm.call(action, payload)

    async def error(self, action: str, payload: Any = None) -> dict[str, Any]:
        return await self.rtm.error(action, payload)

    async def web(self, action: str, payload: Any = None) -> tuple[int, Any]:
        return await web_call(self.http, self.server.base, self.access, action, payload)

    async def start_chat(self, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        return (await self.call("start_chat", payload or {}))["chat"]

    async def say(self, chat_id: str, text: str, **extra: Any) -> dict[str, Any]:
        """send_event of a message; answers {thread_id, event}."""
        return await self.call("send_event", {"chat_id": chat_id, "event": {"type": "message", "text": text, **extra}})

    async def close(self, chat_id: str) -> None:
        assert await self.call("close_thread", {"chat_id": chat_id}) == {}

    async def chats(self, limit: int = 25) -> dict[str, Any]:
        return await self.call("get_chats_summary", {"pagination": {"limit": limit}})

    async def chat(self, chat_id: str) -> dict[str, Any]:
        """The chats_summary item of one chat (fails if the customer does not have it)."""
        items = (await self.chats())["chats_summary"]
        found = [c for c in items if c["id"] == chat_id]
        assert found, f"chat {chat_id} not in {[c['id'] for c in items]}"
        return found[0]

    async def threads_summary(self, chat_id: str) -> list[dict[str, Any]]:
        answer = await self.call("get_chat_threads_summary", {"chat_id": chat_id, "pagination": {"limit": 1000}})
        return answer["chat"]["threads_summary"]

    async def threads(self, chat_id: str, thread_ids: list[str] | None = None) -> list[dict[str, Any]]:
        """Full threads (with events) of a chat, all of them unless ids are given."""
        if thread_ids is None:
            thread_ids = [t["thread_id"] for t in await self.threads_summary(chat_id)]
        answer = await self.call("get_chat_threads", {"chat_id": chat_id, "thread_ids": thread_ids})
        return answer["chat"]["threads"]

    async def events(self, chat_id: str) -> list[dict[str, Any]]:
        """Events of every thread, without the server's own system messages."""
        return own([e for t in await self.threads(chat_id) for e in t["events"]])

    async def me(self) -> dict[str, Any]:
        """The stored customer, read back through update_customer with nothing to change."""
        return (await self.call("update_customer", {"customer": {}}))["customer"]


async def new_customer(server: Server, http: aiohttp.ClientSession, license_id: int = 1, **login: Any) -> Customer:
    token = await customer_token(http, server.base, license_id)
    rtm = await Rtm.connect(http, server.ws_base, license_id=license_id)
    customer = Customer(server, http, token, rtm)
    customer.login_answer = await rtm.login(token["access_token"], **login)
    return customer


def assert_error(error: dict[str, Any], type_: str, code: int, names: str | None = None) -> None:
    """An error object of SPEC §3; `names` must appear in its message when given."""
    assert error["type"] == type_, error
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"], error
    assert set(error) <= {"type", "code", "message", "data"}, error
    if names is not None:
        assert names in error["message"], f"message should name `{names}`: {error}"


async def drain(rtm: Rtm, within: float = 0.3) -> list[dict[str, Any]]:
    """Every push that arrives within `within` seconds (whole frames)."""
    got: list[dict[str, Any]] = []
    deadline = asyncio.get_running_loop().time() + within
    while True:
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            return got
        try:
            got.append(await asyncio.wait_for(rtm.pushes.get(), left))
        except TimeoutError:
            return got


def is_system(event: dict[str, Any]) -> bool:
    return event.get("type") == "system_message"


def own(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events without system messages: the server may add those (routing, close) at any time (SPEC §4)."""
    return [e for e in events if not is_system(e)]


def is_news(frame: dict[str, Any]) -> bool:
    """A push the server may send on its own, whatever the test does (routing by a connected agent)."""
    if frame["action"] == "incoming_event":
        return is_system(frame["payload"].get("event", {}))
    return frame["action"] in {"chat_user_added", "chat_user_removed", "queue_position_updated", "chat_transferred"}


async def no_push_of(rtm: Rtm, *actions: str, within: float = 0.3) -> list[dict[str, Any]]:
    """Assert no push of these actions arrives (routing news, e.g. queue_position_updated, may)."""
    got = await drain(rtm, within)
    bad = [p for p in got if p["action"] in actions and not is_news(p)]
    assert not bad, f"unexpected push {bad}"
    return got


async def event_push(rtm: Rtm, timeout: float = 5.0) -> dict[str, Any]:
    """The payload of the next incoming_event that is not a system message."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        frame = await rtm.push("incoming_event", max(deadline - asyncio.get_running_loop().time(), 0.001))
        if not is_news(frame):
            return frame["payload"]


async def send_raw(rtm: Rtm, frame: Any) -> None:
    """Send a frame as is: a str goes verbatim, anything else as JSON."""
    await rtm.ws.send_str(frame if isinstance(frame, str) else json.dumps(frame))


async def next_unmatched(rtm: Rtm, timeout: float = 5.0) -> dict[str, Any]:
    """The next non-push frame the Rtm helper could not match to one of its own requests."""
    return await asyncio.wait_for(rtm.unmatched.get(), timeout)


async def wait_closed(rtm: Rtm, timeout: float = 5.0) -> int | None:
    return await asyncio.wait_for(asyncio.shield(rtm.closed), timeout)


_groups: dict[str, int] = {}


def extra_group(server: Server, name: str = "Sales") -> int:
    """A second group of licence 1 on this server (made once per server and name)."""
    key = f"{server.data_dir}:{name}"
    if key not in _groups:
        _groups[key] = int(admin(server.data_dir, "group", "create", "--license", "1", "--name", name)["id"])
    return _groups[key]


_licences: dict[str, int] = {}


def second_licence(server: Server) -> int:
    key = str(server.data_dir)
    if key not in _licences:
        _licences[key] = int(admin(server.data_dir, "license", "create", "--name", "L2")["license_id"])
    return _licences[key]


def now() -> int:
    return int(time.time())


def message(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "message", "text": text, **extra}


async def close_quietly(*rtms: Rtm) -> None:
    for rtm in rtms:
        with contextlib.suppress(Exception):
            await rtm.close()
