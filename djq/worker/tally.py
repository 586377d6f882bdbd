"""What one worker has finished, per task name: counts by final state, retries, and a
runtime histogram. Kept in memory by the worker's main loop and written by its
maintenance thread with each heartbeat (``djq_worker.counters``), so counting costs the
hot path no statement; ``djq.metrics`` sums the worker rows, and the counters of worker
rows that are pruned are folded into ``djq_retired_counters`` first, so sums never go
backwards."""

from __future__ import annotations

import threading
import time
from typing import Any

from .. import broker, states

#: Upper bounds (seconds) of the runtime histogram's buckets; the last one is +Inf.
BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                              10.0, 30.0, 60.0, 300.0)


class Tally:
    """Thread-safe: the main loop adds, the maintenance thread reads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started: dict[str, float] = {}  # task id -> monotonic hand-over time
        # name -> {"states": {state: n}, "retried": n, "buckets": [n per bucket + Inf],
        #          "sum": seconds, "count": n}
        self._tasks: dict[str, dict[str, Any]] = {}

    def started(self, task_id: str) -> None:
        self._started[task_id] = time.monotonic()

    def finished(self, name: str, outcome: broker.Outcome) -> None:
        began = self._started.pop(str(outcome.id), None)
        runtime = None if began is None else time.monotonic() - began
        with self._lock:
            entry = self._tasks.get(name)
            if entry is None:
                entry = self._tasks[name] = {"states": {}, "retried": 0,
                                             "buckets": [0] * (len(BUCKETS) + 1),
                                             "sum": 0.0, "count": 0}
            if outcome.status == broker.DONE:
                entry["states"][outcome.state] = entry["states"].get(outcome.state, 0) + 1
            elif outcome.state == states.RETRY:
                entry["retried"] += 1
            if runtime is not None:
                index = next((i for i, bound in enumerate(BUCKETS) if runtime <= bound),
                             len(BUCKETS))
                entry["buckets"][index] += 1
                entry["sum"] += runtime
                entry["count"] += 1

    def forget(self, task_id: str) -> None:
        self._started.pop(task_id, None)

    def to_json(self) -> dict[str, Any]:
        """A copy to store: ``{"tasks": {name: entry}}``."""
        with self._lock:
            return {"tasks": {name: {"states": dict(e["states"]), "retried": e["retried"],
                                     "buckets": list(e["buckets"]), "sum": e["sum"],
                                     "count": e["count"]}
                              for name, e in self._tasks.items()}}


def merge(*tallies: dict[str, Any] | None) -> dict[str, Any]:
    """The sum of several :meth:`Tally.to_json` values."""
    out: dict[str, dict[str, Any]] = {}
    for tally in tallies:
        for name, e in ((tally or {}).get("tasks") or {}).items():
            into = out.setdefault(name, {"states": {}, "retried": 0,
                                         "buckets": [0] * (len(BUCKETS) + 1),
                                         "sum": 0.0, "count": 0})
            for state, n in (e.get("states") or {}).items():
                into["states"][state] = into["states"].get(state, 0) + int(n)
            into["retried"] += int(e.get("retried") or 0)
            buckets = list(e.get("buckets") or [])
            if len(buckets) == len(into["buckets"]):
                into["buckets"] = [a + int(b) for a, b in zip(into["buckets"], buckets,
                                                              strict=True)]
                into["sum"] += float(e.get("sum") or 0.0)
                into["count"] += int(e.get("count") or 0)
    return {"tasks": out}
