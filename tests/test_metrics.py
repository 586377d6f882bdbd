"""``/djq/metrics``: Prometheus figures from the database, staff or bearer-token only."""

from __future__ import annotations

import datetime
import subprocess
import sys
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from djq.models import Worker
from tests.cli import ROOT, manage_env
from tests.conftest import wait_for
from tests.rows import ALL_DJQ_PERMISSIONS, grant
from tests.testapp.tasks import add, fail, sleep

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]


@pytest.fixture
def staff(client: Client, django_user_model: Any) -> Client:
    user = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(grant(user, *ALL_DJQ_PERMISSIONS))
    return client


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(figures: dict[Any, float], name: str, **labels: str) -> float | None:
    return figures.get((name, tuple(sorted(labels.items()))))


def test_anonymous_and_non_staff_are_refused(client: Client, django_user_model: Any,
                                             settings: Any) -> None:
    assert client.get("/djq/metrics").status_code == 403
    client.force_login(django_user_model.objects.create_user("u", password="pw"))
    assert client.get("/djq/metrics").status_code == 403
    settings.DJQ = {**settings.DJQ, "metrics_token": "s3cret"}
    client.logout()
    response = client.get("/djq/metrics")
    assert response.status_code == 401 and "Bearer" in response["WWW-Authenticate"]
    assert client.get("/djq/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    response = client.get("/djq/metrics", HTTP_AUTHORIZATION="Bearer s3cret")
    assert response.status_code == 200
    assert "djq_workers_alive 0.0" in response.content.decode()


def test_queue_gauges(staff: Client) -> None:
    for i in range(3):
        add.apply_async((i, i), queue="m-q1")
    add.apply_async((1, 1), queue="m-q2")
    for _ in range(2):
        add.apply_async((1, 1), queue="m-q1", countdown=600)
    response = staff.get("/djq/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    figures = samples(response.content.decode())
    assert value(figures, "djq_queue_waiting", queue="m-q1") == 3
    assert value(figures, "djq_queue_scheduled", queue="m-q1") == 2
    assert value(figures, "djq_queue_waiting", queue="m-q2") == 1
    assert value(figures, "djq_queue_running", queue="m-q1") == 0
    age = value(figures, "djq_queue_oldest_waiting_age_seconds", queue="m-q1")
    assert age is not None and 0 <= age < 60
    assert value(figures, "djq_workers_alive") == 0
    assert value(figures, "djq_queue_workers_alive", queue="m-q1") == 0


def test_queue_gauges_across_priorities(staff: Client) -> None:
    """Counted per priority, summed per queue; the oldest runnable task may be of any
    priority."""
    past = timezone.now() - datetime.timedelta(seconds=120)
    add.apply_async((0, 0), queue="m-prio", priority=0, eta=past)
    add.apply_async((0, 1), queue="m-prio", priority=0)
    for i in range(3):
        add.apply_async((1, i), queue="m-prio", priority=9)
    add.apply_async((1, 1), queue="m-prio", priority=9, countdown=600)
    add.apply_async((1, 1), queue="m-prio", priority=-3, countdown=600)
    figures = samples(staff.get("/djq/metrics").content.decode())
    assert value(figures, "djq_queue_waiting", queue="m-prio") == 5
    assert value(figures, "djq_queue_scheduled", queue="m-prio") == 2
    age = value(figures, "djq_queue_oldest_waiting_age_seconds", queue="m-prio")
    assert age is not None and 120 <= age < 180


def test_queue_gauges_estimate_a_deep_queue(staff: Client, monkeypatch: Any) -> None:
    """Past EXACT_UP_TO rows per priority the gauge is the planner's estimate, never less
    than what was counted; a shallow queue stays exact."""
    from django.db import connection

    from djq import cluster

    monkeypatch.setattr(cluster, "EXACT_UP_TO", 4)
    for i in range(30):
        add.apply_async((i, i), queue="m-deep", priority=i % 2)
    for _ in range(3):
        add.apply_async((1, 1), queue="m-deep", countdown=600)
    add.apply_async((1, 1), queue="m-shallow")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE djq_task")
    figures = samples(staff.get("/djq/metrics").content.decode())
    waiting = value(figures, "djq_queue_waiting", queue="m-deep")
    assert waiting is not None and 20 <= waiting <= 45, waiting  # 30, not the 8 counted
    assert value(figures, "djq_queue_scheduled", queue="m-deep") == 3
    assert value(figures, "djq_queue_waiting", queue="m-shallow") == 1


def test_openmetrics_on_request(staff: Client) -> None:
    response = staff.get("/djq/metrics",
                         HTTP_ACCEPT="application/openmetrics-text; version=1.0.0")
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.decode().rstrip().endswith("# EOF")


def test_task_counters_from_workers(start_worker: Any, staff: Client) -> None:
    worker = start_worker()
    for i in range(3):
        assert add.delay(i, 1).get(timeout=30) == i + 1
    for _ in range(2):
        with pytest.raises(ValueError):
            fail.delay().get(timeout=30)
    running = sleep.delay(3)
    labels: dict[str, str] = {}

    def scraped() -> dict[Any, float] | None:
        figures = samples(staff.get("/djq/metrics").content.decode())
        done = value(figures, "djq_tasks_finished_total", task="tests.testapp.tasks.fail",
                     state="FAILURE", **labels)
        busy = value(figures, "djq_queue_running", queue="default")
        return figures if done == 2 and busy == 1 else None

    figures = wait_for(scraped, timeout=10, message="the heartbeat's counters")
    add_labels = {"task": "tests.testapp.tasks.add", **labels}
    assert value(figures, "djq_tasks_finished_total", state="SUCCESS", **add_labels) == 3
    assert value(figures, "djq_task_runtime_seconds_count", **add_labels) == 3
    assert value(figures, "djq_task_runtime_seconds_bucket", le="+Inf", **add_labels) == 3
    assert value(figures, "djq_workers_alive") == 1
    assert value(figures, "djq_queue_workers_alive", queue="default") == 1
    assert running.get(timeout=30) == 3

    # A warm shutdown stores the final counters; the worker no longer counts as alive.
    assert add.delay(5, 5).get(timeout=30) == 10
    assert worker.stop() == 0
    figures = samples(staff.get("/djq/metrics").content.decode())
    assert value(figures, "djq_tasks_finished_total", state="SUCCESS", **add_labels) == 4
    assert value(figures, "djq_workers_alive") == 0


SCRIPT = r"""
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import CollectorRegistry
from djq.metrics import DjqCollector
registry = CollectorRegistry(auto_describe=False)
registry.register(DjqCollector())
print("BEGIN\n" + generate_latest(registry).decode() + "END")
"""


def test_every_process_answers_the_same(staff: Client) -> None:
    for i in range(4):
        add.apply_async((i, i), queue="m-same")
    here = staff.get("/djq/metrics").content.decode()
    proc = subprocess.run([sys.executable, str(ROOT / "manage.py"), "shell", "-c", SCRIPT],
                          cwd=ROOT, env=manage_env(), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    there = proc.stdout.split("BEGIN\n", 1)[1].split("END", 1)[0]

    def gauges(text: str) -> dict[Any, float]:
        return {k: v for k, v in samples(text).items()
                if not k[0].endswith("age_seconds")}

    assert gauges(here) == gauges(there)
    assert value(samples(there), "djq_queue_waiting", queue="m-same") == 4


def test_pruned_workers_keep_their_counts(start_worker: Any, staff: Client) -> None:
    """Counters never go backwards: a pruned worker row's counts move to the retired row."""
    from djq import broker
    from djq.db import open_connection

    worker = start_worker()
    for i in range(3):
        assert add.delay(i, 1).get(timeout=30) == i + 1
    assert worker.stop() == 0
    second = start_worker()
    assert add.delay(1, 1).get(timeout=30) == 2
    key = {"task": "tests.testapp.tasks.add", "state": "SUCCESS"}
    wait_for(lambda: value(samples(staff.get("/djq/metrics").content.decode()),
                           "djq_tasks_finished_total", **key) == 4, timeout=10,
             message="four successes counted")
    Worker.objects.filter(pid=worker.pid).update(stopped_at=timezone.now()
                                                 - datetime.timedelta(hours=2))
    with open_connection() as conn:  # as the maintenance thread prunes
        assert broker.prune_workers(conn, 3600) == 1
    assert not Worker.objects.filter(pid=worker.pid).exists()
    figures = samples(staff.get("/djq/metrics").content.decode())
    assert value(figures, "djq_tasks_finished_total", **key) == 4
    assert value(figures, "djq_task_runtime_seconds_count",
                 task="tests.testapp.tasks.add") == 4
    assert second.stop() == 0
