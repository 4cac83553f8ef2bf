"""RTM: one WebSocket connection, its login-first rule, timeouts, limits and in-order answers."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from collections import deque
from typing import TYPE_CHECKING, Any

from aiohttp import WSCloseCode, WSMsgType, web

from parley.protocol import limits
from parley.protocol import methods as m
from parley.protocol.envelope import FrameError, RequestError, decode_frame, error_response, push, response
from parley.protocol.errors import ApiError, ErrorType, validation
from parley.service.context import Ctx
from parley.service.dispatch import lookup
from parley.service.ratelimit import TokenBucket
from parley.transport.wsfast import write_now

if TYPE_CHECKING:
    from parley.node import Side
    from parley.store.records import License
    from parley.transport.app import Web

log = logging.getLogger("parley.rtm")

_ids = itertools.count(1)
# A client that stops reading while pushes pile up is cut off rather than buffered forever.
_OUTBOX_MAX = 10_000


class RtmConnection:
    def __init__(self, web_: Web, ws: web.WebSocketResponse, side: Side, license: License) -> None:
        self.web = web_
        self.ws = ws
        self.side_cfg = side
        self.side = side.name
        self.license = license
        self.conn_id = next(_ids)
        self.user_id = ""
        self.groups: list[int] = []
        self.closing = False
        self._outbox: deque[tuple[bytes, float | None]] = deque()
        self._writer: asyncio.Task | None = None
        self._bucket = TokenBucket(web_.node.settings.rate_limit, limits.RATE_BURST)
        self._expiry: asyncio.TimerHandle | None = None
        self._closer: asyncio.Task | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._last_frame = 0.0
        self._login_deadline = 0.0
        self.busy_since = 0.0
        """Loop time at which the request in flight began; 0 when none is. See `time_out`."""
        self._task: asyncio.Task | None = None
        self._timed_out = False

    # -- Connection protocol of the bus -----------------------------------------------

    def deliver(self, frame: bytes, t0: float | None = None) -> None:
        if self.closing:
            return
        if self._writer is None and write_now(self.ws, frame):
            if t0 is not None:
                self.web.metrics.push_latency.observe(time.perf_counter() - t0)
            return
        self._outbox.append((frame, t0))
        if len(self._outbox) > _OUTBOX_MAX:
            self._outbox.clear()
            self.disconnect(None, WSCloseCode.POLICY_VIOLATION)
            return
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        observe = self.web.metrics.push_latency.observe
        try:
            while self._outbox:
                frame, t0 = self._outbox.popleft()
                await self.ws.send_frame(frame, WSMsgType.TEXT)
                if t0 is not None:
                    observe(time.perf_counter() - t0)
        except Exception:
            self._outbox.clear()
        finally:
            self._writer = None

    def disconnect(self, last_frame: bytes | None, code: int) -> None:
        if self.closing:
            return
        if last_frame is not None:
            self.deliver(last_frame)
        self.closing = True
        self._closer = asyncio.get_running_loop().create_task(self._close(code))

    async def _close(self, code: int) -> None:
        if self._writer is not None:
            await asyncio.shield(self._writer)
        await self.ws.close(code=code)

    def _push_disconnected(self, reason: str, code: int) -> None:
        self.disconnect(push(self.side_cfg.disconnected_push, {"reason": reason}), code)

    # -- the read loop -----------------------------------------------------------------

    def time_out(self) -> None:
        """The node's sweeper found the request in flight older than REQUEST_TIMEOUT_S: cancel it.

        One sweep a second over all connections replaces an `asyncio.timeout` per request, whose
        timer and bookkeeping cost more than the rest of a `ping`."""
        if self.busy_since and self._task is not None and not self._timed_out:
            self._timed_out = True
            self._task.cancel()

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._last_frame = loop.time()
        self._login_deadline = self._last_frame + limits.LOGIN_TIMEOUT_S
        self._watchdog = loop.call_at(self._login_deadline, self._check_idle)
        while not self.closing:
            msg = await self.ws.receive()
            self._last_frame = loop.time()
            if msg.type == WSMsgType.TEXT:
                await self.on_text(msg.data)
            elif msg.type == WSMsgType.PING:
                await self.ws.pong(msg.data)
            elif msg.type == WSMsgType.PONG:
                continue
            elif msg.type == WSMsgType.BINARY:
                await self.ws.close(code=WSCloseCode.UNSUPPORTED_DATA, message=b"binary frames are not supported")
                break
            else:  # CLOSE, CLOSING, CLOSED, ERROR (aiohttp already closed with 1009 for a huge frame)
                break
        if self._closer is not None:
            await self._closer
        elif not self.ws.closed:
            await self.ws.close(code=WSCloseCode.OK)

    def _check_idle(self) -> None:
        """One timer per connection, re-armed lazily: cheaper than a timeout on every receive."""
        deadline = self._last_frame + limits.IDLE_TIMEOUT_S
        if not self.user_id:
            deadline = min(deadline, self._login_deadline)
        loop = asyncio.get_running_loop()
        if loop.time() >= deadline:
            self._push_disconnected("ping_timeout", WSCloseCode.OK)
        else:
            self._watchdog = loop.call_at(deadline, self._check_idle)

    async def cleanup(self) -> None:
        self.closing = True
        for timer in (self._expiry, self._watchdog):
            if timer is not None:
                timer.cancel()
        if self.user_id:
            bus = self.web.node.bus
            bus.detach(self)
            if not bus.is_present(self.user_id) and self.side_cfg.on_gone is not None:
                await self.side_cfg.on_gone(self.license, self.user_id)

    async def on_text(self, data: str) -> None:
        t0 = time.perf_counter()
        request_id = None
        action: str | None = None
        try:
            req = decode_frame(data)
            request_id, action = req.request_id, req.action
            if not self._bucket.take():
                raise ApiError(ErrorType.TOO_MANY_REQUESTS, "too many requests on this connection; slow down")
            if not self.user_id:
                if action != "login":
                    raise ApiError(ErrorType.AUTHENTICATION, "log in first: the first request must be `login`")
                done = await self.login(req.payload, t0)
                if done is None:
                    return
                payload, ctx = done
            else:
                if action == "login":
                    raise validation("this connection is already logged in")
                method = lookup(self.side_cfg.methods, action, "rtm")
                typed = m.decode(method.kind, req.payload)
                ctx = Ctx(self.license, self.side, self.user_id, self.conn_id, t0, self.groups)
                self.busy_since = self._last_frame
                try:
                    payload = await method.handler(ctx, typed)
                finally:
                    self.busy_since = 0.0
            self.deliver(response(action, payload, request_id))
            for frame in ctx.after:
                self.deliver(frame, t0)
            self.web.count(self.side, action, "success")
        except FrameError as exc:
            self.deliver(error_response(None, exc, None))
            self.web.count(self.side, "invalid", exc.kind.type_name)
        except RequestError as exc:
            self.deliver(error_response(exc.action, exc.error, exc.request_id))
            self.web.count(self.side, "invalid", exc.error.kind.type_name)
        except ApiError as exc:
            self.deliver(error_response(action, exc, request_id))
            self.web.count(self.side, action, exc.kind.type_name)
        except asyncio.CancelledError:
            if not self._timed_out:
                raise
            self._timed_out = False
            if self._task is not None:
                self._task.uncancel()
            err = ApiError(ErrorType.REQUEST_TIMEOUT, f"the request took longer than {limits.REQUEST_TIMEOUT_S:g} s")
            self.deliver(error_response(action, err, request_id))
            self.web.count(self.side, action, "request_timeout")
        except Exception:
            trace = uuid.uuid4().hex
            log.exception("request failed", extra={"trace_id": trace, "action": action, "request_id": request_id})
            err = ApiError(ErrorType.INTERNAL, f"internal error, trace id {trace}")
            self.deliver(error_response(action, err, request_id))
            self.web.count(self.side, action, "internal")

    async def login(self, payload: dict[str, Any], t0: float) -> tuple[dict[str, Any], Ctx] | None:
        side = self.side_cfg
        typed = m.decode(side.login_kind, payload)
        who = await side.authenticate(self.license, typed.token)
        user_id = who.user_id
        bus = self.web.node.bus
        if self.side == "customer" and bus.connection_count(user_id) >= limits.CONNECTIONS_PER_CUSTOMER:
            self._push_disconnected("too_many_connections", WSCloseCode.POLICY_VIOLATION)
            return None
        self.user_id, self.groups = user_id, who.groups
        bus.attach(self)
        self._arm_expiry(typed.token)
        ctx = Ctx(self.license, self.side, user_id, self.conn_id, t0, self.groups)
        answer = await side.login(ctx, typed)
        await side.on_login(ctx)
        return answer, ctx

    def _arm_expiry(self, token: str) -> None:
        tokens = self.web.node.tokens
        assert tokens is not None
        delay = tokens.expires_at(token) - time.time()
        self._expiry = asyncio.get_running_loop().call_later(
            max(delay, 0.0), self._push_disconnected, "access_token_expired", WSCloseCode.POLICY_VIOLATION
        )


async def handle(
    web_: Web, request: web.Request, side: Side, license: License, conn_class: type[RtmConnection] = RtmConnection
) -> web.WebSocketResponse:
    # aiohttp refuses a message of max_msg_size bytes or more; SPEC refuses only those over 64 KiB.
    # conn_class: the LiveChat-SDK dialect's connection (rtm_v35) subclasses RtmConnection.
    ws = web.WebSocketResponse(max_msg_size=limits.FRAME_MAX_BYTES + 1, autoping=False)
    await ws.prepare(request)
    conn = conn_class(web_, ws, side, license)
    web_.open_connection(conn)
    try:
        await conn.serve()
    finally:
        web_.close_connection(conn)
        await conn.cleanup()
    return ws
