"""Test helpers: a real `parley serve` process and a small RTM client that sorts pushes from answers."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
PARLEY = [sys.executable, "-m", "parley"]


class Server:
    """`parley serve --port 0` on its own data dir; read the port from the `listening on` line."""

    def __init__(self, data_dir: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.extra = list(extra)
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[str] | None = None
        self.base = ""
        self.stdout_lines: list[str] = []

    def start(self, timeout: float = 20.0) -> Server:
        self.proc = subprocess.Popen(
            [*PARLEY, "serve", "--port", "0", "--data-dir", str(self.data_dir), *self.extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=self.env,
            cwd=ROOT,
        )
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.stdout_lines.append(line.rstrip("\n"))
            found = re.search(r"listening on (https?://\S+)", line)
            if found:
                self.base = found.group(1)
                return self
        raise RuntimeError(f"parley serve exited before listening: {self.stdout_lines}")

    @property
    def ws_base(self) -> str:
        return "ws" + self.base[len("http") :]  # http -> ws, https -> wss

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        if self.proc.stdout:
            self.proc.stdout.close()
        return code

    def kill9(self) -> None:
        self.stop(signal.SIGKILL)


def admin(data_dir: Path, *args: str) -> Any:
    """Run `parley admin …` and answer its parsed JSON (raises on a non-zero exit)."""
    done = subprocess.run(
        [*PARLEY, "admin", *args, "--data-dir", str(data_dir)], capture_output=True, text=True, cwd=ROOT, check=False
    )
    if done.returncode != 0:
        raise AdminError(done.returncode, done.stderr.strip())
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return lines[0] if len(lines) == 1 and args[0] != "export" else lines


class AdminError(Exception):
    def __init__(self, code: int, stderr: str) -> None:
        super().__init__(stderr)
        self.code = code
        self.stderr = stderr


async def customer_token(http: aiohttp.ClientSession, base: str, license_id: int = 1) -> dict[str, Any]:
    async with http.post(f"{base}/v3.0/customer/token", json={"license_id": license_id}) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def agent_token(http: aiohttp.ClientSession, base: str, email: str, password: str, license_id: int = 1) -> dict:
    body = {"license_id": license_id, "email": email, "password": password}
    async with http.post(f"{base}/v3.0/agent/token", json=body) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def web_call(
    http: aiohttp.ClientSession, base: str, token: str, action: str, payload: Any = None, *, side: str = "customer",
    license_id: int = 1,
) -> tuple[int, Any]:
    url = f"{base}/v3.0/{side}/action/{action}?license_id={license_id}"
    headers = {"Authorization": f"Bearer {token}"}
    async with http.post(url, json=payload if payload is not None else {}, headers=headers) as r:
        return r.status, await r.json()


class Rtm:
    """One RTM connection: `call` waits for the answer to its request_id; pushes queue up apart."""

    _ids = itertools.count(1)

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.pushes: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.answers: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.unmatched: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.closed = asyncio.get_running_loop().create_future()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def connect(
        cls, http: aiohttp.ClientSession, ws_base: str, side: str = "customer", license_id: int = 1, **kw: Any
    ) -> Rtm:
        ws = await http.ws_connect(f"{ws_base}/v3.0/{side}/rtm/ws?license_id={license_id}", **kw)
        return cls(ws)

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            frame = json.loads(msg.data)
            if frame.get("type") == "push":
                self.pushes.put_nowait(frame)
            elif frame.get("request_id") in self.answers:
                self.answers.pop(frame["request_id"]).set_result(frame)
            else:
                self.unmatched.put_nowait(frame)
        if not self.closed.done():
            self.closed.set_result(self.ws.close_code)

    async def request(self, action: str, payload: Any = None, timeout: float = 10.0) -> dict[str, Any]:
        """The whole response frame."""
        request_id = f"r{next(self._ids)}"
        fut = asyncio.get_running_loop().create_future()
        self.answers[request_id] = fut
        frame: dict[str, Any] = {"request_id": request_id, "action": action}
        if payload is not None:
            frame["payload"] = payload
        await self.ws.send_str(json.dumps(frame))
        return await asyncio.wait_for(fut, timeout)

    async def call(self, action: str, payload: Any = None) -> dict[str, Any]:
        """The success payload; fails the test on an error answer."""
        frame = await self.request(action, payload)
        assert frame["success"] is True, frame
        return frame["payload"]

    async def error(self, action: str, payload: Any = None) -> dict[str, Any]:
        """The error object of an answer that must fail."""
        frame = await self.request(action, payload)
        assert frame["success"] is False, frame
        return frame["payload"]["error"]

    async def login(self, token: str, **fields: Any) -> dict[str, Any]:
        return await self.call("login", {"token": f"Bearer {token}", **fields})

    async def push(self, action: str | None = None, timeout: float = 5.0) -> dict[str, Any]:
        """The next push (of that action, skipping others) payload."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            frame = await asyncio.wait_for(self.pushes.get(), max(left, 0.001))
            if action is None or frame["action"] == action:
                return frame

    async def no_push(self, within: float = 0.3) -> None:
        with contextlib.suppress(TimeoutError):
            frame = await asyncio.wait_for(self.pushes.get(), within)
            raise AssertionError(f"unexpected push {frame}")

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
