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
from bench.scenarios import load_phase, memory, storm
from bench.targets import Backend, Skip, echo_target, parley_target

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

    @property
    def max_chats(self) -> int:
        # Enough routing slots that no chat waits in the queue.
        return math.ceil(self.chats / self.agents) + 2


QUICK = Config(chats=20, agents=2, warmup_s=1.0, window_s=2.5, mem_levels=[100, 200], hold_s=0.5,
               storm_customers=200, storm_concurrency=50)  # fmt: skip
FULL = Config(chats=200, agents=8, warmup_s=3.0, window_s=15.0, mem_levels=[1000, 5000, 10000], hold_s=10.0,
              storm_customers=2000, storm_concurrency=100)  # fmt: skip


class Runner:
    def __init__(self, cfg: Config, workdir: Path, results: Result) -> None:
        self.cfg, self.workdir, self.results = cfg, workdir, results

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
                self.entry(s, backend).update(status="error", reason=f"{type(e).__name__}: {e}"[:2000])
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
        async with echo_target(self.workdir) as e:
            et, el, _ = await load_phase(e, cfg.chats, cfg.warmup_s, cfg.window_s, pl["offered_per_s"])
        thr["echo"], lat["echo"] = et, el
        for side, fig in (("echo", et), ("parley", pt)):
            if fig.get("loadgen_cpu_util", 0) > 0.9:
                thr["notes"].append(
                    f"{side}: the load generator used a whole core, so its sends/s is a floor"
                    " (CPU µs per send is still exact)"
                )

    async def memory(self, b: Backend) -> None:
        ent = self.entry("memory", b.name)
        async with echo_target(self.workdir) as e:
            ent["echo"] = await memory(e, self.cfg.mem_levels, self.cfg.hold_s)
        async with parley_target(b, self.workdir) as p:
            ent["parley"] = await memory(p, self.cfg.mem_levels, self.cfg.hold_s)

    async def storm(self, b: Backend) -> None:
        ent = self.entry("storm", b.name)
        n, c = self.cfg.storm_customers, self.cfg.storm_concurrency
        async with echo_target(self.workdir) as e:
            ent["echo"] = await storm(e, n, c)
        async with parley_target(b, self.workdir) as p:
            ent["parley"] = await storm(p, n, c)

    async def cluster(self, b: Backend) -> None:
        """Customers on node 0, agents on node 1, one PostgreSQL + one Redis; vs one node."""
        cfg, ent = self.cfg, self.entry("cluster", b.name)
        async with parley_target(b, self.workdir, cfg.agents, cfg.max_chats, rate_limit_off=True, nodes=2) as p:
            pt, pl, notes = await load_phase(p, cfg.chats, cfg.warmup_s, cfg.window_s, None)
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
    nofile = raise_nofile_limit(max(65536, 2 * max(cfg.mem_levels) + 1000))
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
    if nofile < 2 * max(cfg.mem_levels) + 100:
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
            if await r.probe(cb, ["cluster"], "postgres+redis"):
                await r.guarded(["cluster"], "postgres+redis", lambda: r.cluster(cb))
        else:
            results["scenarios"]["cluster"] = {
                "2 nodes": {"status": "skipped", "reason": "needs --postgres URL and --redis URL"}
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
