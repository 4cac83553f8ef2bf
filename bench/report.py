"""Turn the results into a table a person can read, the budget verdicts, and JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

Result = dict[str, Any]

# (key in parley's figures, label, key in the echo's figures to divide by, or None for no ratio).
# Push latency has no echo counterpart, so it is divided by the echo's plain round trip.
ROWS: dict[str, list[tuple[str, str, str | None]]] = {
    "throughput": [
        ("chats", "chats (customer+agent each)", None),
        ("sends_per_s", "acknowledged sends/s", "sends_per_s"),
        ("cpu_us_per_send", "server CPU µs/send", "cpu_us_per_send"),
        ("db_cpu_us_per_send", "PostgreSQL CPU µs/send", "cpu_us_per_send"),
        ("floor_cpu_us_per_send", "transport floor CPU µs/send", "cpu_us_per_send"),
        ("cpu_vs_floor", "… parley as a ratio to the floor", None),
        ("server_cpu_util", "server CPU use (1.0 = a core)", "server_cpu_util"),
        ("loadgen_cpu_util", "load generator CPU use", "loadgen_cpu_util"),
        ("other_cpu_util", "CPU used by other processes", "other_cpu_util"),
    ],
    "latency": [
        ("offered_per_s", "offered sends/s (½ saturation)", "offered_per_s"),
        ("achieved_per_s", "answered sends/s", "achieved_per_s"),
        ("rtt_p50_ms", "send→response p50 ms", "rtt_p50_ms"),
        ("rtt_p99_ms", "send→response p99 ms", "rtt_p99_ms"),
        ("rtt_p99_9_ms", "send→response p99.9 ms", "rtt_p99_9_ms"),
        ("push_p50_ms", "send→agent push p50 ms", "rtt_p50_ms"),
        ("push_p99_ms", "send→agent push p99 ms", "rtt_p99_ms"),
        ("push_p99_9_ms", "send→agent push p99.9 ms", "rtt_p99_9_ms"),
        ("cpu_us_per_send", "server CPU µs/send", "cpu_us_per_send"),
    ],
    "memory": [("rss_base_kb", "RSS before, KiB", "rss_base_kb")],  # + per-level rows, see _memory_rows
    "storm": [
        ("customers", "customers (token+connect+login)", None),
        ("customers_per_s", "customers/s", "customers_per_s"),
        ("cpu_us_per_customer", "server CPU µs/customer", "cpu_us_per_customer"),
        ("db_cpu_us_per_customer", "PostgreSQL CPU µs/customer", "cpu_us_per_customer"),
    ],
    "cluster": [
        ("sends_per_s", "acknowledged sends/s (2 nodes)", "sends_per_s"),
        ("sends_per_s_vs_one_node", "… as a ratio to one node", None),
        ("cpu_us_per_send", "CPU µs/send, both nodes", "cpu_us_per_send"),
        ("cpu_vs_one_node", "… as a ratio to one node", None),
        ("push_p50_ms", "send→push p50 ms (cross-node)", "rtt_p50_ms"),
        ("push_p99_ms", "send→push p99 ms (cross-node)", "rtt_p99_ms"),
    ],
}


def _memory_rows(parley: Result, echo: Result) -> list[tuple[str, str, str | None]]:
    rows = list(ROWS["memory"])
    levels = sorted({int(k.rsplit("_", 1)[1]) for k in {**parley, **echo} if k.startswith("kb_per_conn_at_")})
    for lv in levels:
        rows.append((f"kb_per_conn_at_{lv}", f"KiB per idle connection @ {lv:,}", f"kb_per_conn_at_{lv}"))
    for lv in levels:
        rows.append((f"open_s_to_{lv}", f"seconds to open up to {lv:,}", f"open_s_to_{lv}"))
    held = [k for k in {**parley, **echo} if k.startswith("held_at_")]
    rows += [(k, f"connections still answering @ {k[8:]}", k) for k in held]
    return rows


def fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        if abs(v) >= 100:
            return f"{v:.1f}"
        if abs(v) >= 1:
            return f"{v:.2f}"
        return f"{v:.3f}"
    return str(v)


def table_rows(results: Result) -> list[list[str]]:
    rows: list[list[str]] = []
    for scen, by_backend in results["scenarios"].items():
        for backend, entry in by_backend.items():
            status = entry.get("status")
            parley, echo = entry.get("parley") or {}, entry.get("echo") or {}
            if status != "ok" and not parley:
                reason = str(entry.get("reason", "")).strip().splitlines() or [""]
                rows.append([scen, backend, f"{status.upper()}: {reason[0][:160]}", "", "", ""])
                if not echo:
                    continue
            spec = _memory_rows(parley, echo) if scen == "memory" else ROWS.get(scen, [])
            for key, label, ekey in spec:
                pv, ev = parley.get(key), echo.get(ekey) if ekey else None
                if pv is None and (ev is None or key != ekey):
                    continue  # an echo figure alone is shown only under its own name
                ratio = pv / ev if isinstance(pv, int | float) and isinstance(ev, int | float) and ev else None
                rows.append([scen, backend, label, fmt(pv), fmt(ev), f"{ratio:.2f}x" if ratio else ""])
            for k in ("errors", "unanswered", "pushes_missing"):
                for side, fig in (("parley", parley), ("echo", echo)):
                    if fig.get(k):
                        rows.append([scen, backend, f"{side} {k}: {fig[k]}", "", "", ""])
            # Notes are cut at 200 characters here; the JSON keeps them whole.
            rows.extend([scen, backend, f"note: {n}"[:200], "", "", ""] for n in entry.get("notes", []))
    return rows


def render_table(results: Result) -> str:
    head = ["scenario", "backend", "figure", "parley", "echo", "parley/echo"]
    rows = table_rows(results)
    # Long notes span the row instead of widening the figure column for everyone.
    widths = [max(len(r[i]) for r in [head, *rows] if i != 2 or len(r[i]) <= 40) for i in range(6)]
    widths[2] = max(widths[2], 30)

    def line(r: list[str]) -> str:
        if len(r[2]) > widths[2] and not any(r[3:]):
            return f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]}"
        return (
            f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  "
            f"{r[3]:>{widths[3]}}  {r[4]:>{widths[4]}}  {r[5]:>{widths[5]}}"
        )

    sep = "-" * (sum(widths) + 10)
    out, prev = [line(head), sep], None
    for r in rows:
        if prev is not None and (r[0], r[1]) != prev:
            out.append("")
        prev = (r[0], r[1])
        out.append(line(r))
    return "\n".join(out)


def _fig(results: Result, scen: str, backend: str) -> tuple[Result, Result]:
    entry = results["scenarios"].get(scen, {}).get(backend, {})
    return entry.get("parley") or {}, entry.get("echo") or {}


def budget(results: Result) -> list[Result]:
    """The issue's four budget lines, each met / not met / not judged, per backend."""
    out: list[Result] = []
    backends = [b for b in results["scenarios"].get("throughput", {})]
    for b in backends:
        p, e = _fig(results, "throughput", b)
        pv, ev, fv = p.get("cpu_us_per_send"), e.get("cpu_us_per_send"), p.get("floor_cpu_us_per_send")
        ratio = pv / ev if pv and ev else None
        floor = f"; the transport floor alone is {fv / ev:.2f}x" if ratio and fv else ""
        out.append({
            "line": f"[{b}] durable send_event CPU per message <= 2.0x echo's (one core)",
            "value": f"{ratio:.2f}x ({pv:.0f} vs {ev:.0f} µs){floor}" if ratio else "n/a",
            "met": (ratio <= 2.0) if ratio else None,
        })  # fmt: skip
        lp, _ = _fig(results, "latency", b)
        p99 = lp.get("push_p99_ms")
        out.append({
            "line": f"[{b}] p99 send->push <= 5 ms at half saturation",
            "value": f"{p99:.2f} ms" if p99 is not None else "n/a (push leg not measured)",
            "met": (p99 <= 5.0) if p99 is not None else None,
        })  # fmt: skip
        mp, _ = _fig(results, "memory", b)
        per = {k: v for k, v in mp.items() if k.startswith("kb_per_conn_at_") and int(k[15:]) in (1000, 5000)}
        out.append({
            "line": f"[{b}] <= 20 KiB RSS per idle connection (at 1,000 and 5,000)",
            "value": ", ".join(f"{v:.1f} KiB @ {int(k[15:]):,}" for k, v in per.items()) or "n/a",
            "met": all(v <= 20.0 for v in per.values()) if len(per) == 2 else None,
        })  # fmt: skip
        held = mp.get("held_at_10000")
        out.append({
            "line": f"[{b}] 10,000 concurrent connections held by one process",
            "value": f"{held:,} of 10,000 answered a ping" if held is not None else "n/a",
            "met": held == 10000 if held is not None else None,
        })  # fmt: skip
    return out


def render_budget(lines: list[Result], judged: bool) -> str:
    if not judged:
        return "budget: not judged in quick mode (run without --quick)"
    width = max((len(x["line"]) for x in lines), default=10)
    verdict = {True: "budget met", False: "budget NOT met", None: "not judged"}
    return "\n".join(["budget:"] + [f"  {x['line']:<{width}}  {verdict[x['met']]:<14}  {x['value']}" for x in lines])


def write_json(results: Result, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
