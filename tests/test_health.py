"""Health and retention: ``djq ping`` for liveness probes, ``result_expires_failed``."""

from __future__ import annotations

import signal
import uuid
from typing import Any

import pytest
from django.db import connection

from djq import AsyncResult, states
from djq.models import Task as TaskRow
from djq.worker.maintenance import result_ages
from tests.cli import run_manage
from tests.conftest import wait_for
from tests.testapp.tasks import add, fail

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def ping(*args: str) -> Any:
    return run_manage("djq", "ping", *args, timeout=60)


def test_ping_follows_the_named_workers_heartbeat(start_worker: Any) -> None:
    """Exit 0 while the worker's lease is current; 69 when it is frozen past its lease
    (the test lease is 4 s), or for a name no worker has."""
    worker = start_worker("-n", "probe@test")
    start_worker("-n", "other@test")
    ok = ping("-d", "probe@test")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines() == ["->  probe@test: OK", "        pong", "",
                                      "1 node online."]
    assert ping().returncode == 0
    assert ping("-d", "probe@test,other@test").returncode == 0

    unknown = ping("-d", "nobody@test")
    assert unknown.returncode == 69
    assert "No current heartbeat from nobody@test" in unknown.stderr

    worker.send_signal(signal.SIGSTOP)  # frozen: no heartbeat
    try:
        wait_for(lambda: ping("-d", "probe@test").returncode == 69, timeout=20,
                 interval=0.5, message="ping to fail for the frozen worker")
        assert ping("-d", "other@test").returncode == 0
        assert ping("-d", "probe@test,other@test").returncode == 69
    finally:
        worker.send_signal(signal.SIGCONT)
    # Back, it finds its lease lost and registers again under the same name.
    wait_for(lambda: ping("-d", "probe@test").returncode == 0, timeout=20, interval=0.5,
             message="ping to pass again")


def test_ping_without_workers_fails() -> None:
    proc = ping()
    assert proc.returncode == 69
    assert "No nodes online" in proc.stderr


@pytest.mark.parametrize("setting,ages", [
    ({}, (86400.0, 86400.0)),
    ({"result_expires": 60}, (60.0, 60.0)),
    ({"result_expires": 60, "result_expires_failed": 3600}, (60.0, 3600.0)),
    ({"result_expires": 60, "result_expires_failed": 0}, (60.0, None)),
    ({"result_expires": None, "result_expires_failed": 30}, (None, 30.0)),
    ({"result_expires": 0}, (None, None)),
])
def test_result_ages(settings: Any, setting: dict[str, Any], ages: Any) -> None:
    settings.DJQ = {**settings.DJQ, **setting}
    assert result_ages() == ages


def test_failures_are_kept_longer_than_successes(start_worker: Any) -> None:
    start_worker(djq={"result_expires": 3600, "result_expires_failed": 3 * 86400,
                      "worker_prune_interval": 0.5})
    ok = add.delay(1, 1)
    failed = fail.delay("kept")
    old_failed = fail.delay("gone")
    ok.get(timeout=15)
    for r in (failed, old_failed):
        with pytest.raises(ValueError):
            r.get(timeout=15)

    def age(task_id: str, interval: str) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"UPDATE djq_task SET date_done = now() - interval '{interval}' "
                           "WHERE id = %s", [uuid.UUID(task_id)])

    age(ok.id, "2 days")  # a success past result_expires: pruned
    age(failed.id, "2 days")  # a failure inside result_expires_failed: kept
    age(old_failed.id, "4 days")  # past it: pruned
    wait_for(lambda: AsyncResult(ok.id).state == states.PENDING
             and AsyncResult(old_failed.id).state == states.PENDING, timeout=20,
             message="the success and the old failure to be pruned")
    assert AsyncResult(failed.id).state == states.FAILURE
    assert TaskRow.objects.filter(id=failed.id).exists()
