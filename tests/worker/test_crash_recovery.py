"""A worker killed without warning loses no task: its lease runs out and the others
recover its rows with Celery's semantics."""

from __future__ import annotations

import signal

import pytest

from djq import states
from djq.exceptions import WorkerLostError
from djq.models import Task
from djq.status import Status
from tests.conftest import wait_for
from tests.testapp.models import SideEffect
from tests.testapp.tasks import add, kill_self, kill_self_once, record, sleep, sleep_acks_late

pytestmark = pytest.mark.django_db(transaction=True)


def started(key: str) -> bool:
    return SideEffect.objects.filter(key=key, value="start").exists()


def test_killed_worker_tasks_are_recovered_by_another(start_worker):
    doomed = start_worker("-c", "1", "--prefetch-multiplier", "4")
    long = sleep.delay(30, key="long")
    wait_for(lambda: started("long"), message="the long task to start")
    waiting = [record.delay(f"after-{i}") for i in range(3)]
    wait_for(lambda: Task.objects.filter(status=Status.CLAIMED, worker="w1@test").count() == 3,
             message="the worker to claim the waiting tasks")

    doomed.kill()  # SIGKILL to the whole process group: the machine is gone

    start_worker("-c", "2")
    # Claimed but never started: they run again, on the survivor.
    for result in waiting:
        assert isinstance(result.get(timeout=40), int)
        assert result.worker == "w2@test"
    # Started without acks_late: at most once, so it ends FAILURE with WorkerLostError.
    with pytest.raises(WorkerLostError):
        long.get(timeout=40)
    assert long.state == states.FAILURE
    assert SideEffect.objects.filter(key="long", value="start").count() == 1


def test_started_acks_late_task_runs_again_after_worker_death(start_worker):
    doomed = start_worker("-c", "1")
    result = sleep_acks_late.delay(1.0, key="late")
    wait_for(lambda: started("late"), message="the task to start")
    doomed.kill()
    start_worker("-c", "1")
    assert result.get(timeout=40) == 1.0
    assert SideEffect.objects.filter(key="late", value="start").count() == 2


def test_task_killing_its_own_process_fails_and_the_worker_goes_on(worker):
    result = kill_self.delay()
    with pytest.raises(WorkerLostError) as info:
        result.get(timeout=30)
    assert "signal 9" in str(info.value)
    assert add.delay(2, 2).get(timeout=30) == 4
    assert worker.proc.poll() is None


def test_acks_late_task_killing_its_process_runs_again(worker):
    result = kill_self_once.delay("once")
    assert result.get(timeout=30) == "survived"
    assert SideEffect.objects.filter(key="once").count() == 2


def test_sigkill_of_main_process_only_lets_running_child_finish_and_store(start_worker):
    doomed = start_worker("-c", "1")
    result = sleep.delay(1.5, key="orphan")
    wait_for(lambda: started("orphan"), message="the task to start")
    doomed.send_signal(signal.SIGKILL)  # the main process only; its child lives on
    assert result.get(timeout=30) == 1.5
