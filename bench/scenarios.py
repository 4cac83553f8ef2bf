"""The measured scenarios. Each takes a running Target and returns a flat dict of figures.

Server CPU is read from /proc/PID/stat at the edges of the measured window (after a warm-up),
so set-up work (tokens, logins, start_chat) is never counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.loadgen import (
    Client,
    Conn,
    Frame,
    Tally,
    bounded,
    close_all,
    closed_loop,
    error_type,
    keepalive,
    open_loop,
    parse_text_time,
    percentile,
)
from bench.proc import cpu_seconds, machine_busy_seconds, rss_kb, self_cpu_seconds
from bench.targets import Skip, Target

Result = dict[str, Any]


def _errors(results: list[Any]) -> tuple[list[Conn], Counter[str], list[str]]:
    ok = [r for r in results if isinstance(r, Conn)]
    errs: Counter[str] = Counter()
    examples: list[str] = []
    for r in results:
        if isinstance(r, BaseException):
            errs[type(r).__name__] += 1
            if len(examples) < 3:
                examples.append(str(r)[:400])
    return ok, errs, examples


@dataclass
class Window:
    """CPU and wall-clock readings at the two edges of a measured window."""

    target: Target
    t0: float = 0.0
    cpu0: float = 0.0
    extra0: float = 0.0
    self0: float = 0.0
    busy0: float = 0.0
    t1: float = 0.0
    cpu1: float = 0.0
    extra1: float = 0.0
    self1: float = 0.0
    busy1: float = 0.0

    def _read(self) -> tuple[float, float, float, float, float]:
        extra = self.target.extra_cpu() if self.target.extra_cpu else 0.0
        cpu = sum(cpu_seconds(p) for p in self.target.pids)
        return time.monotonic(), cpu, extra, self_cpu_seconds(), machine_busy_seconds()

    def open(self) -> None:
        self.t0, self.cpu0, self.extra0, self.self0, self.busy0 = self._read()

    def close(self) -> None:
        self.t1, self.cpu1, self.extra1, self.self1, self.busy1 = self._read()

    @property
    def seconds(self) -> float:
        return self.t1 - self.t0

    def figures(self, units: int, unit: str) -> Result:
        out: Result = {
            "window_s": round(self.seconds, 3),
            f"cpu_us_per_{unit}": (self.cpu1 - self.cpu0) / units * 1e6 if units else None,
            "server_cpu_util": (self.cpu1 - self.cpu0) / self.seconds,
            "loadgen_cpu_util": (self.self1 - self.self0) / self.seconds,
        }
        # Whatever else ran on the machine meanwhile (e.g. someone's test suite): a noise warning.
        ours = (self.cpu1 - self.cpu0) + (self.self1 - self.self0) + (self.extra1 - self.extra0)
        out["other_cpu_util"] = max(0.0, (self.busy1 - self.busy0 - ours) / self.seconds)
        if self.target.extra_cpu:
            out[f"db_cpu_us_per_{unit}"] = (self.extra1 - self.extra0) / units * 1e6 if units else None
        return out


@dataclass
class ChatRig:
    """Customers each with an active chat, and the agents the chats were routed to."""

    customers: list[Conn]
    agents: list[Conn]
    notes: list[str] = field(default_factory=list)
    routed: int = 0
    push_ns: list[int] = field(default_factory=list)
    push_window: tuple[int, int] = (0, 0)
    push_count: Counter[str] = field(default_factory=Counter)

    def on_agent_push(self, _conn: Conn, frame: Frame, now: int) -> None:
        action = frame.get("action")
        self.push_count[str(action)] += 1
        if action == "incoming_chat_thread":
            self.routed += 1
        elif action == "incoming_event":
            text = ((frame.get("payload") or {}).get("event") or {}).get("text")
            parsed = parse_text_time(text) if isinstance(text, str) else None
            if parsed and parsed[0] == "L" and self.push_window[0] <= parsed[1] < self.push_window[1]:
                self.push_ns.append(now - parsed[1])


async def build_rig(cl: Client, target: Target, chats: int, agent_cl: Client | None = None) -> ChatRig:
    """Agents log in first (routing needs them connected), then each customer starts a chat.

    `agent_cl` points the agents at another node (cluster scenario); default: the same server.
    """
    rig = ChatRig([], [])
    acl = agent_cl or cl
    if target.kind == "parley" and target.agents:
        res = await bounded(len(target.agents), 8, lambda i: acl.agent(*target.agents[i], on_push=rig.on_agent_push))
        rig.agents, errs, ex = _errors(res)
        if errs:
            rig.notes.append(f"agent side unavailable ({dict(errs)}): {ex[0]}")
    res = await bounded(chats, 50, lambda i: cl.customer())
    rig.customers, errs, ex = _errors(res)
    if errs:
        raise RuntimeError(f"{sum(errs.values())}/{chats} customers failed to log in: {ex}")

    async def start(i: int) -> None:
        conn = rig.customers[i]
        answer = await conn.request("start_chat", {})
        err = error_type(answer)
        if err is not None:
            raise RuntimeError(f"start_chat -> {answer}")
        chat = (answer.get("payload") or {}).get("chat") or {}
        conn.chat_id = str(chat.get("id") or f"echo-chat-{i}")

    res = await bounded(len(rig.customers), 50, start)
    failed = [r for r in res if isinstance(r, BaseException)]
    if failed:
        raise RuntimeError(f"{len(failed)}/{chats} start_chat failed: {str(failed[0])[:400]}")
    if rig.agents:
        t0 = time.monotonic()
        while rig.routed < chats and time.monotonic() < t0 + 10:
            if rig.routed == 0 and time.monotonic() > t0 + 3:
                break  # routing reaches no agent at all: waiting longer will not help
            await asyncio.sleep(0.05)
        if rig.routed < chats:
            rig.notes.append(f"only {rig.routed}/{chats} chats reached an agent")
    return rig


async def throughput(target: Target, rig: ChatRig, warmup: float, duration: float) -> Result:
    """Closed loop on every chat: acknowledged send_event per second at saturation."""
    tally, stop, win = Tally(), asyncio.Event(), Window(target)
    task = asyncio.create_task(closed_loop(rig.customers, stop, tally))
    try:
        await asyncio.sleep(warmup)
        win.open()
        ok0 = tally.ok
        await asyncio.sleep(duration)
        win.close()
        acked = tally.ok - ok0
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    if acked == 0:
        raise RuntimeError(f"no send_event was answered in {win.seconds:.1f}s: {dict(tally.errors)}")
    out: Result = {"chats": len(rig.customers), "agents": len(rig.agents), "sends": acked}
    out["sends_per_s"] = acked / win.seconds
    out.update(win.figures(acked, "send"))
    if tally.errors:
        out["errors"] = dict(tally.errors)
    return out


async def latency(target: Target, rig: ChatRig, rate: float, warmup: float, duration: float) -> Result:
    """Open loop at `rate` sends/s: send->response and send->agent push percentiles."""
    tally, stop, win = Tally(), asyncio.Event(), Window(target)
    rtt: list[int] = []
    bounds = [1 << 62, 1 << 62]  # nothing is recorded until the window opens

    def on_response(_c: Conn, frame: Frame, t0: int, now: int) -> None:
        if bounds[0] <= t0 < bounds[1]:
            if error_type(frame) is None:
                rtt.append(now - t0)
            else:
                tally.errors[f"send_event:{error_type(frame)}"] += 1

    for c in rig.customers:
        c.on_response = on_response
    rig.push_ns.clear()
    rig.push_window = (1 << 62, 1 << 62)
    task = asyncio.create_task(open_loop(rig.customers, rate, stop, tally))
    try:
        await asyncio.sleep(warmup)
        win.open()
        bounds[0] = time.perf_counter_ns()
        rig.push_window = (bounds[0], 1 << 62)
        await asyncio.sleep(duration)
        bounds[1] = time.perf_counter_ns()
        rig.push_window = (bounds[0], bounds[1])
        win.close()
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    # Let in-flight answers and pushes arrive before reading the samples.
    deadline = time.monotonic() + 5
    while any(c.pending for c in rig.customers) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    lost = sum(len(c.pending) for c in rig.customers)
    if not rtt:
        raise RuntimeError(f"no send_event was answered at {rate:.0f}/s: {dict(tally.errors)}, {lost} unanswered")
    rtt.sort()
    out: Result = {"offered_per_s": rate, "achieved_per_s": len(rtt) / win.seconds, "answered": len(rtt)}
    for q, name in ((50, "p50"), (99, "p99"), (99.9, "p99_9")):
        out[f"rtt_{name}_ms"] = percentile(rtt, q)
    if rig.agents:
        push = sorted(rig.push_ns)
        out["pushes"] = len(push)
        if len(push) < len(rtt):
            out["pushes_missing"] = len(rtt) - len(push)  # answered sends whose push never came
        for q, name in ((50, "p50"), (99, "p99"), (99.9, "p99_9")):
            out[f"push_{name}_ms"] = percentile(push, q)
    out.update(win.figures(len(rtt), "send"))
    if lost:
        out["unanswered"] = lost
    if tally.errors:
        out["errors"] = dict(tally.errors)
    return out


async def floor_phase(target: Target, chats: int, warmup: float, duration: float) -> Result:
    """a) alone, for the transport floor: the same chats in a closed loop, no latency phase."""
    async with Client(target.server.http, target.server.ws, target.license_id) as cl:
        rig = await build_rig(cl, target, chats)
        try:
            return await throughput(target, rig, warmup, duration)
        finally:
            await close_all(rig.customers)


async def load_phase(
    target: Target, chats: int, warmup: float, duration: float, rate: float | None
) -> tuple[Result, Result, list[str]]:
    """Scenarios a) and b) on one set of chats; b) runs at `rate` or half of a)'s saturation."""
    # In a cluster the agents sit on the second node, so every push crosses the broker.
    other = target.extra_servers[0] if target.extra_servers else target.server
    async with (
        Client(target.server.http, target.server.ws, target.license_id) as cl,
        Client(other.http, other.ws, target.license_id) as acl,
    ):
        rig = await build_rig(cl, target, chats, acl)
        if target.extra_servers and rig.routed == 0:
            await close_all(rig.customers + rig.agents)
            raise Skip(f"no chat on node 0 reached an agent on node 1 ({'; '.join(rig.notes)})")
        # Agents only listen; without this parley would drop them as idle after 60 s.
        stop_ka = asyncio.Event()
        ka = asyncio.create_task(keepalive(rig.agents, stop_ka))
        try:
            thr = await throughput(target, rig, warmup, duration)
            lat_rate = rate if rate is not None else thr["sends_per_s"] / 2
            lat = await latency(target, rig, lat_rate, warmup, duration)
        finally:
            stop_ka.set()
            await ka
            await close_all(rig.customers + rig.agents)
    notes = list(rig.notes)
    if target.kind == "parley" and not rig.agents:
        notes.append("push leg skipped: no agent connected")
    return thr, lat, notes


async def memory(target: Target, levels: list[int], hold_s: float, settle: float = 1.5) -> Result:
    """RSS per idle logged-in customer at each level; at the top level, check all are still held."""
    out: Result = {}
    async with Client(target.server.http, target.server.ws, target.license_id) as cl:
        # Warm the code paths (and the allocator) once so the baseline is not a cold process.
        warm, _, _ = _errors(await bounded(20, 20, lambda i: cl.customer()))
        await close_all(warm)
        await asyncio.sleep(settle)
        base = rss_kb(target.server.pid)
        out["rss_base_kb"] = base
        conns: list[Conn] = []
        stop = asyncio.Event()
        ka = asyncio.create_task(keepalive(conns, stop))
        try:
            for level in levels:
                t0 = time.monotonic()
                res = await bounded(level - len(conns), 200, lambda i: cl.customer())
                new, errs, ex = _errors(res)
                conns.extend(new)
                if errs:
                    raise RuntimeError(f"{sum(errs.values())} of {level} connections failed: {ex}")
                opened_s = time.monotonic() - t0
                await asyncio.sleep(settle)
                rss = rss_kb(target.server.pid)
                out[f"rss_kb_at_{level}"] = rss
                out[f"kb_per_conn_at_{level}"] = (rss - base) / level
                out[f"open_s_to_{level}"] = round(opened_s, 2)
            top = levels[-1]
            await asyncio.sleep(hold_s)

            async def ping(i: int) -> bool:
                answer = await conns[i].request("ping", None, timeout=30)
                return error_type(answer) is None

            pings = await bounded(len(conns), 500, ping)
            alive = sum(1 for p in pings if p is True)
            out[f"held_at_{top}"] = alive
            out["held_all"] = alive == top
        finally:
            stop.set()
            with contextlib.suppress(BaseException):
                await ka
            await close_all(conns)
    return out


async def storm(target: Target, count: int, concurrency: int) -> Result:
    """Customers per second through token + WebSocket connect + login, `concurrency` at a time."""
    async with Client(target.server.http, target.server.ws, target.license_id) as cl:
        warm, _, _ = _errors(await bounded(10, 10, lambda i: cl.customer()))
        await close_all(warm)
        win = Window(target)
        win.open()
        res = await bounded(count, concurrency, lambda i: cl.customer())
        win.close()
        conns, errs, ex = _errors(res)
        if len(conns) < count / 2:
            await close_all(conns)
            raise RuntimeError(f"only {len(conns)}/{count} customers logged in: {dict(errs)} {ex}")
        try:
            out: Result = {"customers": count, "concurrency": concurrency, "logged_in": len(conns)}
            out["customers_per_s"] = len(conns) / win.seconds
            out.update(win.figures(len(conns), "customer"))
            if errs:
                out["errors"] = dict(errs)
                out["error_examples"] = ex
        finally:
            await close_all(conns)
    return out
