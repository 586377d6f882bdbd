"""The benchmark's report: a markdown table of medians and min-max per workload and system,
djq/peer ratios and issue 8's targets; and the raw figures as JSON."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

SYSTEMS = ("djq", "celery", "pgqueuer")
TITLES = {"djq": "djq", "celery": "Celery/Redis", "pgqueuer": "pgqueuer"}

Rounds = list[dict[str, Any]]
Results = dict[str, dict[str, Rounds]]


def fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def values(rounds: Rounds | None, key: str = "value") -> list[float]:
    out = []
    for r in rounds or []:
        v = r.get(key)
        if isinstance(v, (int, float)) and not math.isnan(v) and "error" not in r:
            out.append(float(v))
    return out


def median(rounds: Rounds | None, key: str = "value") -> float | None:
    vs = values(rounds, key)
    return statistics.median(vs) if vs else None


def why_not(rounds: Rounds | None) -> str:
    """Why a system has no figure: its own n/a text, an error, or not run."""
    for r in rounds or []:
        if r.get("na"):
            return f"n/a ({r['na']})"
    for r in rounds or []:
        if r.get("skipped"):
            return f"not run ({r['skipped']})"
    for r in rounds or []:
        if r.get("error"):
            return "error (see notes)"
    return "not run"


def cell(rounds: Rounds | None, key: str = "value") -> str:
    vs = values(rounds, key)
    if not vs:
        return why_not(rounds)
    text = fmt(statistics.median(vs))
    if len(vs) > 1:
        text += f" ({fmt(min(vs))}–{fmt(max(vs))})"
    if any(r.get("complete") is False for r in rounds or []):
        text += " †"
    return text


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.2f}×"


def verdict(ok: bool | None) -> str:
    return "–" if ok is None else ("yes" if ok else "no")


def _cmp(a: float | None, b: float | None, test: Callable[[float, float], bool]) -> bool | None:
    return None if a is None or b is None else test(a, b)


def build_rows(results: Results) -> list[list[str]]:
    rows: list[list[str]] = []
    get = results.get

    def peer_cells(w: str, key: str = "value") -> list[str]:
        return [cell(get(w, {}).get(s), key) for s in ("celery", "pgqueuer")]

    def ratio_cells(djq_value: float | None, w: str, key: str = "value") -> list[str]:
        return [ratio(djq_value, median(get(w, {}).get(s), key)) for s in ("celery", "pgqueuer")]

    # W1
    w1 = median(get("W1", {}).get("djq"))
    c1 = median(get("W1", {}).get("celery"))
    rows.append(["W1 enqueue, `delay()` one by one", "tasks/s", cell(get("W1", {}).get("djq")),
                 *peer_cells("W1"), *ratio_cells(w1, "W1"), "≥ 1.5× Celery",
                 verdict(_cmp(w1, c1, lambda a, b: a >= 1.5 * b))])
    w1b = median(get("W1b", {}).get("djq"))
    rows.append(["W1b enqueue, one bulk `delay_many(...)` (Celery: a group)", "tasks/s",
                 cell(get("W1b", {}).get("djq")), *peer_cells("W1b"), *ratio_cells(w1b, "W1b"),
                 "≥ 100,000/s", verdict(None if w1b is None else w1b >= 100_000)])
    # W2
    w2 = median(get("W2", {}).get("djq"))
    c2 = median(get("W2", {}).get("celery"))
    p2 = median(get("W2", {}).get("pgqueuer"))
    met = None
    if w2 is not None and (c2 is not None or p2 is not None):
        met = (c2 is None or w2 >= 8 * c2) and (p2 is None or w2 >= 2 * p2)
    rows.append([("W2 drain, prefork `-c 2` (peers: Celery prefork `-c 2 -O fair`; "
                  "pgqueuer 2 processes)"), "jobs/s", cell(get("W2", {}).get("djq")),
                 *peer_cells("W2"), *ratio_cells(w2, "W2"), "≥ 2× pgqueuer, ≥ 8× Celery",
                 verdict(met)])
    # -c 20: as many tasks in flight as pgqueuer's two processes with batch size 10.
    w20 = median(get("W2", {}).get("djq-c20"))
    met20 = None
    if w20 is not None and (c2 is not None or p2 is not None):
        met20 = (c2 is None or w20 >= 8 * c2) and (p2 is None or w20 >= 2 * p2)
    rows.append([("W2 drain, djq prefork `-c 20` (as many tasks in flight as pgqueuer's 2 "
                  "processes × batch 10; peers as above)"), "jobs/s",
                 cell(get("W2", {}).get("djq-c20")), *peer_cells("W2"),
                 *ratio_cells(w20, "W2"), "≥ 2× pgqueuer, ≥ 8× Celery", verdict(met20)])
    w2t = median(get("W2", {}).get("djq-threads"))
    rows.append(["W2 drain, djq threads `-c 20` (peers as above)", "jobs/s",
                 cell(get("W2", {}).get("djq-threads")), *peer_cells("W2"),
                 *ratio_cells(w2t, "W2"), "–", "–"])
    # W3
    for key, target, limit in (("p50", "≤ 2 ms", 2.0), ("p95", "–", None),
                               ("p99", "≤ 5 ms", 5.0)):
        d = median(get("W3", {}).get("djq"), key)
        rows.append([f"W3 latency send→start, {key}", "ms (lower is better)",
                     cell(get("W3", {}).get("djq"), key), *peer_cells("W3", key),
                     *ratio_cells(d, "W3", key), target,
                     verdict(None if limit is None or d is None else d <= limit)])
    # W3 behind PgBouncer in transaction mode: with a direct alias for LISTEN, and polling.
    for key, label in (("djq-pgb-listen", "listen_database"), ("djq-pgb-poll", "poll-only")):
        for pct in ("p50", "p99"):
            d = median(get("W3P", {}).get(key), pct)
            target, limit = ("< 100 ms", 100.0) if pct == "p50" else ("–", None)
            rows.append([f"W3 through PgBouncer ({label}), {pct}", "ms (lower is better)",
                         cell(get("W3P", {}).get(key), pct), "–", "–", "–", "–", target,
                         verdict(None if limit is None or d is None else d < limit)])
    scrape = median(get("SCRAPE", {}).get("djq"))
    rows.append(["Metrics scrape (/djq/metrics' work) over W4a's rows (1,000,000 finished)",
                 "ms (lower is better)", cell(get("SCRAPE", {}).get("djq")), "–", "–", "–",
                 "–", "< 100 ms", verdict(None if scrape is None else scrape < 100)])
    # W4 and W6 run djq prefork -c 20 and compare with the W2 row of the same concurrency.
    for w, label in (("W4a", "W4a drain (prefork `-c 20`) with 1,000,000 finished rows in djq_task"),
                     ("W4b", "W4b drain (prefork `-c 20`) with 200,000 rows queued on a queue no worker reads")):
        d = median(get(w, {}).get("djq"))
        rows.append([label, "jobs/s", cell(get(w, {}).get("djq")), "–", "–", "–", "–",
                     f"≥ 0.9× W2 `-c 20` (is {ratio(d, w20)})",
                     verdict(_cmp(d, w20, lambda a, b: a >= 0.9 * b))])
    # W5
    w5 = median(get("W5", {}).get("djq"))
    c5 = median(get("W5", {}).get("celery"))
    rows.append(["W5 round trip, sequential `delay().get()`", "calls/s",
                 cell(get("W5", {}).get("djq")), *peer_cells("W5"), *ratio_cells(w5, "W5"),
                 "≥ Celery", verdict(_cmp(w5, c5, lambda a, b: a >= b))])
    # W6: djq at -c 2 and -c 20, each against its own W2 row; the peers against theirs.
    own = []
    for s in ("celery", "pgqueuer"):
        v6, v2 = median(get("W6", {}).get(s)), median(get("W2", {}).get(s))
        text = cell(get("W6", {}).get(s))
        if v6 is not None and v2 is not None:
            text += f", {ratio(v6, v2)} its W2"
        own.append(text)
    for key, base, conc in (("djq", w2, "2"), ("djq-c20", w20, "20")):
        w6 = median(get("W6", {}).get(key))
        d6 = cell(get("W6", {}).get(key))
        if w6 is not None:
            d6 += f", {ratio(w6, base)} W2 `-c {conc}`"
        rows.append([f"W6 drain with task events (`-E`, prefork `-c {conc}`)", "jobs/s", d6,
                     *own, *ratio_cells(w6, "W6"), f"≥ 0.85× W2 `-c {conc}`",
                     verdict(_cmp(w6, base, lambda a, b: a >= 0.85 * b))])
    # BEAT (issue 15): one round, djq only; no peer runs several schedulers.
    beat = get("BEAT", {}).get("djq")
    b = (beat or [{}])[0]
    if b and "idle_cpu" in b:
        n = b.get("schedules", 0)
        rows.append([f"BEAT one scheduler's CPU, {n:,} periodic tasks, none due",
                     "% of a core", f"{100 * b['idle_cpu']:.2f}", "–", "–", "–", "–", "–", "–"])
        rate = n / b["every"] if b.get("every") else 0
        rows.append([f"BEAT three schedulers' CPU firing {n:,} periodic tasks "
                     f"({rate:,.0f} fires/s)", "% of a core", f"{100 * b['load_cpu']:.1f}",
                     "–", "–", "–", "–", "–", "–"])
        for key in ("p50", "p99"):
            rows.append([f"BEAT fire delay (fire time → enqueued), {key}, three schedulers",
                         "ms (lower is better)", f"{b[key]:.1f}", "–", "–", "–", "–",
                         "–", "–"])
        rows.append(["BEAT fire times due and not enqueued, or enqueued twice", "count",
                     f"{b['missing'] + (b['tasks'] - b['fires'])}", "–", "–", "–", "–",
                     "0", verdict(b.get("complete"))])
    elif beat:
        rows.append(["BEAT periodic tasks", "–", why_not(beat), "–", "–", "–", "–", "–", "–"])
    # Memory
    mem = (get("MEM", {}).get("djq") or [{}])[0]
    points = mem.get("points") or []
    if len(points) == 2:
        a, b = points
        growth = b["total_kib"] / a["total_kib"] - 1 if a["total_kib"] else float("nan")
        text = (f"main {a['main_kib'] / 1024:.0f} → {b['main_kib'] / 1024:.0f} MiB; "
                f"all {a['processes']} processes {a['total_kib'] / 1024:.0f} → "
                f"{b['total_kib'] / 1024:.0f} MiB ({growth:+.1%})")
        label = (f"Memory: worker RSS (prefork `-c 20`) after {a['tasks']:,} vs "
                 f"{b['tasks']:,} tasks")
        ok: bool | None = abs(growth) <= 0.10
    else:
        text, label, ok = why_not([mem]) if mem else "not run", "Memory: worker RSS", None
        if points:
            p = points[0]
            text = f"{p['total_kib'] / 1024:.0f} MiB after {p['tasks']:,} tasks; second point not reached"
    rows.append([label, "RSS", text, "–", "–", "–", "–", "flat within 10% (10k vs 1M)",
                 verdict(ok)])
    return rows


HEADER = ["Workload", "Unit", "djq", "Celery/Redis", "pgqueuer", "djq/Celery", "djq/pgqueuer",
          "Target (issue 8)", "Met"]


def markdown(results: Results, meta: dict[str, Any]) -> str:
    lines = [
        f"# djq benchmark — {meta.get('date', '')}",
        "",
        (f"Machine: {meta.get('machine', '?')}. Command: `{meta.get('command', '')}`. "
         f"Rounds: {meta.get('rounds')}, size {meta.get('size'):,}; systems interleaved per "
         "round. Cells: median (min–max over the rounds run); † = some round incomplete "
         "(see notes)."),
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "|".join("---" for _ in HEADER) + "|",
    ]
    for row in build_rows(results):
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    notes = list(meta.get("notes", []))
    notes += incomplete_notes(results)
    if notes:
        lines.append("Notes:")
        lines.append("")
        lines += [f"- {n}" for n in notes]
        lines.append("")
    return "\n".join(lines)


def incomplete_notes(results: Results) -> list[str]:
    out = []
    for w, by_system in results.items():
        for s, rounds in by_system.items():
            for i, r in enumerate(rounds, 1):
                if r.get("error"):
                    out.append(f"{w} {s} round {i}: error: {r['error'][:300]}")
                elif r.get("complete") is False:
                    detail = {k: r[k] for k in ("n", "stored", "succeeded", "received", "seconds")
                              if k in r}
                    out.append(f"{w} {s} round {i} incomplete: "
                               + ", ".join(f"{k}={fmt(float(v))}" for k, v in detail.items()))
    for w in ("W1", "W5"):
        capped = []
        for s, rounds in results.get(w, {}).items():
            ns = [int(r["n"]) for r in rounds if r.get("capped") and "n" in r]
            if ns:
                span = f"{min(ns):,}" if min(ns) == max(ns) else f"{min(ns):,}–{max(ns):,}"
                capped.append(f"{TITLES.get(s, s)} {span}")
        if capped:
            out.append(f"{w} runs stopped by the time cap after: " + "; ".join(capped)
                       + " calls.")
    return out


def write(results: Results, meta: dict[str, Any], md_path: Path | None,
          json_path: Path | None) -> str:
    text = markdown(results, meta)
    if md_path is not None:
        md_path.parent.mkdir(parents=True, exist_ok=True)
        md_path.write_text(text)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps({"meta": meta, "results": results}, indent=1,
                                        default=str))
    return text
