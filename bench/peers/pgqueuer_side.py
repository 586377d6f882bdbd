"""pgqueuer's side of the benchmark: ``python -m bench.peers.pgqueuer_side '<json spec>'``,
from bench/.venv-peers. pgqueuer 1.6 on the same PostgreSQL server as djq, in a database
of its own (``spec["dsn"]``), with its default (durable) tables and its asyncpg driver."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg

from bench.common import (
    STAMP_ENV,
    Group,
    StampCollector,
    latency_result,
    run_side,
    wait_until,
)

TABLES = "pgqueuer, pgqueuer_log, pgqueuer_statistics"


async def _queries(dsn: str) -> Any:
    """An asyncpg connection (pgqueuer's primary driver) and pgqueuer's Queries on it."""
    import asyncpg
    from pgqueuer import AsyncpgDriver, Queries

    conn = await asyncpg.connect(dsn)
    return conn, Queries(AsyncpgDriver(conn))


def _sql(dsn: str, query: str) -> Any:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(query)
        return cur.fetchone() if cur.description else None


def reset(dsn: str) -> None:
    _sql(dsn, f"TRUNCATE {TABLES}")


class Workers:
    """Two worker processes (one QueueManager each): asyncio runs on one core per process."""

    def __init__(self, spec: dict[str, Any], collector: StampCollector) -> None:
        self.spec = spec
        self.collector = collector
        self.groups: list[Group] = []

    def start(self, processes: int = 2) -> None:
        env = dict(os.environ)
        env[STAMP_ENV] = self.collector.addr
        for _ in range(processes):
            log = (Path(self.spec["log_dir"])
                   / f"pgqueuer-{self.spec['label']}-{len(self.groups)}.log")
            argv = [sys.executable, "-m", "bench.peers.pgqueuer_worker", self.spec["dsn"],
                    str(self.spec.get("batch_size", 10))]
            self.groups.append(Group(argv, env=env, log_path=log))

    def wait_ready(self, timeout: float = 60.0) -> float:
        got = self.collector.wait("ready", len(self.groups), timeout)
        if len(got) < len(self.groups):
            tails = "\n".join(g.output() for g in self.groups)
            raise RuntimeError(f"pgqueuer workers not ready after {timeout}s:\n{tails}")
        return max(got.values())

    def stop(self) -> None:
        for group in self.groups:
            group.stop(grace=10)


async def install(spec: dict[str, Any], collector: StampCollector) -> dict[str, Any]:
    import pgqueuer

    conn, q = await _queries(spec["dsn"])
    try:
        if not await q.schema_is_installed():
            await q.install()
    finally:
        await conn.close()
    reset(spec["dsn"])
    return {"version": pgqueuer.__version__}


async def w1(spec: dict[str, Any], collector: StampCollector) -> dict[str, Any]:
    n, cap = int(spec["n"]), float(spec.get("time_cap", 60))
    reset(spec["dsn"])
    conn, q = await _queries(spec["dsn"])
    try:
        await q.enqueue("noop", b"-1")  # connect and warm up outside the measurement
        reset(spec["dsn"])
        t0 = time.perf_counter()
        sent = 0
        for i in range(n):
            await q.enqueue("noop", str(i).encode())
            sent += 1
            if sent % 500 == 0 and time.perf_counter() - t0 > cap:
                break
        elapsed = time.perf_counter() - t0
    finally:
        await conn.close()
    stored = _sql(spec["dsn"], "SELECT count(*) FROM pgqueuer")[0]
    return {"value": sent / elapsed, "unit": "tasks/s", "n": sent, "stored": stored,
            "complete": stored == sent, "capped": sent < n, "seconds": elapsed}


async def _batch_enqueue(q: Any, name: str, n: int) -> None:
    await q.enqueue([name] * n, [str(i).encode() for i in range(n)], [0] * n)


async def w1b(spec: dict[str, Any], collector: StampCollector) -> dict[str, Any]:
    n = int(spec["n"])
    reset(spec["dsn"])
    conn, q = await _queries(spec["dsn"])
    try:
        await q.enqueue("noop", b"-1")
        reset(spec["dsn"])
        t0 = time.perf_counter()
        await _batch_enqueue(q, "noop", n)
        elapsed = time.perf_counter() - t0
    finally:
        await conn.close()
    stored = _sql(spec["dsn"], "SELECT count(*) FROM pgqueuer")[0]
    return {"value": n / elapsed, "unit": "tasks/s", "n": n, "stored": stored,
            "complete": stored == n, "seconds": elapsed}


async def w2(spec: dict[str, Any], collector: StampCollector) -> dict[str, Any]:
    n = int(spec["n"])
    dsn = spec["dsn"]
    reset(dsn)
    conn, q = await _queries(dsn)
    try:
        t0 = time.perf_counter()
        await _batch_enqueue(q, "noop", n)
        setup_s = time.perf_counter() - t0
    finally:
        await conn.close()
    workers = Workers(spec, collector)
    timeout = float(spec.get("timeout", 120))
    try:
        with psycopg.connect(dsn, autocommit=True) as poll:
            spawned = time.time()
            workers.start()
            ready = workers.wait_ready()
            # A job leaves the queue table in the statement that writes its log row.
            finished = bool(wait_until(
                lambda: not poll.execute("SELECT EXISTS (SELECT 1 FROM pgqueuer)").fetchone()[0],
                timeout, interval=0.01))
            done_at = time.time()
    finally:
        workers.stop()
    ok = _sql(dsn, "SELECT count(*) FROM pgqueuer_log WHERE status = 'successful'")[0]
    return {
        "value": ok / (done_at - ready), "unit": "jobs/s", "n": n, "succeeded": ok,
        "complete": finished and ok == n, "seconds": done_at - ready,
        "startup_s": ready - spawned, "enqueue_setup_s": setup_s,
    }


async def w3(spec: dict[str, Any], collector: StampCollector) -> dict[str, Any]:
    n, gap = int(spec.get("n", 300)), float(spec.get("gap", 0.01))
    reset(spec["dsn"])
    workers = Workers(spec, collector)
    sent: dict[str, float] = {}
    conn, q = await _queries(spec["dsn"])
    try:
        workers.start()
        workers.wait_ready()
        await asyncio.sleep(0.5)  # idle: past start-up work, waiting for work
        await q.enqueue("stamp", b"warmup")
        collector.wait("start", 1, 10)
        collector.clear()
        t0 = time.perf_counter()
        for i in range(n):
            delay = t0 + i * gap - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sent[str(i)] = time.time()
            await q.enqueue("stamp", str(i).encode())
        started = collector.wait("start", n, 15)
    finally:
        await conn.close()
        workers.stop()
    return latency_result(sent, started)


async def w5(spec: dict[str, Any], collector: StampCollector) -> dict[str, Any]:
    """Round trips with pgqueuer's CompletionWatcher (LISTEN/NOTIFY on its table changes).
    Its debounce is cut from 50 ms to 1 ms so the watcher itself is not the limit; the
    worker writes a finished job's log row in a buffer flushed every ~0.1 s or every
    ``batch_size`` jobs, which bounds a lone round trip."""
    import asyncpg
    from pgqueuer import AsyncpgDriver
    from pgqueuer.core.completion import CompletionWatcher

    n, cap = int(spec.get("n", 500)), float(spec.get("time_cap", 10))
    reset(spec["dsn"])
    workers = Workers(spec, collector)
    conn, q = await _queries(spec["dsn"])
    wconn = await asyncpg.connect(spec["dsn"])
    try:
        workers.start()
        workers.wait_ready()
        async with CompletionWatcher(AsyncpgDriver(wconn), queries=q,
                                     debounce=timedelta(milliseconds=1)) as watcher:

            async def round_trip() -> None:
                (job_id,) = await q.enqueue("noop", None)
                await asyncio.wait_for(watcher.wait_for(job_id), 10)

            await round_trip()
            t0 = time.perf_counter()
            done = 0
            while done < n and time.perf_counter() - t0 < cap:
                await round_trip()
                done += 1
            elapsed = time.perf_counter() - t0
    finally:
        await wconn.close()
        await conn.close()
        workers.stop()
    return {"value": done / elapsed, "unit": "calls/s", "n": done, "complete": True, "capped": done < n,
            "seconds": elapsed}


async def w6(spec: dict[str, Any], collector: StampCollector) -> dict[str, Any]:
    return {"na": "pgqueuer has no task-event stream (no -E)"}


WORKLOADS = {"install": install, "w1": w1, "w1b": w1b, "w2": w2, "w3": w3, "w5": w5, "w6": w6}


def main(spec: dict[str, Any]) -> dict[str, Any]:
    collector = StampCollector()
    try:
        result: dict[str, Any] = asyncio.run(WORKLOADS[spec["workload"]](spec, collector))
        return result
    finally:
        collector.close()


if __name__ == "__main__":
    run_side(main)
