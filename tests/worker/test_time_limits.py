"""Soft and hard time limits in the prefork pool; refusal in the others."""

from __future__ import annotations

import subprocess

import pytest

from djq import states
from djq.exceptions import TimeLimitExceeded
from tests.testapp.tasks import add, hard_limited_task, sleep, soft_limited_task

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


@pytest.mark.parametrize("pool", ["threads", "solo"])
def test_other_pools_refuse_to_start_with_a_time_limit(start_worker, pool):
    worker = start_worker("-P", pool, djq={"task_time_limit": 5}, wait=False)
    try:
        code = worker.proc.wait(60)
    except subprocess.TimeoutExpired:
        pytest.fail("worker with a time limit and a non-prefork pool did not refuse")
    assert code != 0
    assert "Time limits need the prefork pool" in worker.output()
