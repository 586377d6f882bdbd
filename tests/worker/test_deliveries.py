"""A lost pool process fails its task as in Celery; redeliveries are counted and
bounded, so a poison task never loops (issue 14)."""

from __future__ import annotations

import datetime

import pytest
from django.db import connection
from django.utils import timezone

from djq import broker, states
from djq.exceptions import WorkerLostError
from djq.models import Task
from djq.worker.maintenance import recover
from tests.rows import make_task, make_worker
from tests.testapp.models import SideEffect
from tests.testapp.tasks import add, kill_self_late, kill_self_once, poison, poison_twice

pytestmark = pytest.mark.django_db(transaction=True)


def test_acks_late_alone_fails_with_worker_lost_error_as_in_celery(worker):
    result = kill_self_late.delay("late-once")
    with pytest.raises(WorkerLostError, match="exitcode 1"):
        result.get(timeout=30)
    assert SideEffect.objects.filter(key="late-once").count() == 1
    assert Task.objects.get(id=result.id).deliveries == 0


def test_reject_on_worker_lost_redelivers_and_counts_it(worker):
    result = kill_self_once.delay("counted")
    assert result.get(timeout=30) == "survived"
    assert Task.objects.get(id=result.id).deliveries == 1


def test_poison_task_ends_failure_after_task_max_deliveries(start_worker):
    worker = start_worker(djq={"task_max_deliveries": 3})
    result = poison.delay("poison")
    with pytest.raises(WorkerLostError, match="delivered 3 times") as info:
        result.get(timeout=60)
    assert "task_max_deliveries=3" in str(info.value)
    assert result.state == states.FAILURE
    assert SideEffect.objects.filter(key="poison").count() == 3
    assert Task.objects.get(id=result.id).deliveries == 3
    assert "was delivered 3 times" in worker.output()
    assert add.delay(1, 1).get(timeout=20) == 2  # the worker goes on


def test_the_task_option_max_deliveries_wins_over_the_setting(worker):
    result = poison_twice.delay("poison-twice")
    with pytest.raises(WorkerLostError, match="delivered 2 times"):
        result.get(timeout=60)
    assert SideEffect.objects.filter(key="poison-twice").count() == 2


def test_recovery_of_a_dead_workers_rows_counts_deliveries_too(settings):
    settings.DJQ = {"task_max_deliveries": 3}
    dead = make_worker("dead@test", alive=False)
    now = timezone.now()
    kept = make_task(states.STARTED, name=kill_self_once.name, claimed_by=dead.id,
                     deliveries=1, date_claimed=now)
    ended = make_task(states.STARTED, name=kill_self_once.name, claimed_by=dead.id,
                      deliveries=2, date_claimed=now)
    assert kept.status == ended.status == broker.STARTED
    with connection.cursor() as cursor:
        requeued, failed = recover(cursor.connection, lease=20.0)
    assert (requeued, failed) == (1, 1)
    kept.refresh_from_db()
    ended.refresh_from_db()
    assert (kept.status, kept.state, kept.deliveries) == (broker.WAITING, states.PENDING, 2)
    assert kept.claimed_by is None
    assert (ended.status, ended.state, ended.deliveries) == (broker.DONE, states.FAILURE, 3)
    assert "delivered 3 times" in ended.result and "WorkerLostError" in ended.result
    assert ended.date_done is not None and ended.date_done > now - datetime.timedelta(minutes=1)


def test_a_manual_retry_starts_counting_afresh(settings):
    from djq import control

    row = make_task(states.FAILURE, deliveries=5)
    control.retry(row.id)
    row.refresh_from_db()
    assert (row.status, row.deliveries) == (broker.WAITING, 0)
