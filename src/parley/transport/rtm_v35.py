"""RTM in the LiveChat-SDK dialect (SPEC §11): the v3.0 connection, speaking v3.5 on the wire.

The service and the bus produce v3.0 push frames; only a v3.5 connection pays for translating
them (protocol/v35.translate_frame), so v3.0 connections keep their hot path untouched. The
requesting connection's echo pushes (`v35.Echo`) get the request's `request_id` here, and
envelope fields the v3.0 parser does not know (customer-sdk's `version`) are dropped first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from parley.protocol import v35
from parley.protocol.envelope import push
from parley.service.context import Ctx
from parley.transport.rtm import RtmConnection

if TYPE_CHECKING:
    from parley.node import Side
    from parley.store.records import License
    from parley.transport.app import Web


class RtmV35Connection(RtmConnection):
    def __init__(self, web_: Web, ws: web.WebSocketResponse, side: Side, license: License) -> None:
        super().__init__(web_, ws, side, license)
        self._request_id: str | None = None
        self._queue_push = v35.QUEUE_PUSH

    def deliver(self, frame: bytes, t0: float | None = None) -> None:
        if isinstance(frame, v35.Echo):
            super().deliver(push(frame.action, frame.payload, self._request_id), t0)
            return
        for out in v35.translate_frame(frame, self._queue_push):
            super().deliver(out, t0)

    async def on_text(self, data: str) -> None:
        request_id = None
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            obj = None  # the v3.0 parser answers it
        if isinstance(obj, dict):
            found = obj.get("request_id")
            request_id = found if isinstance(found, str) else None
            if obj.keys() - v35.ENVELOPE_KEYS:
                data = orjson.dumps({k: v for k, v in obj.items() if k in v35.ENVELOPE_KEYS}).decode()
        # Requests on one connection run one at a time, so the id of the one running is the id
        # every echo pushed meanwhile belongs to.
        self._request_id = request_id
        try:
            await super().on_text(data)
        finally:
            self._request_id = None

    async def login(self, payload: dict[str, Any], t0: float) -> tuple[dict[str, Any], Ctx] | None:
        done = await super().login(payload, t0)
        if done is not None:
            pushes = payload.get("pushes")
            self._queue_push = v35.queue_push_name(pushes if isinstance(pushes, dict) else None)
        return done


