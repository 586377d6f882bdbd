"""Celery's side of the benchmark: ``python -m bench.peers.celery_side '<json spec>'``,
from bench/.venv-peers. Celery 5 on the local Redis, broker and result backend both, in a
Redis database of the bench's own (flushed before each workload)."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import (
    STAMP_ENV,
    Group,
    StampCollector,
    latency_result,
    paced_stamps,
    run_side,
    timed_calls,
    wait_until,
)


def _redis() -> Any:
    import redis

    from bench.peers.celery_app import REDIS_URL

    return redis.Redis.from_url(REDIS_URL)


class Workers:
    def __init__(self, spec: dict[str, Any], collector: StampCollector) -> None:
        self.spec = spec
        self.collector = collector
        self.groups: list[Group] = []

    def start(self, events: bool = False) -> Group:
        env = dict(os.environ)
        env[STAMP_ENV] = self.collector.addr
        name = f"bench{len(self.groups) + 1}@{socket.gethostname()}"
        argv = [sys.executable, "-m", "celery", "-A", "bench.peers.celery_app", "worker",
                "--pool", "prefork", "-c", "2", "-O", "fair", "-l", "WARNING", "-Q", "bench",
                "-n", name]
        if events:
            argv.append("-E")
        log = Path(self.spec["log_dir"]) / f"celery-{self.spec['label']}-{len(self.groups)}.log"
        group = Group(argv, env=env, log_path=log)
        self.groups.append(group)
        return group

    def wait_ready(self, timeout: float = 60.0) -> float:
        got = self.collector.wait("ready", 1, timeout)
        if not got:
            tails = "\n".join(g.output() for g in self.groups)
            raise RuntimeError(f"celery worker not ready after {timeout}s:\n{tails}")
        return max(got.values())

    def stop(self) -> None:
        for group in self.groups:
            group.stop(grace=10)


def _result_keys(ids: list[str]) -> list[str]:
    from bench.peers.celery_app import app

    return [app.backend.get_key_for_task(i).decode() for i in ids]


def w1(spec: dict[str, Any], collector: StampCollector) -> dict[str, Any]:
    from bench.peers.celery_app import QUEUE, noop

    n, cap = int(spec["n"]), float(spec.get("time_cap", 60))
    r = _redis()
    r.flushdb()
    noop.delay(-1)  # connect and warm up outside the measurement
    r.flushdb()
    sent, elapsed = timed_calls(noop.delay, n, cap, check_every=500)
    stored = int(r.llen(QUEUE))
    r.flushdb()
    return {"value": sent / elapsed, "unit": "tasks/s", "n": sent, "stored": stored,
            "complete": stored == sent, "capped": sent < n, "seconds": elapsed}


def w1b(spec: dict[str, Any], collector: StampCollector) -> dict[str, Any]:
    from celery import group

    from bench.peers.celery_app import QUEUE, noop

    n = int(spec["n"])
    r = _redis()
    r.flushdb()
    noop.delay(-1)
    r.flushdb()
    t0 = time.perf_counter()
    group(noop.s(i) for i in range(n)).apply_async()
    elapsed = time.perf_counter() - t0
    stored = int(r.llen(QUEUE))
    r.flushdb()
    return {"value": n / elapsed, "unit": "tasks/s", "n": n, "stored": stored,
            "complete": stored == n, "seconds": elapsed}


def _drain(spec: dict[str, Any], collector: StampCollector, events: bool) -> dict[str, Any]:
    from bench.peers.celery_app import QUEUE, noop

    n = int(spec["n"])
    r = _redis()
    r.flushdb()
    t0 = time.perf_counter()
    # The first drain sends its n messages with delay() and keeps a DUMP of the queue; the
    # next ones RESTORE it (the same messages and task ids; results are flushed between
    # drains), which saves ~10 s of set-up per drain.
    template = Path(spec["template"]) if spec.get("template") else None
    if template is not None and template.exists():
        saved = json.loads(template.read_text())
        ids = saved["ids"]
        r.restore(QUEUE, 0, bytes.fromhex(saved["dump"]), replace=True)
    else:
        ids = [noop.delay(i).id for i in range(n)]
        if template is not None:
            template.write_text(json.dumps({"ids": ids, "dump": r.dump(QUEUE).hex()}))
    if int(r.llen(QUEUE)) != n:
        raise RuntimeError(f"expected {n} queued messages, found {r.llen(QUEUE)}")
    setup_s = time.perf_counter() - t0
    keys = _result_keys(ids)
    workers = Workers(spec, collector)
    timeout = float(spec.get("timeout", 120))
    try:
        spawned = time.time()
        workers.start(events=events)
        ready = workers.wait_ready()
        # LLEN is O(1): wait on it until the queue is empty, then on the result keys.
        wait_until(lambda: r.llen(QUEUE) == 0, timeout, interval=0.01)
        stored = 0

        def all_stored() -> bool:
            nonlocal stored
            stored = sum(int(r.exists(*keys[i:i + 5000])) for i in range(0, n, 5000))
            return stored >= n

        finished = bool(wait_until(all_stored, max(1.0, timeout - (time.time() - ready)),
                                   interval=0.01))
        done_at = time.time()
    finally:
        workers.stop()
        r.flushdb()
    return {
        "value": stored / (done_at - ready), "unit": "jobs/s", "n": n, "succeeded": stored,
        "complete": finished, "seconds": done_at - ready, "startup_s": ready - spawned,
        "enqueue_setup_s": setup_s,
    }


def w2(spec: dict[str, Any], collector: StampCollector) -> dict[str, Any]:
    return _drain(spec, collector, events=False)


def w6(spec: dict[str, Any], collector: StampCollector) -> dict[str, Any]:
    return _drain(spec, collector, events=True)


def w3(spec: dict[str, Any], collector: StampCollector) -> dict[str, Any]:
    from bench.peers.celery_app import stamp

    n, gap = int(spec.get("n", 300)), float(spec.get("gap", 0.01))
    r = _redis()
    r.flushdb()
    workers = Workers(spec, collector)
    try:
        workers.start()
        workers.wait_ready()
        sent, started = paced_stamps(n, gap, stamp.delay, collector)
    finally:
        workers.stop()
        r.flushdb()
    return latency_result(sent, started)


def w5(spec: dict[str, Any], collector: StampCollector) -> dict[str, Any]:
    from bench.peers.celery_app import noop

    n, cap = int(spec.get("n", 500)), float(spec.get("time_cap", 10))
    r = _redis()
    r.flushdb()
    workers = Workers(spec, collector)
    try:
        workers.start()
        workers.wait_ready()
        noop.delay().get(timeout=10)
        done, elapsed = timed_calls(lambda i: noop.delay().get(timeout=10), n, cap)
    finally:
        workers.stop()
        r.flushdb()
    return {"value": done / elapsed, "unit": "calls/s", "n": done, "complete": True, "capped": done < n,
            "seconds": elapsed}


def check(spec: dict[str, Any], collector: StampCollector) -> dict[str, Any]:
    import celery

    r = _redis()
    r.ping()
    r.flushdb()
    return {"version": celery.__version__}


WORKLOADS = {"w1": w1, "w1b": w1b, "w2": w2, "w3": w3, "w5": w5, "w6": w6, "check": check}


def main(spec: dict[str, Any]) -> dict[str, Any]:
    collector = StampCollector()
    try:
        return WORKLOADS[spec["workload"]](spec, collector)
    finally:
        collector.close()


if __name__ == "__main__":
    run_side(main)
