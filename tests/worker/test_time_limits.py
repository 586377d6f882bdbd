"""Soft and hard time limits: the prefork pool signals and kills its processes; the
threads and solo pools raise inside the task's thread (issue 14)."""

from __future__ import annotations

import pytest

from djq import control, states
from djq.exceptions import TaskRevokedError, TimeLimitExceeded
from tests.conftest import wait_for
from tests.testapp.models import SideEffect
from tests.testapp.tasks import (
    add,
    busy,
    errback_one,
    errback_three,
    hard_limited_busy,
    hard_limited_task,
    kill_self,
    sleep,
    soft_limited_busy,
    soft_limited_task,
)

pytestmark = pytest.mark.django_db(transaction=True)


def test_soft_limit_is_raised_inside_the_task_which_may_clean_up(worker):
    result = soft_limited_task.delay(10)
    assert result.get(timeout=20) == "cleaned up"


def test_hard_limit_kills_the_process_and_the_worker_goes_on(worker):
    result = hard_limited_task.delay(30)
    with pytest.raises(TimeLimitExceeded):
        result.get(timeout=20)
    assert result.state == states.FAILURE
    assert "TimeLimitExceeded" in result.traceback
    assert add.delay(1, 2).get(timeout=20) == 3


def test_global_and_per_call_limits(start_worker):
    start_worker(djq={"task_soft_time_limit": 60, "task_time_limit": 0.5})
    limited = sleep.delay(30)
    with pytest.raises(TimeLimitExceeded):
        limited.get(timeout=20)
    # A limit given with the call wins over the setting.
    per_call = sleep.apply_async((1.0,), time_limit=10)
    assert per_call.get(timeout=20) == 1.0


# --- threads and solo: raised inside the task's thread -----------------------------------

THREAD_POOLS = pytest.mark.parametrize("pool", ["threads", "solo"])


@THREAD_POOLS
def test_thread_pools_start_with_limits_and_say_once_what_they_cannot_interrupt(
        start_worker, pool):
    worker = start_worker(pool=pool, djq={"task_time_limit": 60})
    wait_for(lambda: "cannot be interrupted" in worker.output(), message="the warning")
    output = worker.output()
    assert output.count("cannot be interrupted") == 1
    assert "tests.testapp.tasks.soft_limited_busy" in output
    assert "tests.testapp.tasks.hard_limited_busy" in output
    assert "task_time_limit" in output


@THREAD_POOLS
def test_soft_limit_is_raised_inside_the_tasks_thread(start_worker, pool):
    start_worker(pool=pool)
    assert soft_limited_busy.delay(10).get(timeout=20) == "cleaned up"


@THREAD_POOLS
def test_hard_limit_is_raised_inside_the_tasks_thread_and_the_worker_goes_on(
        start_worker, pool):
    worker = start_worker(pool=pool)
    result = hard_limited_busy.delay(30, key="hard")
    with pytest.raises(TimeLimitExceeded, match="TimeLimitExceeded\\(0.5\\)"):
        result.get(timeout=20)
    assert result.state == states.FAILURE
    assert not SideEffect.objects.filter(key="hard", value="end").exists()
    assert add.delay(1, 2).get(timeout=20) == 3
    assert worker.proc.poll() is None


@THREAD_POOLS
def test_setting_limits_apply_in_thread_pools(start_worker, pool):
    start_worker(pool=pool, djq={"task_time_limit": 0.5})
    with pytest.raises(TimeLimitExceeded):
        busy.delay(30).get(timeout=20)
    assert busy.apply_async((0.1,), time_limit=10).get(timeout=20) == 0.1


@THREAD_POOLS
def test_revoke_terminate_ends_the_task_in_its_thread_as_revoked(start_worker, pool):
    worker = start_worker(pool=pool)
    result = busy.delay(60, key="terminated")
    wait_for(lambda: SideEffect.objects.filter(key="terminated").exists(),
             message="the task to start")
    assert control.revoke(result.id, terminate=True) == "terminating"
    with pytest.raises(TaskRevokedError):
        result.get(timeout=20)
    assert result.state == states.REVOKED
    assert not SideEffect.objects.filter(key="terminated", value="end").exists()
    assert add.delay(2, 2).get(timeout=20) == 4
    assert worker.proc.poll() is None


@pytest.mark.parametrize("task, error", [
    (hard_limited_task.s(5), "TimeLimitExceeded"),  # killed for its hard limit
    (kill_self.s(), "WorkerLostError"),  # its process died
])
def test_a_task_whose_process_dies_has_its_errbacks_called_as_in_celery(worker, task, error):
    result = task.apply_async(link_error=[errback_one.s(), errback_three.s()])
    with pytest.raises(Exception):
        result.get(timeout=30)
    assert result.state == states.FAILURE
    assert error in repr(result.result)
    # Old style: sent as a task with the failed task's id; new style: called in the
    # worker with (request, exc, traceback).
    wait_for(lambda: SideEffect.objects.filter(key="errback_one").exists(), timeout=20,
             message="the old-style errback")
    assert SideEffect.objects.get(key="errback_one").value == result.id
    assert SideEffect.objects.get(key="errback_three").value == f"{result.id}|{error}"
