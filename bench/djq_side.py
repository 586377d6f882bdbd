"""djq's side of the benchmark: ``python -m bench.djq_side '<json spec>'``.

Runs one workload against the ``djq_bench`` database (Django settings ``bench.settings``)
and prints one ``BENCH-RESULT {...}`` line. Workers are real ``manage.py djq_worker``
processes, each in a process group of its own that is killed when the workload ends.
"""

from __future__ import annotations

import os
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import (
    ROOT,
    STAMP_ENV,
    Group,
    StampCollector,
    latency_result,
    paced_stamps,
    run_side,
    timed_calls,
    tree_rss_kib,
)

QUEUE = "default"          # the queue the bench's tasks go to and the workers consume
PARKED_QUEUE = "parked"    # W4b's 200,000 queued tasks: no worker consumes it
HISTORY_QUEUE = "history"  # W4a's 1,000,000 finished tasks


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django

    django.setup()


def _cursor() -> Any:
    from django.db import connection

    return connection.cursor()


def _status() -> Any:
    from djq import broker

    return broker


def reset(keep_preload: bool = False) -> None:
    """Empty djq's tables (or, with W4's preloaded rows, delete only the bench queue's).
    Periodic tasks go too: BEAT's 10,000 schedules would otherwise keep firing into the
    queue of every later workload, through the schedulers its workers run."""
    with _cursor() as cur:
        if keep_preload:
            cur.execute("DELETE FROM djq_task WHERE queue = %s", [QUEUE])
            cur.execute("DELETE FROM djq_worker")
        else:
            cur.execute("TRUNCATE djq_task, djq_worker")
        cur.execute("TRUNCATE djq_periodic_run, djq_periodic_task, djq_interval_schedule, "
                    "djq_crontab_schedule, djq_clocked_schedule")
    if keep_preload:
        vacuum()


def vacuum() -> None:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE djq_task")


def bulk_enqueue(n: int, start: int = 0, queue: str = QUEUE) -> float:
    """Put ``n`` no-op tasks on ``queue`` as fast as possible, as the rows
    ``delay()`` writes, with one INSERT ... SELECT and one NOTIFY; returns the seconds it
    took. (Set-up only, so that it costs the same whatever djq's enqueue speed: W1 and
    W1b measure that.)"""
    from bench.app.tasks import noop
    from djq import broker

    t0 = time.perf_counter()
    with _cursor() as cur:
        cur.execute(
            f"""
            WITH ins AS (
                INSERT INTO djq_task (id, name, state, status, queue, priority, args, kwargs,
                    options, retries, run_at, root_id, date_created)
                SELECT u, %s, 'PENDING', {broker.WAITING}, %s, 0, '[' || i || ']', '{{}}',
                    '{{}}', 0, now(), u, now()
                FROM (SELECT gen_random_uuid() AS u, i FROM generate_series(%s, %s) i) g
                RETURNING 1
            )
            SELECT count(*), pg_notify(%s, %s) FROM ins
            """,
            [noop.name, queue, start, start + n - 1, broker.ENQUEUE_CHANNEL, queue],
        )
    return time.perf_counter() - t0


def preload_history(n: int) -> float:
    """W4a: ``n`` finished (SUCCESS) rows, done within the last hour (so not pruned)."""
    from djq import broker

    t0 = time.perf_counter()
    with _cursor() as cur:
        cur.execute(
            f"""
            INSERT INTO djq_task (id, name, state, status, queue, priority, args, kwargs,
                options, result, retries, run_at, root_id, worker, date_created,
                date_claimed, date_started, date_done)
            SELECT u, 'bench.app.tasks.noop', 'SUCCESS', {broker.DONE}, %s, 0,
                '[' || i || ']', '{{}}', '{{}}', 'null', 0, t, u, 'bench-history@host', t, t,
                t, t
            FROM (SELECT gen_random_uuid() AS u, i,
                         now() - interval '50 minutes' + i * interval '1 millisecond' AS t
                  FROM generate_series(1, %s) i) g
            """,
            [HISTORY_QUEUE, n],
        )
    vacuum()
    return time.perf_counter() - t0


def preload_parked(n: int) -> float:
    """W4b: ``n`` waiting rows on a queue no bench worker consumes."""
    t0 = time.perf_counter()
    bulk_enqueue(n, start=1, queue=PARKED_QUEUE)
    vacuum()
    return time.perf_counter() - t0


def pending() -> bool:
    """True while a task of the bench queue is waiting, claimed or running."""
    broker = _status()
    with _cursor() as cur:
        cur.execute(
            f"SELECT EXISTS (SELECT 1 FROM djq_task WHERE status = {broker.WAITING} "
            "AND queue = %s) OR EXISTS (SELECT 1 FROM djq_task WHERE status IN "
            f"({broker.CLAIMED}, {broker.STARTED}) AND queue = %s)",
            [QUEUE, QUEUE],
        )
        return bool(cur.fetchone()[0])


def waiting() -> int:
    broker = _status()
    with _cursor() as cur:
        cur.execute(f"SELECT count(*) FROM djq_task WHERE status = {broker.WAITING} "
                    "AND queue = %s", [QUEUE])
        return int(cur.fetchone()[0])


def wait_drained(group: Group, timeout: float, stall: float = 30.0) -> str | None:
    """Poll every 10 ms until no task of the bench queue is unfinished. Returns None when
    drained, else why it gave up: the timeout, the worker's exit, or ``stall`` seconds
    without a single task leaving the queue (a broken worker should not eat the budget)."""
    start = last_change = time.monotonic()
    last_waiting, next_check = -1, 0.0
    while pending():
        now = time.monotonic()
        if now >= next_check:
            count = waiting()
            if count != last_waiting:
                last_waiting, last_change = count, now
            next_check = now + 1.0
        if now - start > timeout:
            return f"not drained after {timeout:.0f}s"
        if now - last_change > stall:
            return f"no progress for {stall:.0f}s"
        if not group.alive():
            return f"worker exited with {group.proc.returncode}"
        time.sleep(0.01)
    return None


def succeeded() -> int:
    with _cursor() as cur:
        cur.execute("SELECT count(*) FROM djq_task WHERE queue = %s AND state = 'SUCCESS'",
                    [QUEUE])
        return int(cur.fetchone()[0])


class Workers:
    """``manage.py djq_worker`` processes for one workload."""

    def __init__(self, spec: dict[str, Any], collector: StampCollector) -> None:
        self.spec = spec
        self.collector = collector
        self.groups: list[Group] = []

    def start(self, pool: str = "prefork", concurrency: int = 2, events: bool = False,
              loglevel: str = "WARNING") -> Group:
        env = dict(os.environ)
        env[STAMP_ENV] = self.collector.addr
        env["DJANGO_SETTINGS_MODULE"] = "bench.settings"
        env["PYTHONUNBUFFERED"] = "1"
        name = f"bench{len(self.groups) + 1}-{pool}@{socket.gethostname()}"
        argv = [sys.executable, str(ROOT / "manage.py"), "djq_worker", "-P", pool,
                "-c", str(concurrency), "-l", loglevel, "-n", name]
        if events:
            argv.append("-E")
        log = Path(self.spec["log_dir"]) / f"djq-{self.spec['label']}-{len(self.groups)}.log"
        group = Group(argv, env=env, log_path=log)
        self.groups.append(group)
        return group

    def wait_ready(self, count: int = 1, timeout: float = 60.0) -> float:
        """The time (``time.time()``) the last of ``count`` workers said it was ready."""
        got = self.collector.wait("ready", count, timeout)
        if len(got) < count:
            tails = "\n".join(g.output() for g in self.groups)
            raise RuntimeError(f"djq worker not ready after {timeout}s:\n{tails}")
        return max(got.values())

    def stop(self) -> None:
        for group in self.groups:
            group.stop()


def _drain(spec: dict[str, Any], collector: StampCollector, pool: str, concurrency: int,
           events: bool = False, keep_preload: bool = False) -> dict[str, Any]:
    n = int(spec["n"])
    reset(keep_preload)
    setup_s = bulk_enqueue(n)
    workers = Workers(spec, collector)
    try:
        spawned = time.time()
        group = workers.start(pool, concurrency, events=events)
        ready = workers.wait_ready()
        stalled = wait_drained(group, float(spec.get("timeout", 120)))
        finished = stalled is None
        done_at = time.time()
        rss = tree_rss_kib(group.pid)
    finally:
        workers.stop()
    ok = succeeded()
    if stalled is not None:
        return {"error": f"{stalled}; {ok} of {n} succeeded; worker log ends: "
                         + group.output(600).replace("\n", " | "), "n": n, "succeeded": ok}
    return {
        "value": ok / (done_at - ready), "unit": "jobs/s", "n": n, "succeeded": ok,
        "complete": finished and ok == n, "seconds": done_at - ready,
        "startup_s": ready - spawned, "enqueue_setup_s": setup_s, "rss": rss,
    }


def w1(spec: dict[str, Any], collector: StampCollector) -> dict[str, Any]:
    from bench.app.tasks import noop

    n, cap = int(spec["n"]), float(spec.get("time_cap", 60))
    reset()
    noop.delay(-1)  # connect and warm up outside the measurement
    reset()
    sent, elapsed = timed_calls(noop.delay, n, cap, check_every=500)
    with _cursor() as cur:
        cur.execute("SELECT count(*) FROM djq_task")
        stored = int(cur.fetchone()[0])
    return {"value": sent / elapsed, "unit": "tasks/s", "n": sent, "stored": stored,
            "complete": stored == sent, "capped": sent < n, "seconds": elapsed}


def w1b(spec: dict[str, Any], collector: StampCollector) -> dict[str, Any]:
    from bench.app.tasks import noop

    n = int(spec["n"])
    reset()
    t0 = time.perf_counter()
    noop.delay_many([((i,), {}) for i in range(n)])  # the plain bulk API
    elapsed = time.perf_counter() - t0
    with _cursor() as cur:
        cur.execute("SELECT count(*) FROM djq_task")
        stored = int(cur.fetchone()[0])
    return {"value": n / elapsed, "unit": "tasks/s", "n": n, "stored": stored,
            "complete": stored == n, "seconds": elapsed}


def w2(spec: dict[str, Any], collector: StampCollector) -> dict[str, Any]:
    return _drain(spec, collector, spec.get("pool", "prefork"), int(spec.get("concurrency", 2)))


def w6(spec: dict[str, Any], collector: StampCollector) -> dict[str, Any]:
    import importlib.util

    if importlib.util.find_spec("djq.events") is None:
        return {"na": "events not implemented (-E is accepted and ignored)"}
    return _drain(spec, collector, "prefork", int(spec.get("concurrency", 2)), events=True)


def w4(spec: dict[str, Any], collector: StampCollector) -> dict[str, Any]:
    return _drain(spec, collector, "prefork", int(spec.get("concurrency", 2)),
                  keep_preload=True)


def w4_preload(spec: dict[str, Any], collector: StampCollector) -> dict[str, Any]:
    reset()
    if spec["variant"] == "history":
        seconds = preload_history(int(spec["rows"]))
    else:
        seconds = preload_parked(int(spec["rows"]))
    with _cursor() as cur:
        cur.execute("SELECT count(*) FROM djq_task")
        rows = int(cur.fetchone()[0])
    return {"rows": rows, "seconds": seconds}


def w4_clear(spec: dict[str, Any], collector: StampCollector) -> dict[str, Any]:
    reset()
    return {}


def w3(spec: dict[str, Any], collector: StampCollector) -> dict[str, Any]:
    from bench.app.tasks import stamp

    n, gap = int(spec.get("n", 300)), float(spec.get("gap", 0.01))
    reset()
    workers = Workers(spec, collector)
    try:
        workers.start("prefork", 2)
        workers.wait_ready()
        sent, started = paced_stamps(n, gap, stamp.delay, collector)
    finally:
        workers.stop()
    return latency_result(sent, started)


def w3_pooled(spec: dict[str, Any], collector: StampCollector) -> dict[str, Any]:
    """W3 with the workers behind a real PgBouncer in transaction mode (tests/pgbouncer.py),
    with ``listen`` a direct alias for LISTEN, without it polling. The sender connects
    directly, as W3's does."""
    from django.db import connections

    from tests.pgbouncer import PgBouncer, binary

    executable = binary()
    if executable is None:
        return {"skipped": "pgbouncer is not installed"}
    bouncer = PgBouncer(executable)
    settings = connections["default"].settings_dict
    user = settings.get("USER") or "postgres"
    password = f":{settings['PASSWORD']}" if settings.get("PASSWORD") else ""
    saved = {k: os.environ.get(k) for k in ("BENCH_DJQ_DATABASE_URL", "BENCH_DJQ_LISTEN_URL")}
    direct = os.environ.get("BENCH_DJQ_DATABASE_URL") or os.environ["DATABASE_URL"]
    os.environ["BENCH_DJQ_DATABASE_URL"] = (
        f"postgresql://{user}{password}@127.0.0.1:{bouncer.port}/{settings['NAME']}")
    if spec.get("listen"):
        os.environ["BENCH_DJQ_LISTEN_URL"] = direct
    try:
        return w3(spec, collector)  # its workers read the URLs above
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        bouncer.close()


def scrape(spec: dict[str, Any], collector: StampCollector) -> dict[str, Any]:
    """Time one Prometheus scrape's work (djq.metrics' collector and the text encoding)
    on the database as it is, e.g. after W4a's million finished rows were loaded."""
    from prometheus_client.exposition import generate_latest
    from prometheus_client.registry import CollectorRegistry

    from djq.metrics import DjqCollector

    with _cursor() as cur:
        cur.execute("SELECT count(*) FROM djq_task")
        rows = int(cur.fetchone()[0])
    times = []
    for _ in range(int(spec.get("repeat", 10)) + 1):
        registry = CollectorRegistry(auto_describe=False)
        registry.register(DjqCollector())
        t0 = time.perf_counter()
        generate_latest(registry)
        times.append((time.perf_counter() - t0) * 1000.0)
    times = times[1:]  # the first one warms the connection up
    return {"value": statistics.median(times), "best": min(times), "unit": "ms",
            "rows": rows}


def w5(spec: dict[str, Any], collector: StampCollector) -> dict[str, Any]:
    from bench.app.tasks import noop

    n, cap = int(spec.get("n", 500)), float(spec.get("time_cap", 10))
    reset()
    workers = Workers(spec, collector)
    try:
        workers.start("prefork", 2)
        workers.wait_ready()
        noop.delay().get(timeout=10)  # warm up: connections and the result listener
        done, elapsed = timed_calls(lambda i: noop.delay().get(timeout=10), n, cap)
    finally:
        workers.stop()
    return {"value": done / elapsed, "unit": "calls/s", "n": done, "complete": True, "capped": done < n,
            "seconds": elapsed}


def memory(spec: dict[str, Any], collector: StampCollector) -> dict[str, Any]:
    """Worker RSS (main process and the whole tree) after ``first`` tasks and after
    ``total`` tasks, one worker throughout."""
    first, total = int(spec["first"]), int(spec["total"])
    timeout = float(spec.get("timeout", 240))
    reset()
    workers = Workers(spec, collector)
    points: list[dict[str, Any]] = []
    t_start = time.monotonic()
    try:
        group = workers.start("prefork", int(spec.get("concurrency", 2)))
        workers.wait_ready()
        done = 0
        chunk = 20_000
        for target in (first, total):
            while done < target:
                step = min(chunk, target - done)
                bulk_enqueue(step, start=done)
                left = timeout - (time.monotonic() - t_start)
                if wait_drained(group, max(1.0, left)) is not None:
                    break
                done += step
            points.append({"tasks": succeeded(), **tree_rss_kib(group.pid)})
            if done < target:
                break
    finally:
        workers.stop()
    return {"points": points, "complete": len(points) == 2,
            "capped": not points or points[-1]["tasks"] < total,
            "seconds": time.monotonic() - t_start}


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process so far (from /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def beat(spec: dict[str, Any], collector: StampCollector) -> dict[str, Any]:
    """Periodic tasks (issue 15): the CPU of a ``djq_beat`` scheduler with ``schedules``
    periodic tasks none of which is due (its idle rounds), then three schedulers firing
    them all every ``every`` seconds (fire times spread evenly), and the fire delay
    (fire time to the run's record, which commits with the task) at p50 and p99."""
    from django.db import connection

    n = int(spec.get("schedules", 10_000))
    idle_s, load_s = float(spec.get("idle_seconds", 10)), float(spec.get("load_seconds", 15))
    every = float(spec.get("every", 60))
    reset()
    with _cursor() as cur:
        cur.execute("TRUNCATE djq_periodic_run, djq_periodic_task, djq_interval_schedule, "
                    "djq_crontab_schedule, djq_clocked_schedule")
        cur.execute("INSERT INTO djq_interval_schedule (every, period) VALUES (3600, 'seconds') "
                    "RETURNING id")
        interval_id = cur.fetchone()[0]
        cur.execute("""
            INSERT INTO djq_periodic_task (name, task, interval_id, args, kwargs, enabled,
                one_off, description, from_settings, total_run_count, next_run_at,
                date_changed)
            SELECT 'bench-' || i, 'bench.app.tasks.noop', %s, '[]', '{}', true, false, '',
                false, 0, now() + interval '1 hour' + i * interval '1 second', now()
            FROM generate_series(1, %s) AS i""", [interval_id, n])
        cur.execute("ANALYZE djq_periodic_task")
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="bench.settings", PYTHONUNBUFFERED="1")
    argv = [sys.executable, str(ROOT / "manage.py"), "djq_beat", "-l", "INFO"]
    log_dir = Path(spec["log_dir"])
    groups: list[Group] = []

    def start() -> Group:
        group = Group(argv, env=env, log_path=log_dir / f"djq-beat-{spec['label']}-"
                                                        f"{len(groups)}.log")
        groups.append(group)
        return group

    try:
        first = start()
        time.sleep(3.0)  # start-up (Django, the settings sync) is not the idle round
        cpu0, t0 = _cpu_seconds(first.pid), time.monotonic()
        time.sleep(idle_s)
        idle_cpu = (_cpu_seconds(first.pid) - cpu0) / (time.monotonic() - t0)
        for _ in range(2):
            start()
        time.sleep(3.0)
        with _cursor() as cur:  # every schedule fires every `every` s, spread evenly
            cur.execute("UPDATE djq_interval_schedule SET every = %s WHERE id = %s",
                        [int(every), interval_id])
            cur.execute("""
                UPDATE djq_periodic_task SET next_run_at = t.at
                FROM (SELECT id, clock_timestamp() + interval '1 second'
                             + (row_number() OVER (ORDER BY id) - 1) * %s / %s
                             * interval '1 second' AS at
                      FROM djq_periodic_task) t
                WHERE djq_periodic_task.id = t.id""", [every, n])
            cur.execute("SELECT now(), pg_notify('djq_beat', '')")
            loaded_at = cur.fetchone()[0]
        cpus0 = [_cpu_seconds(g.pid) for g in groups]
        t0 = time.monotonic()
        time.sleep(load_s)
        load_cpu = sum(_cpu_seconds(g.pid) - c for g, c in zip(groups, cpus0)) / (
            time.monotonic() - t0)
        alive = sum(g.alive() for g in groups)
    finally:
        for group in groups:
            group.stop()
    with _cursor() as cur:
        cur.execute("""
            SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY d),
                   percentile_cont(0.99) WITHIN GROUP (ORDER BY d), max(d)
            FROM (SELECT extract(epoch FROM date_enqueued - fire_time) * 1000 AS d
                  FROM djq_periodic_run WHERE fire_time >= %s) r""", [loaded_at])
        fires, p50, p99, worst = cur.fetchone()
        # Every fire time that came due well before the end was enqueued, once.
        cur.execute("""
            SELECT count(*) FROM djq_periodic_task p WHERE p.next_run_at IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM djq_periodic_run r WHERE r.periodic_task_id = p.id)
            AND p.next_run_at < %s::timestamptz + make_interval(secs => %s - 2)""",
                    [loaded_at, load_s])
        missing = int(cur.fetchone()[0])
        cur.execute("SELECT count(*) FROM djq_task")
        tasks = int(cur.fetchone()[0])
    connection.close()
    return {"value": float(p50 or 0.0), "unit": "ms", "p50": float(p50 or 0.0),
            "p99": float(p99 or 0.0), "max": float(worst or 0.0), "fires": int(fires),
            "tasks": tasks, "missing": missing, "schedules": n, "every": every,
            "idle_cpu": idle_cpu, "load_cpu": load_cpu, "schedulers": 3,
            "complete": missing == 0 and tasks == fires and alive == 3,
            "seconds": idle_s + load_s + 6.0}


WORKLOADS = {
    "w1": w1, "w1b": w1b, "w2": w2, "w3": w3, "w4": w4, "w4_preload": w4_preload,
    "w4_clear": w4_clear, "w5": w5, "w6": w6, "memory": memory, "beat": beat,
    "w3_pooled": w3_pooled, "scrape": scrape,
}


def main(spec: dict[str, Any]) -> dict[str, Any]:
    _setup_django()
    collector = StampCollector()
    try:
        return WORKLOADS[spec["workload"]](spec, collector)
    finally:
        collector.close()
        from djq.db import drop_result_listener

        drop_result_listener()


if __name__ == "__main__":
    run_side(main)
