"""Bound tasks and retries on a real worker: self.request, self.retry, the limits,
autoretry_for with backoff, and the settings retries fall back on."""

from __future__ import annotations

import uuid

import pytest

from djq import states
from djq.exceptions import MaxRetriesExceededError
from djq.models import Task as TaskRow
from djq.status import Status
from tests.conftest import wait_for
from tests.testapp.models import SideEffect
from tests.testapp.tasks import (
    auto_div,
    div,
    div_slowly,
    flaky,
    request_info,
    retry_default,
    retry_once,
    retry_override,
    retry_until,
    retry_without_exc,
)

pytestmark = pytest.mark.django_db(transaction=True)


def attempts(key: str) -> list[SideEffect]:
    return list(SideEffect.objects.filter(key=key).order_by("id"))


def gaps(key: str) -> list[float]:
    rows = attempts(key)
    return [(b.created - a.created).total_seconds() for a, b in zip(rows, rows[1:])]


def test_request_of_a_bound_task(worker):
    task_id = str(uuid.uuid4())
    result = request_info.apply_async((1, "two"), {"k": [3]}, task_id=task_id, queue="default",
                                      priority=4, expires=60)
    info = result.get(timeout=15)
    assert info["id"] == task_id
    assert info["task"] == "tests.testapp.tasks.request_info"
    assert info["args"] == [1, "two"]  # a list, as JSON gives it
    assert info["kwargs"] == {"k": [3]}
    assert info["retries"] == 0
    assert info["hostname"] == "w1@test"
    assert info["root_id"] == task_id
    assert info["parent_id"] is None
    assert info["group"] is None
    assert info["is_eager"] is False
    assert info["called_directly"] is False
    assert info["ignore_result"] is False
    assert info["eta"] is None
    assert info["expires"] is not None
    assert info["delivery_info"]["routing_key"] == "default"
    assert info["delivery_info"]["priority"] == 4


def test_div_retries_then_raises_the_given_exc(worker):
    result = div.delay(4, 0)
    with pytest.raises(ZeroDivisionError):
        result.get(timeout=20)
    assert result.state == states.FAILURE
    assert result.retries == 2  # div has max_retries=2
    assert "ZeroDivisionError" in result.traceback


def test_div_that_does_not_fail_returns(worker):
    assert div.delay(4, 2).get(timeout=15) == 2


def test_retry_without_exc_ends_with_max_retries_exceeded(worker):
    result = retry_without_exc.delay()
    with pytest.raises(MaxRetriesExceededError):
        result.get(timeout=20)
    assert result.state == states.FAILURE
    assert result.retries == 2


def test_state_is_retry_while_waiting_for_the_next_attempt(worker):
    result = div_slowly.delay(4, 0, key="slow-retry")
    wait_for(lambda: result.state == states.RETRY, message="the RETRY state")
    assert not result.ready()
    assert result.retries == 1
    assert isinstance(result.info, ZeroDivisionError)
    assert "ZeroDivisionError" in result.traceback
    stored = TaskRow.objects.get(id=result.id)
    assert stored.status == Status.WAITING  # waiting again, under the same id
    with pytest.raises(ZeroDivisionError):
        result.get(timeout=20)
    assert result.retries == 1
    assert [a.value for a in attempts("slow-retry")] == ["0", "1"]
    # default_retry_delay=1.5: the second attempt did not run before it.
    assert gaps("slow-retry")[0] >= 1.5


@pytest.mark.parametrize("how", ["countdown", "eta"])
def test_retry_countdown_and_eta(worker, how):
    key = f"retry-{how}"
    result = retry_once.delay(key, how)
    assert result.get(timeout=20) == 1
    assert result.retries == 1
    assert [a.value for a in attempts(key)] == ["0", "1"]
    assert gaps(key)[0] >= 0.99


def test_retry_max_retries_argument_wins_over_the_task_option(worker):
    result = retry_override.delay("override")
    with pytest.raises(MaxRetriesExceededError):
        result.get(timeout=20)
    assert result.retries == 1
    assert len(attempts("override")) == 2


def test_max_retries_none_retries_until_success(worker):
    # Past the default limit of 3: max_retries=None is forever.
    result = retry_until.delay("forever", 5)
    assert result.get(timeout=30) == 5
    assert result.retries == 5
    assert [a.value for a in attempts("forever")] == ["0", "1", "2", "3", "4", "5"]


def test_autoretry_for_with_backoff_gives_up_with_the_exception(worker):
    result = auto_div.delay(1, 0)
    with pytest.raises(ZeroDivisionError):
        result.get(timeout=20)
    assert result.retries == 3


def test_autoretry_for_with_backoff_succeeds_and_spaces_attempts(worker):
    # retry_backoff=1 with retry_backoff_max=1: every wait is one second (capped).
    result = flaky.delay("flaky", 2)
    assert result.get(timeout=30) == 2
    assert result.retries == 2
    assert len(attempts("flaky")) == 3
    assert all(gap >= 0.99 for gap in gaps("flaky")), gaps("flaky")


def test_autoretry_leaves_other_exceptions_alone(worker):
    result = auto_div.delay(1, "x")
    with pytest.raises(TypeError):
        result.get(timeout=15)
    assert result.retries == 0


def test_task_max_retries_and_default_retry_delay_settings(start_worker):
    start_worker(djq={"task_max_retries": 1, "task_default_retry_delay": 0.5})
    result = retry_default.delay("defaults")
    with pytest.raises(MaxRetriesExceededError):
        result.get(timeout=20)
    assert result.retries == 1
    assert [a.value for a in attempts("defaults")] == ["0", "1"]
    assert gaps("defaults")[0] >= 0.5
