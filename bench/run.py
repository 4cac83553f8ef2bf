"""One command for the whole benchmark: `python -m bench.run [--quick] [--postgres URL] [--json F]`.

Starts each server pinned to core 0, runs the load generator in this process pinned to core 1,
measures parley and the echo baseline back to back, prints a table and writes JSON. Exits
non-zero only when a scenario crashed; it never fails on speed.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvloop

from bench import report
from bench.proc import pin_self_to_loadgen_core, raise_nofile_limit
from bench.scenarios import floor_phase, load_phase, memory, storm
from bench.targets import Backend, Skip, Target, echo_target, parley_target

Result = dict[str, Any]


@dataclass
class Config:
    chats: int
    agents: int
    warmup_s: float
    window_s: float
    mem_levels: list[int]
    hold_s: float
    storm_customers: int
    storm_concurrency: int
    settle_s: float  # pause before reading RSS, so the server has finished with the new connections
    # Quick mode measures each echo scenario once and reuses it for every backend (time budget);
    # full mode re-measures it next to each backend, because timings drift during a run.
    reuse_echo: bool

    @property
    def max_chats(self) -> int:
        # Enough routing slots that no chat waits in the queue.
        return math.ceil(self.chats / self.agents) + 2


QUICK = Config(chats=20, agents=2, warmup_s=1.0, window_s=2.0, mem_levels=[100, 200], hold_s=0.5,
               storm_customers=200, storm_concurrency=50, settle_s=0.5, reuse_echo=True)  # fmt: skip
FULL = Config(chats=200, agents=8, warmup_s=3.0, window_s=15.0, mem_levels=[1000, 5000, 10000], hold_s=10.0,
              storm_customers=2000, storm_concurrency=100, settle_s=1.5, reuse_echo=False)  # fmt: skip


CLUSTER = "2 nodes"  # PostgreSQL + Redis


class Runner:
    def __init__(self, cfg: Config, workdir: Path, results: Result) -> None:
        self.cfg, self.workdir, self.results = cfg, workdir, results
        self.echo_cache: dict[str, Any] = {}

    def entry(self, scen: str, backend: str) -> Result:
        by = self.results["scenarios"].setdefault(scen, {})
        return by.setdefault(backend, {"status": "ok", "parley": {}, "echo": {}, "notes": []})

    async def guarded(self, scens: list[str], backend: str, fn: Callable[[], Awaitable[None]]) -> None:
        """Run one scenario; a Skip or a crash is recorded and the run goes on."""
        t0 = time.monotonic()
        print(f"== {'+'.join(scens)} [{backend}] ...", file=sys.stderr, flush=True)
        try:
            await fn()
        except Skip as e:
            for s in scens:
                self.entry(s, backend).update(status="skipped", reason=str(e))
        except Exception as e:
            tb = traceback.format_exc(limit=6)
            print(tb, file=sys.stderr)
            for s in scens:
                notes = "\n".join(getattr(e, "__notes__", []))
                reason = f"{type(e).__name__}: {e}\n{notes}".strip()
                self.entry(s, backend).update(status="error", reason=reason[:4000])
        for s in scens:
            ent = self.entry(s, backend)
            for side in ("parley", "echo"):
                other = (ent.get(side) or {}).get("other_cpu_util", 0.0)
                if other > 0.15:
                    ent["notes"].append(
                        f"{side}: other processes used {other:.2f} of a core during the window: noisy figures"
                    )
        print(f"   done in {time.monotonic() - t0:.1f}s", file=sys.stderr, flush=True)

    async def probe(self, b: Backend, scens: list[str], label: str | None = None) -> bool:
        """Start parley once on an optional backend; if it cannot start, mark `scens` skipped."""
        try:
            async with parley_target(b, self.workdir):
                return True
        except Skip as e:
            for s in scens:
                self.entry(s, label or b.name).update(status="skipped", reason=str(e))
            return False

    async def load(self, b: Backend) -> None:
        cfg = self.cfg
        thr, lat = self.entry("throughput", b.name), self.entry("latency", b.name)
        try:
            async with parley_target(b, self.workdir, cfg.agents, cfg.max_chats, rate_limit_off=True) as p:
                pt, pl, notes = await load_phase(p, cfg.chats, cfg.warmup_s, cfg.window_s, None)
        except Skip:
            raise
        except Exception:
            # Parley crashed: still run the echo, so the bench itself is exercised, then report.
            async with echo_target(self.workdir) as e:
                thr["echo"], lat["echo"], _ = await load_phase(e, cfg.chats, cfg.warmup_s, cfg.window_s, None)
            raise
        thr["parley"], lat["parley"] = pt, pl
        thr["notes"] += ["PARLEY_RATE_LIMIT=0: per-connection rate limit off for a) and b)", *notes]
        lat["notes"] += [n for n in notes if "push" in n or "agent" in n]
        # The echo gets the same chats and, for b), parley's offered rate.
        if not (cfg.reuse_echo and "load" in self.echo_cache):
            async with echo_target(self.workdir) as e:
                et, el, _ = await load_phase(e, cfg.chats, cfg.warmup_s, cfg.window_s, pl["offered_per_s"])
            self.echo_cache["load"] = (et, el)
        else:
            lat["notes"].append("quick mode: echo measured once, at the first backend's offered rate")
        et, el = self.echo_cache["load"]
        thr["echo"], lat["echo"] = et, el
        # How much of parley's cost the socket work of a send alone (a read, two writes) explains.
        if not (cfg.reuse_echo and "floor" in self.echo_cache):
            async with echo_target(self.workdir, floor=True) as f:
                self.echo_cache["floor"] = await floor_phase(f, cfg.chats, cfg.warmup_s, cfg.window_s)
        fl = self.echo_cache["floor"]
        if fl.get("cpu_us_per_send"):
            pt["floor_cpu_us_per_send"] = fl["cpu_us_per_send"]
            pt["cpu_vs_floor"] = pt["cpu_us_per_send"] / fl["cpu_us_per_send"]
        for side, fig in (("echo", et), ("parley", pt)):
            if fig.get("loadgen_cpu_util", 0) > 0.9:
                thr["notes"].append(
                    f"{side}: the load generator used a whole core, so its sends/s is a floor"
                    " (CPU µs per send is still exact)"
                )

    async def echo_once(self, key: str, fn: Callable[[Target], Awaitable[Result]]) -> Result:
        if self.cfg.reuse_echo and key in self.echo_cache:
            return dict(self.echo_cache[key])
        async with echo_target(self.workdir) as e:
            self.echo_cache[key] = await fn(e)
        return dict(self.echo_cache[key])

    async def memory(self, b: Backend) -> None:
        ent, cfg = self.entry("memory", b.name), self.cfg
        ent["echo"] = await self.echo_once("memory", lambda t: memory(t, cfg.mem_levels, cfg.hold_s, cfg.settle_s))
        async with parley_target(b, self.workdir) as p:
            ent["parley"] = await memory(p, cfg.mem_levels, cfg.hold_s, cfg.settle_s)

    async def storm(self, b: Backend) -> None:
        ent = self.entry("storm", b.name)
        n, c = self.cfg.storm_customers, self.cfg.storm_concurrency
        ent["echo"] = await self.echo_once("storm", lambda t: storm(t, n, c))
        async with parley_target(b, self.workdir) as p:
            ent["parley"] = await storm(p, n, c)

    async def cluster(self, b: Backend) -> None:
        """Customers on node 0, agents on node 1, one PostgreSQL + one Redis; vs one node."""
        cfg, ent = self.cfg, self.entry("cluster", CLUSTER)
        async with parley_target(b, self.workdir, cfg.agents, cfg.max_chats, rate_limit_off=True, nodes=2) as p:
            pt, pl, notes = await load_phase(p, cfg.chats, cfg.warmup_s, cfg.window_s, None)
        if not pl.get("pushes"):
            # Nothing crossed from node 0 to node 1: the broker is not there (yet), nothing to compare.
            raise Skip(f"no push reached an agent on node 1 ({'; '.join(notes)})")
        fig = {**pl, **pt}  # throughput figures win where names clash
        one = self.results["scenarios"].get("throughput", {}).get("postgres", {}).get("parley") or {}
        if one.get("sends_per_s"):
            fig["sends_per_s_vs_one_node"] = pt["sends_per_s"] / one["sends_per_s"]
        if one.get("cpu_us_per_send") and pt.get("cpu_us_per_send"):
            fig["cpu_vs_one_node"] = pt["cpu_us_per_send"] / one["cpu_us_per_send"]
        ent["parley"] = fig
        ent["echo"] = self.results["scenarios"].get("throughput", {}).get("postgres", {}).get("echo") or {}
        ent["notes"] += [*notes, "both nodes pinned to core 0; CPU is the sum of both nodes",
                         "echo column: the postgres run's echo baseline"]  # fmt: skip


async def run(args: argparse.Namespace) -> Result:
    cfg = QUICK if args.quick else FULL
    pinned = pin_self_to_loadgen_core()
    nofile = raise_nofile_limit(max(65536, max(cfg.mem_levels) + 1000))
    results: Result = {
        "mode": "quick" if args.quick else "full",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version(),
            "pinned": pinned, "server_core": 0 if pinned else None, "loadgen_core": 1 if pinned else None,
            "nofile": nofile,
        },
        "config": asdict(cfg),
        "scenarios": {},
        "notes": [],
    }  # fmt: skip
    if not pinned:
        results["notes"].append("not pinned: needs 2 cores and taskset; figures are less comparable")
    # Server and load generator each hold one fd per connection, each under its own limit.
    if nofile < max(cfg.mem_levels) + 500:
        results["notes"].append(f"open-files limit {nofile} is too low for {max(cfg.mem_levels)} connections")
    backends = [Backend("sqlite")]
    if args.postgres:
        backends.append(Backend("postgres", args.postgres, args.pg_db))
    with tempfile.TemporaryDirectory(prefix="parley-bench-") as tmp:
        r = Runner(cfg, Path(tmp), results)
        for b in backends:
            if b.name != "sqlite" and not await r.probe(b, ["throughput", "latency", "memory", "storm"]):
                continue
            await r.guarded(["throughput", "latency"], b.name, lambda b=b: r.load(b))
            await r.guarded(["memory"], b.name, lambda b=b: r.memory(b))
            await r.guarded(["storm"], b.name, lambda b=b: r.storm(b))
        if args.postgres and args.redis:
            cb = Backend("postgres", args.postgres, args.pg_db, broker_url=args.redis)
            if await r.probe(cb, ["cluster"], CLUSTER):
                await r.guarded(["cluster"], CLUSTER, lambda: r.cluster(cb))
        else:
            results["scenarios"]["cluster"] = {
                CLUSTER: {"status": "skipped", "reason": "needs --postgres URL and --redis URL"}
            }
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["budget"] = report.budget(results) if not args.quick else []
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small and short (<= 60 s): checks the bench runs")
    ap.add_argument("--postgres", metavar="URL", help="also run on PostgreSQL (server URL, trust auth)")
    ap.add_argument("--pg-db", default="parley_bench", help="database the bench drops and re-creates")
    ap.add_argument("--redis", metavar="URL", help="with --postgres: also run the two-node cluster")
    ap.add_argument("--json", metavar="FILE", type=Path, help="write the results as JSON")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    results = uvloop.run(run(args))
    results["elapsed_s"] = round(time.monotonic() - t0, 1)
    print(f"parley benchmark, {results['mode']} mode, {results['elapsed_s']} s "
          f"(server on core 0, load generator on core 1; ratios are to the echo baseline of this run)")  # fmt: skip
    print(report.render_table(results))
    for n in results["notes"]:
        print(f"note: {n}")
    print()
    print(report.render_budget(results["budget"], judged=not args.quick))
    if args.json:
        report.write_json(results, args.json)
        print(f"\nJSON written to {args.json}")
    crashed = [
        f"{s}[{b}]" for s, by in results["scenarios"].items() for b, e in by.items() if e.get("status") == "error"
    ]
    if crashed:
        print(f"\nFAILED: scenario(s) crashed: {', '.join(crashed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
