"""Async load generator: many RTM WebSocket connections from one process.

A `Conn` owns one WebSocket and a reader task; responses are matched to requests by
`request_id` (parley answers in order, the echo server echoes the id back), everything else is
a push. Both closed-loop (await each answer) and open-loop (send on a clock, record on arrival)
traffic go through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

Frame = dict[str, Any]
PushHandler = Callable[["Conn", Frame, int], None]
ResponseHandler = Callable[["Conn", Frame, int, int], None]

TEXT = aiohttp.WSMsgType.TEXT
# Same length for every message (the timestamp is zero-padded) so frame sizes do not drift.
PAD = "benchmark message, about the size of a short chat line"


class SetupError(RuntimeError):
    """A token, connect or login step failed; the message names the request and the answer."""


class ConnClosed(RuntimeError):
    pass


def message_text(tag: str, t_ns: int) -> str:
    """`tag` + send time: lets the agent side compute send->push latency from the push alone."""
    return f"{tag}{t_ns:020d} {PAD}"


def parse_text_time(text: str) -> tuple[str, int] | None:
    if len(text) < 21 or not text[1:21].isdigit():
        return None
    return text[0], int(text[1:21])


def error_type(frame: Frame) -> str | None:
    """None for success; the error type otherwise. Echoed frames carry no `success` at all."""
    if frame.get("success") is False:
        err = (frame.get("payload") or {}).get("error") or {}
        return str(err.get("type", "unknown"))
    return None


class Conn:
    """One RTM connection with a background reader."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, on_push: PushHandler | None = None) -> None:
        self.ws = ws
        self.on_push = on_push
        self.on_response: ResponseHandler | None = None
        self.pending: dict[str, tuple[int, asyncio.Future[tuple[Frame, int]] | None]] = {}
        self.last_send = time.monotonic()
        self.chat_id = ""
        self.close_code: int | None = None
        self._ids = itertools.count(1)
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @property
    def closed(self) -> bool:
        return self._reader.done()

    async def _read(self) -> None:
        ws = self.ws
        try:
            while True:
                msg = await ws.receive()
                if msg.type is not TEXT:
                    if msg.type in (aiohttp.WSMsgType.PING, aiohttp.WSMsgType.PONG):
                        continue
                    break
                now = time.perf_counter_ns()
                frame = orjson.loads(msg.data)
                if not isinstance(frame, dict):
                    continue
                rid = frame.get("request_id")
                entry = self.pending.pop(rid, None) if isinstance(rid, str) else None
                if entry is None:
                    if self.on_push is not None:
                        self.on_push(self, frame, now)
                    continue
                t0, fut = entry
                if fut is not None:
                    if not fut.done():
                        fut.set_result((frame, now - t0))
                elif self.on_response is not None:
                    self.on_response(self, frame, t0, now)
        except (aiohttp.ClientError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.close_code = ws.close_code
            for _, fut in self.pending.values():
                if fut is not None and not fut.done():
                    fut.set_exception(ConnClosed(f"connection closed (code {ws.close_code})"))
            self.pending.clear()

    def _frame(self, action: str, payload: Frame | None, rid: str) -> bytes:
        frame: Frame = {"request_id": rid, "action": action}
        if payload is not None:
            frame["payload"] = payload
        return orjson.dumps(frame)

    async def request(self, action: str, payload: Frame | None = None, timeout: float = 15.0) -> Frame:
        """Send and await the answer (closed loop)."""
        rid = str(next(self._ids))
        fut: asyncio.Future[tuple[Frame, int]] = asyncio.get_running_loop().create_future()
        self.pending[rid] = (time.perf_counter_ns(), fut)
        self.last_send = time.monotonic()
        await self.ws.send_frame(self._frame(action, payload, rid), TEXT)
        frame, _ = await asyncio.wait_for(fut, timeout)
        return frame

    async def send_event(self, tag: str) -> tuple[Frame, int]:
        """Closed-loop send_event; returns (answer, round trip ns)."""
        rid = str(next(self._ids))
        fut: asyncio.Future[tuple[Frame, int]] = asyncio.get_running_loop().create_future()
        t0 = time.perf_counter_ns()
        self.pending[rid] = (t0, fut)
        self.last_send = time.monotonic()
        payload = {"chat_id": self.chat_id, "event": {"type": "message", "text": message_text(tag, t0)}}
        await self.ws.send_frame(self._frame("send_event", payload, rid), TEXT)
        return await asyncio.wait_for(fut, 15.0)

    async def send_event_nowait(self, tag: str) -> None:
        """Open-loop send_event: `on_response` gets the answer and its send time."""
        rid = str(next(self._ids))
        t0 = time.perf_counter_ns()
        self.pending[rid] = (t0, None)
        self.last_send = time.monotonic()
        payload = {"chat_id": self.chat_id, "event": {"type": "message", "text": message_text(tag, t0)}}
        await self.ws.send_frame(self._frame("send_event", payload, rid), TEXT)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 2.0)
        self._reader.cancel()
        with contextlib.suppress(BaseException):
            await self._reader


@dataclass
class Client:
    """HTTP + WebSocket sessions towards one server."""

    http_base: str
    ws_base: str
    license_id: int = 1
    http: aiohttp.ClientSession = field(init=False)
    wss: aiohttp.ClientSession = field(init=False)

    async def __aenter__(self) -> Client:
        # No cookie jar: parley's token response sets a cookie that would make every later
        # token request return the *same* customer (20 connections, 10 chats max).
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64), cookie_jar=aiohttp.DummyCookieJar())
        # WebSockets hold their connector slot while open: no limit for the socket session.
        self.wss = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), cookie_jar=aiohttp.DummyCookieJar())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.wss.close()
        await self.http.close()

    async def post_json(self, path: str, body: Frame) -> Frame:
        url = f"{self.http_base}{path}"
        async with self.http.post(url, data=orjson.dumps(body), headers={"Content-Type": "application/json"}) as r:
            raw = await r.read()
            if r.status != 200:
                raise SetupError(f"POST {path} {body} -> HTTP {r.status}: {raw[:300]!r}")
            out = orjson.loads(raw)
            assert isinstance(out, dict)
            return out

    async def connect(self, side: str, token: str, on_push: PushHandler | None = None) -> Conn:
        url = f"{self.ws_base}/v3.0/{side}/rtm/ws?license_id={self.license_id}"
        try:
            ws = await self.wss.ws_connect(url, decode_text=False, autoping=True, max_msg_size=1 << 22)
        except aiohttp.WSServerHandshakeError as e:
            raise SetupError(f"WebSocket upgrade GET {url} -> HTTP {e.status} {e.message}") from e
        except aiohttp.ClientError as e:
            raise SetupError(f"WebSocket connect {url} failed: {e!r}") from e
        conn = Conn(ws, on_push)
        try:
            answer = await conn.request("login", {"token": f"Bearer {token}"})
        except (TimeoutError, ConnClosed) as e:
            await conn.close()
            raise SetupError(f"{side} login on {url}: no answer ({e!r}, close code {conn.close_code})") from e
        if error_type(answer) is not None:
            await conn.close()
            raise SetupError(f"{side} login on {url} -> {answer}")
        return conn

    async def customer(self, on_push: PushHandler | None = None) -> Conn:
        """token + connect + login: the connect-storm unit of work."""
        tok = await self.post_json("/v3.0/customer/token", {"license_id": self.license_id})
        return await self.connect("customer", str(tok["access_token"]), on_push)

    async def agent(self, email: str, password: str, on_push: PushHandler | None = None) -> Conn:
        body = {"license_id": self.license_id, "email": email, "password": password}
        tok = await self.post_json("/v3.0/agent/token", body)
        return await self.connect("agent", str(tok["access_token"]), on_push)


async def bounded(count: int, concurrency: int, job: Callable[[int], Awaitable[Any]]) -> list[Any]:
    """Run job(0..count-1) with at most `concurrency` in flight; results or exceptions, in order."""
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> Any:
        async with sem:
            return await job(i)

    return await asyncio.gather(*(one(i) for i in range(count)), return_exceptions=True)


async def close_all(conns: list[Conn], concurrency: int = 500) -> None:
    await bounded(len(conns), concurrency, lambda i: conns[i].close())


@dataclass
class Tally:
    """Counters shared by the workers; read at window edges by the scenario."""

    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    samples: list[int] = field(default_factory=list)


async def closed_loop(conns: list[Conn], stop: asyncio.Event, tally: Tally, tag: str = "T") -> None:
    """Every connection sends send_event as soon as the previous one is answered."""

    async def worker(conn: Conn) -> None:
        while not stop.is_set():
            try:
                frame, _ = await conn.send_event(tag)
            except (TimeoutError, ConnClosed, ConnectionError) as e:
                tally.errors[type(e).__name__] += 1
                if conn.closed:
                    return
                continue
            err = error_type(frame)
            if err is None:
                tally.ok += 1
            else:
                tally.errors[f"send_event:{err}"] += 1

    await asyncio.gather(*(worker(c) for c in conns))


async def open_loop(conns: list[Conn], rate: float, stop: asyncio.Event, tally: Tally, tag: str = "L") -> None:
    """Offered load of `rate` sends/s in total, spread evenly over the connections and in time.

    Each connection sends on its own fixed schedule whether or not earlier sends were answered
    (open loop), so a slow server shows up as latency instead of as a lower offered rate.
    """
    n = len(conns)
    interval = n / rate

    async def pacer(i: int, conn: Conn) -> None:
        next_t = time.monotonic() + interval * i / n
        while not stop.is_set():
            delay = next_t - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if stop.is_set() or conn.closed:
                return
            try:
                await conn.send_event_nowait(tag)
            except (ConnectionError, aiohttp.ClientError) as e:
                tally.errors[type(e).__name__] += 1
                return
            next_t += interval

    await asyncio.gather(*(pacer(i, c) for i, c in enumerate(conns)))


async def keepalive(conns: list[Conn], stop: asyncio.Event, idle: float = 20.0) -> None:
    """Send the `ping` action on connections quiet for `idle` s: parley drops them after 60 s."""
    while not stop.is_set():
        now = time.monotonic()
        for c in list(conns):
            if not c.closed and now - c.last_send > idle:
                c.last_send = now
                with contextlib.suppress(Exception):
                    await c.ws.send_frame(b'{"request_id":"ka","action":"ping"}', TEXT)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 2.0)


def percentile(sorted_ns: list[int], q: float) -> float | None:
    """Nearest-rank percentile in milliseconds."""
    if not sorted_ns:
        return None
    k = min(len(sorted_ns) - 1, max(0, math.ceil(q / 100.0 * len(sorted_ns)) - 1))
    return sorted_ns[k] / 1e6
