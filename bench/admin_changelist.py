"""Time the admin's task change list with a million finished tasks.

    .venv/bin/python -m djq.contrib.embedded run -- .venv/bin/python bench/admin_changelist.py
    DATABASE_URL=postgresql://postgres@127.0.0.1/postgres .venv/bin/python bench/admin_changelist.py

Makes a scratch database (``djq_bench_admin``, or ``--database``) on the server of
``DATABASE_URL`` (dropped at the end unless ``--keep``), migrates it, inserts the rows with
one ``INSERT ... SELECT generate_series``, runs VACUUM ANALYZE as autovacuum would, and times
GET requests of the change list through Django's test client as a signed-in superuser:
the default view (newest first), a filtered one, a search by id and a later page.
Prints one line per view (best and median of ``--repeat`` requests after a warm-up) and
the plan of the list query.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: the bench package is beside it

from bench.common import in_scratch_database

SCRATCH = "djq_bench_admin"

INSERT = """
INSERT INTO djq_task (id, name, state, status, queue, priority, args, kwargs, options, result,
    traceback, retries, run_at, worker, date_created, date_claimed, date_started, date_done)
SELECT gen_random_uuid(),
    (ARRAY['shop.tasks.send_receipt', 'media.tasks.resize', 'shop.tasks.sync_stock'])[1 + i %% 3],
    CASE WHEN i %% 50 = 0 THEN 'FAILURE' ELSE 'SUCCESS' END,
    3,
    CASE WHEN i %% 4 = 0 THEN 'media' ELSE 'default' END,
    0, '[' || i || ', "order-' || i || '"]', '{}', '{}',
    CASE WHEN i %% 50 = 0 THEN '{"exc_type": "ValueError", "exc_message": ["boom"]}'
         ELSE '{"ok": true, "n": ' || i || '}' END,
    CASE WHEN i %% 50 = 0 THEN 'Traceback (most recent call last):' || chr(10) || 'ValueError: boom'
    END,
    0, ts, 'w' || (i %% 4) || '@bench', ts, ts, ts + interval '2 ms', ts + interval '40 ms'
FROM (SELECT i, now() - i * interval '20 ms' AS ts FROM generate_series(1, %s) AS i) AS s
"""



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--database", default=SCRATCH, help="scratch database name")
    args = parser.parse_args(argv)
    return in_scratch_database(args.database, args.keep, lambda: run(args))


def run(args: argparse.Namespace) -> int:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import setup_test_environment

    from djq.models import Task

    setup_test_environment()  # the test client's host and response context
    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(INSERT, [args.rows])
    inserted = time.perf_counter() - started
    connection.ensure_connection()
    connection.connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE djq_task")
        cursor.execute("SELECT pg_size_pretty(pg_total_relation_size('djq_task'))")
        size = cursor.fetchone()[0]
    print(f"{args.rows:,} finished tasks inserted in {inserted:.1f}s; djq_task is {size}")

    user = get_user_model().objects.create_superuser("bench", "bench@example.com", "bench")
    client = Client()
    client.force_login(user)
    some_id = Task.objects.order_by("-date_created").values_list("pk", flat=True)[args.rows // 2]
    page = max(1, min(200, args.rows // 100))
    views = [
        ("change list, newest first", {}),
        ("filtered: state=FAILURE", {"state": "FAILURE"}),
        ("filtered: queue=media, name=...resize", {"queue": "media",
                                                   "name": "media.tasks.resize"}),
        ("search by task id", {"q": str(some_id)}),
        (f"page {page}", {"p": str(page)}),
    ]
    print(f"{'view':40} {'best':>9} {'median':>9}  rows shown")
    for label, params in views:
        times = []
        response = client.get("/admin/djq/task/", params)  # warm-up
        assert response.status_code == 200, response.status_code
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            response = client.get("/admin/djq/task/", params)
            times.append(time.perf_counter() - t0)
            assert response.status_code == 200
        shown = response.context["cl"].result_count
        print(f"{label:40} {min(times) * 1000:7.0f}ms {statistics.median(times) * 1000:7.0f}ms"
              f"  {shown:,}")
    queryset = Task.objects.defer("args", "kwargs", "options", "result", "traceback").order_by(
        "-date_created", "-pk")[:50]
    print("\nplan of the change list query:")
    print(queryset.explain(analyze=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
