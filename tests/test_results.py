"""AsyncResult against real workers: states, results, exceptions, waiting, forgetting,
and what a result tells about its task."""

from __future__ import annotations

import builtins
import datetime
import json
import os
import subprocess
import sys
import time
import uuid

import pytest
from django.db import connections

import djq
from djq import AsyncResult, states
from djq.exceptions import DjqError, TaskError, TimeoutError
from djq.models import Task as TaskRow
from tests.conftest import ROOT, wait_for
from tests.testapp.models import SideEffect
from tests.testapp.tasks import (
    CustomError,
    add,
    custom_state,
    fail,
    fail_custom,
    fail_unimportable,
    progress,
    sleep,
    spawn_child,
    tracked_sleep,
)

pytestmark = pytest.mark.django_db(transaction=True)


def run_python(code: str, timeout: float = 60.0) -> str:
    """Run ``code`` in a new Python process set up like a worker; return its stdout."""
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    env["DJQ_TEST_DATABASE_NAME"] = connections["default"].settings_dict["NAME"]
    prelude = "import django, json; django.setup()\n"
    done = subprocess.run([sys.executable, "-c", prelude + code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


# --- states -----------------------------------------------------------------------------


def test_unknown_id_is_pending():
    result = AsyncResult(str(uuid.uuid4()))
    assert result.state == states.PENDING
    assert result.status == states.PENDING
    assert result.result is None
    assert result.info is None
    assert result.traceback is None
    assert not result.ready()
    assert not result.successful()
    assert not result.failed()


def test_id_that_is_not_a_uuid_is_pending():
    assert AsyncResult("no-such-task").state == states.PENDING


def test_the_three_ways_to_get_a_result_agree(worker):
    sent = add.delay(2, 3)
    assert sent.get(timeout=15) == 5
    for result in (AsyncResult(sent.id), djq.AsyncResult(sent.id), add.AsyncResult(sent.id)):
        assert result.state == states.SUCCESS
        assert result.result == 5
        assert result == sent


def test_add_pending_then_started_with_track_started_then_success(start_worker):
    result = sleep.delay(1.5, key="tracked")
    assert result.state == states.PENDING  # no worker yet
    start_worker(djq={"task_track_started": True})
    wait_for(lambda: result.state == states.STARTED, message="STARTED")
    assert result.date_started is not None
    assert not result.ready()
    assert result.get(timeout=15) == 1.5
    assert result.state == states.SUCCESS
    assert result.successful()


def test_add_delay_2_3_is_pending_then_success(start_worker):
    result = add.delay(2, 3)
    assert result.state == states.PENDING
    start_worker(djq={"task_track_started": True})
    assert result.get(timeout=15) == 5
    assert result.state == states.SUCCESS


def test_track_started_task_option(worker):
    result = tracked_sleep.delay(1.5)
    wait_for(lambda: result.state == states.STARTED, message="STARTED")
    assert result.get(timeout=15) == 1.5


def test_running_task_stays_pending_without_track_started(worker):
    result = sleep.delay(1.5, key="untracked")
    wait_for(lambda: SideEffect.objects.filter(key="untracked", value="start").exists(),
             message="the task to start")
    assert result.state == states.PENDING
    assert result.get(timeout=15) == 1.5


def test_failure_with_type_error_traceback(worker):
    result = add.delay(2, "a")
    with pytest.raises(TypeError) as raised:
        result.get(timeout=15)
    assert "unsupported operand" in str(raised.value)
    assert result.state == states.FAILURE
    assert result.failed()
    assert result.ready()
    assert not result.successful()
    assert isinstance(result.result, TypeError)
    assert "Traceback (most recent call last)" in result.traceback
    assert "TypeError" in result.traceback
    assert "return x + y" in result.traceback


def test_custom_state_going_to_sleep(worker):
    result = custom_state.delay("GOING_TO_SLEEP", {"for": 2}, hold=2.0)
    wait_for(lambda: result.state == "GOING_TO_SLEEP", message="the custom state")
    assert result.info == {"for": 2}
    assert not result.ready()
    assert result.get(timeout=15) == "done"
    assert result.state == states.SUCCESS
    assert result.info == "done"


def test_progress_meta_through_info(worker):
    result = progress.delay(4, 0.4)
    seen: set[int] = set()

    def finished_watching() -> bool:
        # state and info are two reads; the task may finish between them.
        info = result.info
        if isinstance(info, dict) and "progress" in info:
            seen.add(info["progress"])
        return result.ready()

    wait_for(finished_watching, message="the task to finish", interval=0.02)
    assert result.get(timeout=1) == 4
    assert seen, "never saw the PROGRESS state"
    assert seen <= {25, 50, 75, 100}
    assert len(seen) >= 2


# --- reading from another process ------------------------------------------------------


def test_result_read_by_id_from_a_new_process_after_the_sender_exited(worker):
    task_id = run_python(
        "from tests.testapp.tasks import add\n"
        "print(add.delay(20, 22).id)\n"
    )
    uuid.UUID(task_id)
    got = json.loads(run_python(
        "from djq import AsyncResult\n"
        f"r = AsyncResult({task_id!r})\n"
        "value = r.get(timeout=20)\n"
        "print(json.dumps([value, r.state, r.name, r.worker, r.date_done is not None]))\n"
    ))
    assert got == [42, "SUCCESS", "tests.testapp.tasks.add", "w1@test", True]


def test_failure_read_from_a_new_process(worker):
    sent = fail.delay("far away")
    with pytest.raises(ValueError):
        sent.get(timeout=15)
    got = json.loads(run_python(
        "from djq import AsyncResult\n"
        f"r = AsyncResult({sent.id!r})\n"
        "try:\n"
        "    r.get(timeout=5)\n"
        "except ValueError as exc:\n"
        "    print(json.dumps([r.state, str(exc), 'ValueError' in r.traceback]))\n"
    ))
    assert got == ["FAILURE", "far away", True]


# --- get() ------------------------------------------------------------------------------


def test_get_timeout_on_a_slow_task(worker):
    result = sleep.delay(5)
    with pytest.raises(TimeoutError):
        result.get(timeout=1)
    assert result.state == states.PENDING
    assert issubclass(TimeoutError, builtins.TimeoutError)
    assert issubclass(TimeoutError, DjqError)
    with pytest.raises(builtins.TimeoutError):
        result.get(timeout=0.2)


def test_get_timeout_on_a_task_nobody_runs():
    result = add.delay(1, 1)
    with pytest.raises(TimeoutError):
        result.get(timeout=0.5)


def test_get_propagate_false_returns_the_exception(worker):
    result = fail.delay("not raised")
    error = result.get(timeout=15, propagate=False)
    assert isinstance(error, ValueError)
    assert str(error) == "not raised"
    assert result.state == states.FAILURE


def test_get_reraises_the_tasks_own_exception_type(worker):
    result = fail_custom.delay("mine")
    with pytest.raises(CustomError, match="mine"):
        result.get(timeout=15)
    assert type(result.result) is CustomError


@pytest.mark.parametrize("module_exists", [False, True])
def test_unimportable_exception_is_a_task_error_look_alike(worker, module_exists):
    result = fail_unimportable.delay(module_exists, "spooky")
    with pytest.raises(TaskError) as raised:
        result.get(timeout=15)
    assert type(raised.value).__name__ == "GhostError"
    assert "spooky" in str(raised.value)
    assert isinstance(result.result, TaskError)
    assert type(result.result).__name__ == "GhostError"
    assert "GhostError" in result.traceback


def test_get_is_woken_by_the_task_finishing_not_by_its_interval(worker):
    # A reader that only polled, every ``interval``, could not see the result before
    # the 30 s timeout; the NOTIFY sent when the task ends wakes it long before.
    result = sleep.delay(0.5)
    started = time.monotonic()
    assert result.get(timeout=30, interval=60) == 0.5
    assert time.monotonic() - started < 15


def test_get_of_an_already_finished_result_returns_at_once(worker):
    result = add.delay(1, 2)
    assert result.get(timeout=15) == 3
    assert AsyncResult(result.id).get(timeout=0.1) == 3


def test_many_waiters_each_get_their_own_result(worker):
    results = [add.delay(i, i) for i in range(10)]
    assert [r.get(timeout=20) for r in results] == [2 * i for i in range(10)]


# --- forget -----------------------------------------------------------------------------


def test_forget_makes_the_result_pending(worker):
    result = add.delay(2, 2)
    assert result.get(timeout=15) == 4
    result.forget()
    assert result.state == states.PENDING
    assert result.result is None
    assert not TaskRow.objects.filter(id=result.id).exists()
    assert AsyncResult(result.id).state == states.PENDING


# --- what a result tells -----------------------------------------------------------------


def test_result_metadata(worker):
    before = datetime.datetime.now(datetime.timezone.utc)
    result = add.delay(2, 3)
    assert result.get(timeout=15) == 5
    after = datetime.datetime.now(datetime.timezone.utc)
    fresh = AsyncResult(result.id)
    assert fresh.name == "tests.testapp.tasks.add"
    assert fresh.args == [2, 3]
    assert fresh.kwargs == {}
    assert fresh.retries == 0
    assert fresh.worker == "w1@test"
    assert fresh.queue == "default"
    assert fresh.traceback is None
    for value in (fresh.date_created, fresh.date_started, fresh.date_done):
        assert value is not None and value.tzinfo is not None
    assert before <= fresh.date_created <= fresh.date_started <= fresh.date_done <= after


def test_pending_result_metadata():
    result = add.apply_async((1, 2), queue="later", countdown=60)
    assert result.state == states.PENDING
    assert result.queue == "later"
    assert result.date_created is not None
    assert result.date_started is None
    assert result.date_done is None
    assert result.worker is None


def test_children_and_parent(worker):
    parent = spawn_child.delay(5)
    child_id = parent.get(timeout=15)
    children = parent.children
    assert [c.id for c in children] == [child_id]
    child = children[0]
    assert child.get(timeout=15) == 6
    assert child.parent is not None
    assert child.parent.id == parent.id
    assert parent.parent is None
