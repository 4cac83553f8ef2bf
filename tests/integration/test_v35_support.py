"""Helpers of the LiveChat-SDK dialect tests (test_v35_*.py); this module holds no tests.

Each test builds its own site (a licence of its own on the agent modules' server, see
test_agent_support), so routing never sees another test's agents or customers.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tests.integration.test_agent_support import CustomerConn, Site
from tests.support import Rtm, customer_token

Payload = dict[str, Any]


async def org_of(site: Site) -> str:
    """The site's organization_id, as the public config endpoint tells it."""
    url = f"{site.server.base}/v3.0/customer/config?license_id={site.license_id}"
    async with site.http.get(url) as resp:
        assert resp.status == 200, await resp.text()
        return str((await resp.json())["organization_id"])


class V35Conn(CustomerConn):
    """A logged-in v3.5 customer connection that records every push, request_id included."""

    async def echo(self, action: str, payload: Any = None, push: str | None = None) -> tuple[Payload, Payload]:
        """(response frame, the push frame carrying its request_id): a request whose push the
        requester must get too (SPEC §11)."""
        frame = await self.rtm.request(action, payload)
        assert frame["success"] is True, frame
        rid = frame["request_id"]
        return frame, await self.tagged(rid, push)

    async def tagged(self, request_id: str, action: str | None = None, timeout: float = 5.0) -> Payload:
        """The push frame stamped with request_id (of that action)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            for f in self.log:
                if f.get("request_id") == request_id and (action is None or f["action"] == action):
                    return f
            await asyncio.sleep(0.02)
        raise AssertionError(f"no push with request_id {request_id} ({action}); got {self.log}")

    def tagged_now(self, request_id: str) -> list[Payload]:
        return [f for f in self.log if f.get("request_id") == request_id]


async def v35_rtm(site: Site, version: str = "v3.5", query: str | None = None) -> Rtm:
    query = f"organization_id={await org_of(site)}" if query is None else query
    ws = await site.http.ws_connect(f"{site.server.ws_base}/{version}/customer/rtm/ws?{query}")
    return Rtm(ws)


async def v35_customer(site: Site, token: Payload | None = None, version: str = "v3.5", **login: Any) -> V35Conn:
    """A v3.5 RTM connection of a new customer (or, given its token answer, of that one)."""
    token = token or await customer_token(site.http, site.server.base, site.license_id)
    rtm = await v35_rtm(site, version)
    answer = await rtm.call("login", {"token": f"Bearer {token['access_token']}", **login})
    conn = V35Conn(rtm, token["customer_id"], token, answer)
    site.conns.append(conn)
    return conn


async def v35_web(
    site: Site, token: str, action: str, payload: Any = None, version: str = "v3.5", query: str | None = None
) -> tuple[int, Any]:
    query = f"organization_id={await org_of(site)}" if query is None else query
    url = f"{site.server.base}/{version}/customer/action/{action}?{query}"
    headers = {"Authorization": f"Bearer {token}"}
    async with site.http.post(url, json=payload if payload is not None else {}, headers=headers) as resp:
        return resp.status, await resp.json()


def message(text: str, **extra: Any) -> Payload:
    return {"type": "message", "text": text, **extra}


def start_payload(text: str | None = "hello", **chat: Any) -> Payload:
    thread = {"events": [message(text)]} if text is not None else {}
    return {"chat": {**chat, "thread": thread} if thread else chat}
