"""Revocation: waiting tasks never run; running ones are killed with terminate=True."""

from __future__ import annotations

import signal

import pytest

from djq import states
from djq.exceptions import TaskRevokedError
from djq.result import AsyncResult
from tests.conftest import wait_for
from tests.testapp.models import SideEffect
from tests.testapp.tasks import add, record, sleep

pytestmark = pytest.mark.django_db(transaction=True)


def test_revoked_waiting_task_never_runs_even_on_a_worker_started_later(start_worker):
    result = record.apply_async(("revoked",), countdown=1)
    result.revoke()
    assert result.state == states.REVOKED
    start_worker()
    with pytest.raises(TaskRevokedError):
        result.get(timeout=10)
    later = add.apply_async((1, 1), countdown=1.2)
    assert later.get(timeout=15) == 2  # the worker was up and running past the eta
    assert not SideEffect.objects.filter(key="revoked").exists()


def test_revoke_without_terminate_lets_a_running_task_finish(worker):
    result = sleep.delay(1.0, key="finish")
    wait_for(lambda: result.date_started is not None, message="task to start")
    result.revoke()
    assert result.get(timeout=15) == 1.0
    assert result.state == states.SUCCESS


def test_revoke_with_terminate_kills_the_running_task(worker):
    result = sleep.delay(60, key="terminate")
    wait_for(lambda: SideEffect.objects.filter(key="terminate").exists(),
             message="task to start")
    AsyncResult(result.id).revoke(terminate=True, signal="SIGKILL")
    with pytest.raises(TaskRevokedError):
        result.get(timeout=20)
    assert result.state == states.REVOKED
    assert not SideEffect.objects.filter(key="terminate", value="end").exists()
    # The worker replaced its process and goes on.
    assert add.delay(3, 4).get(timeout=20) == 7
    assert worker.proc.poll() is None


def test_terminate_with_sigterm_default(worker):
    result = sleep.delay(60)
    wait_for(lambda: result.date_started is not None, message="task to start")
    result.revoke(terminate=True)
    with pytest.raises(TaskRevokedError):
        result.get(timeout=20)
    assert f"signal {int(signal.SIGTERM)}" not in (result.traceback or "")
