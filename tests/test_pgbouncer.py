"""djq behind a real PgBouncer in transaction mode: workers, results, canvas and commands.

Through a transaction pooler every statement may run on another server session, so
prepared statements and LISTEN do not work there. Workers and commands here reach the
database only through PgBouncer (``DJQ_TEST_DATABASE_PORT``); with
``DJQ_TEST_LISTEN_DIRECT=1`` they also have a ``direct`` alias for
``DJQ["listen_database"]``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import pytest
from django.db import connections

from djq import states
from djq.db import behind_pooler, open_connection
from djq.models import Task, Worker
from tests.cli import ROOT, manage_env
from tests.conftest import wait_for
from tests.testapp.tasks import add, fail, identity

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

LISTEN_DIRECT = {"listen_database": "direct"}


def pooled_env(pgbouncer: Any, direct: bool, overrides: dict[str, Any] | None = None
               ) -> dict[str, str]:
    env = manage_env(overrides)
    env["DJQ_TEST_DATABASE_PORT"] = str(pgbouncer.port)
    if direct:
        env["DJQ_TEST_LISTEN_DIRECT"] = "1"
    return env


def start_pooled_worker(start_worker: Any, pgbouncer: Any, direct: bool, **kw: Any) -> Any:
    env = {"DJQ_TEST_LISTEN_DIRECT": "1"} if direct else {}
    djq = dict(LISTEN_DIRECT) if direct else {}
    return start_worker(proxy=pgbouncer, env=env, djq=djq, **kw)


def start_latencies(n: int = 30, gap: float = 0.03) -> list[float]:
    """Send ``n`` tasks ``gap`` seconds apart to an idle worker; each one's wait from its
    insert to its start, in ms, as the database stamped them."""
    ids = []
    for i in range(n):
        ids.append(identity.delay(i).id)
        time.sleep(gap)
    for task_id in ids:
        assert identity.AsyncResult(task_id).get(timeout=30) is not None
    rows = Task.objects.filter(id__in=ids).values_list("date_created", "date_started")
    return [(started - created).total_seconds() * 1000 for created, started in rows]


def test_pooler_is_detected(pgbouncer: Any) -> None:
    with pgbouncer.connect(autocommit=True) as conn:
        assert behind_pooler(conn)
    conn = open_connection()
    try:
        assert not behind_pooler(conn)
        assert conn.prepare_threshold == 5  # direct: prepared statements stay on
    finally:
        conn.close()


def test_poll_only_worker_through_pgbouncer(start_worker: Any, pgbouncer: Any) -> None:
    """No listen alias: the worker polls, fast enough for a p50 under 100 ms, and its
    maintenance thread (many heartbeats, a recovery sweep) prepares nothing."""
    worker = start_pooled_worker(start_worker, pgbouncer, direct=False)
    latencies = start_latencies()
    assert statistics.median(latencies) < 100, sorted(latencies)
    assert add.delay(2, 3).get(timeout=30) == 5
    # Heartbeats every 0.5 s: well past psycopg's prepare threshold of 5, and past a
    # full lease connected, so the recovery sweep has run too.
    time.sleep(5)
    row = Worker.objects.get(pid=worker.pid)
    assert row.stopped_at is None
    output = worker.output()
    assert "already exists" not in output and "Maintenance: database error" not in output
    assert worker.stop() == 0, worker.output()


def test_listen_alias_worker_through_pgbouncer(start_worker: Any, pgbouncer: Any) -> None:
    """With ``listen_database`` the worker is woken by NOTIFY on the direct alias: a slow
    fallback poll (5 s) and yet a p50 under 100 ms."""
    worker = start_pooled_worker(start_worker, pgbouncer, direct=True)
    latencies = start_latencies()
    assert statistics.median(latencies) < 100, sorted(latencies)
    assert "already exists" not in worker.output()
    assert worker.stop() == 0, worker.output()


def test_notify_does_not_cross_the_pooler(start_worker: Any, pgbouncer: Any) -> None:
    """The reason for the above: without a listen alias and with a slow poll, a worker
    behind the pooler only finds work at its poll (the issue's 5 s per task)."""
    start_worker(proxy=pgbouncer, djq={"worker_pooled_poll_interval": 3.0})
    time.sleep(0.5)
    latencies = start_latencies(n=4, gap=0.3)
    assert statistics.median(latencies) > 300, sorted(latencies)


SCRIPT = r"""
import json
from djq import chain, chord, group
from djq.db import pooled
from tests.testapp.tasks import add, fail, tsum
out = {"pooled": pooled()}
out["add"] = add.delay(2, 3).get(timeout=30)
out["chain"] = (add.s(1, 1) | add.s(10) | add.s(100)).delay().get(timeout=30)
out["group"] = group(add.s(i, i) for i in range(5)).delay().get(timeout=30)
out["chord"] = chord(add.s(i, i) for i in range(10))(tsum.s()).get(timeout=30)
try:
    fail.delay("through the pooler").get(timeout=30)
except Exception as exc:
    out["fail"] = [type(exc).__name__, str(exc)]
print("RESULT " + json.dumps(out))
"""


@pytest.mark.parametrize("direct", [False, True], ids=["poll-only", "listen-alias"])
def test_results_and_canvas_through_pgbouncer(start_worker: Any, pgbouncer: Any,
                                              direct: bool) -> None:
    """A web-like process (``manage.py shell``) and a worker, both only through the
    pooler: results, chains, groups and chords, failures."""
    start_pooled_worker(start_worker, pgbouncer, direct=direct)
    overrides = LISTEN_DIRECT if direct else {}
    proc = subprocess.run([sys.executable, str(ROOT / "manage.py"), "shell", "-c", SCRIPT],
                          cwd=ROOT, env=pooled_env(pgbouncer, direct, overrides),
                          capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    out = json.loads(line[len("RESULT "):])
    assert out == {"pooled": True, "add": 5, "chain": 112, "group": [0, 2, 4, 6, 8],
                   "chord": 90, "fail": ["ValueError", "through the pooler"]}
    assert "already exists" not in proc.stderr


def test_commands_and_check_through_pgbouncer(pgbouncer: Any) -> None:
    task_id = add.delay(1, 2).id
    env = pooled_env(pgbouncer, direct=False)
    check = subprocess.run([sys.executable, str(ROOT / "manage.py"), "check"], cwd=ROOT,
                           env=env, capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "djq.W002" in check.stderr + check.stdout
    assert "listen_database" in check.stderr + check.stdout

    env = pooled_env(pgbouncer, direct=True, overrides=LISTEN_DIRECT)
    check = subprocess.run([sys.executable, str(ROOT / "manage.py"), "check"], cwd=ROOT,
                           env=env, capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and "djq.W002" not in check.stderr + check.stdout

    for args in (["djq", "call", "tests.testapp.tasks.add", "--args", "[1, 1]"],
                 ["djq", "inspect", "query_task", task_id], ["djq", "revoke", task_id]):
        proc = subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, (args, proc.stdout + proc.stderr)
    assert Task.objects.get(id=task_id).state == states.REVOKED


def test_direct_database_raises_no_warning() -> None:
    from djq.checks import check_pooler

    assert check_pooler() == []
    assert connections["default"].vendor == "postgresql"
