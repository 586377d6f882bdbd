"""Time a Prometheus scrape of ``/djq/metrics`` with a million stored tasks.

    .venv/bin/python -m djq.contrib.embedded run -- .venv/bin/python bench/metrics_scrape.py
    DATABASE_URL=postgresql://postgres@127.0.0.1/postgres .venv/bin/python bench/metrics_scrape.py

Makes a scratch database (``djq_bench_metrics``, or ``--database``) on the server of
``DATABASE_URL`` (dropped at the end unless ``--keep``), migrates it, and fills
``djq_task`` with ``--rows`` finished tasks, ``--waiting`` waiting ones (half runnable,
half scheduled) over three queues and ``--running`` started ones, plus ``--workers`` live
worker rows whose counters name ``--names`` task names each. After VACUUM ANALYZE (as
autovacuum would) it times GET /djq/metrics through Django's test client as a signed-in
superuser: best and median of ``--repeat`` after a warm-up. ``--backlog`` then adds a
million more waiting rows (a queue a million deep) and times it again: past
``djq.cluster.EXACT_UP_TO`` rows per queue and priority the waiting gauges are the
planner's estimate, so this costs about what the first measurement does.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: the bench package is beside it

from bench.common import in_scratch_database

SCRATCH = "djq_bench_metrics"

INSERT = """
INSERT INTO djq_task (id, name, state, status, queue, priority, args, kwargs, options, result,
    retries, run_at, worker, claimed_by, date_created, date_started, date_done)
SELECT gen_random_uuid(), 'shop.tasks.t' || (i %% 20), %s, %s,
    (ARRAY['default', 'media', 'mail'])[1 + i %% 3], 0, '[]', '{}', '{}', NULL, 0,
    -- mode 1: every other row scheduled an hour ahead; else runnable since i ms
    CASE WHEN %s = 1 AND i %% 2 = 1 THEN now() + interval '1 hour'
         ELSE now() - i * interval '1 ms' END,
    NULL, %s, now() - i * interval '1 ms', NULL, NULL
FROM generate_series(1, %s) AS i
"""

WORKER = """
INSERT INTO djq_worker (hostname, pid, pool, concurrency, queues, started_at, last_heartbeat,
    processed, failed, active, loadavg, sw_ver, counters)
VALUES (%s, %s, 'prefork', 8, 'default,media,mail', now(), now(), 0, 0, 0, '', '', %s)
"""



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="finished tasks")
    parser.add_argument("--waiting", type=int, default=10_000)
    parser.add_argument("--running", type=int, default=200)
    parser.add_argument("--workers", type=int, default=20)
    parser.add_argument("--names", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--backlog", type=int, default=1_000_000,
                        help="waiting rows for the second measurement (0: skip it)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--database", default=SCRATCH, help="scratch database name")
    args = parser.parse_args(argv)
    return in_scratch_database(args.database, args.keep, lambda: run(args))


def counters(names: int) -> str:
    buckets = [5, 10, 20, 40, 80, 40, 20, 10, 5, 2, 1, 0, 0, 0, 0]
    return json.dumps({"tasks": {
        f"shop.tasks.t{n}": {"states": {"SUCCESS": 1000 + n, "FAILURE": n}, "retried": n,
                             "buckets": buckets, "sum": 12.5, "count": sum(buckets)}
        for n in range(names)}})


def scrape(client: object, repeat: int) -> tuple[float, float, int]:
    times = []
    response = client.get("/djq/metrics")  # type: ignore[attr-defined]
    assert response.status_code == 200, response.status_code
    for _ in range(repeat):
        t0 = time.perf_counter()
        response = client.get("/djq/metrics")  # type: ignore[attr-defined]
        times.append(time.perf_counter() - t0)
        assert response.status_code == 200
    return min(times) * 1000, statistics.median(times) * 1000, len(response.content)


def run(args: argparse.Namespace) -> int:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import setup_test_environment

    setup_test_environment()
    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(INSERT, ["SUCCESS", 3, 0, None, args.rows])
        cursor.execute(INSERT, ["PENDING", 0, 1, None, args.waiting])
        for i in range(args.workers):
            cursor.execute(WORKER, [f"w{i}@bench", 1000 + i, counters(args.names)])
        cursor.execute("SELECT min(id) FROM djq_worker")
        first_worker = cursor.fetchone()[0]
        cursor.execute(INSERT, ["PENDING", 2, 0, first_worker, args.running])
    inserted = time.perf_counter() - started
    connection.ensure_connection()
    connection.connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE djq_task")
        cursor.execute("SELECT count(*), pg_size_pretty(pg_total_relation_size('djq_task')) "
                       "FROM djq_task")
        total, size = cursor.fetchone()
    print(f"{total:,} tasks ({args.rows:,} finished, {args.waiting:,} waiting, "
          f"{args.running:,} running), {args.workers} workers x {args.names} task names, "
          f"inserted in {inserted:.1f}s; djq_task is {size}")
    user = get_user_model().objects.create_superuser("bench", "bench@example.com", "bench")
    client = Client()
    client.force_login(user)
    best, median, size_bytes = scrape(client, args.repeat)
    print(f"GET /djq/metrics: best {best:.1f} ms, median {median:.1f} ms "
          f"({size_bytes:,} bytes)")
    if args.backlog:
        with connection.cursor() as cursor:
            cursor.execute(INSERT, ["PENDING", 0, 0, None, args.backlog])
            cursor.execute("VACUUM ANALYZE djq_task")
        best, median, size_bytes = scrape(client, args.repeat)
        print(f"with {args.backlog:,} more runnable rows waiting: GET /djq/metrics: best "
              f"{best:.1f} ms, median {median:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
