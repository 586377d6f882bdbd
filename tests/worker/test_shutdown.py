"""Warm and cold shutdown, as Celery does them."""

from __future__ import annotations

import signal

import pytest

from djq import states
from djq.exceptions import WorkerLostError
from djq.models import Task
from djq.status import Status
from tests.conftest import wait_for
from tests.testapp.models import SideEffect
from tests.testapp.tasks import record, sleep, sleep_acks_late

pytestmark = pytest.mark.django_db(transaction=True)


def status_of(result) -> int:
    return Task.objects.get(id=result.id).status


def started(key: str) -> bool:
    return SideEffect.objects.filter(key=key, value="start").exists()


def test_warm_shutdown_hands_back_claimed_tasks_at_once_and_finishes_running(start_worker):
    worker = start_worker("-c", "1", "--prefetch-multiplier", "4")
    running = sleep.delay(2.0, key="warm")
    wait_for(lambda: started("warm"), message="task to start")
    waiting = [record.delay(f"w{i}") for i in range(3)]
    wait_for(lambda: all(status_of(r) == 1 for r in waiting), message="tasks to be claimed")

    worker.send_signal(signal.SIGTERM)
    # Claimed-but-unstarted rows go back to the queue while the running task still runs.
    wait_for(lambda: all(status_of(r) == 0 for r in waiting), timeout=10,
             message="claimed tasks to be handed back")
    assert status_of(running) == 2
    worker.send_signal(signal.SIGTERM)  # a second SIGTERM keeps the shutdown warm
    assert worker.proc.wait(30) == 0
    assert running.state == states.SUCCESS
    assert SideEffect.objects.filter(key="warm", value="end").exists()
    assert all(r.state == states.PENDING for r in waiting)
    assert "Warm shutdown" in worker.output()


@pytest.mark.parametrize("how", ["sigquit", "double_sigint"])
def test_cold_shutdown_kills_running_tasks(start_worker, how):
    worker = start_worker("-c", "2")
    plain = sleep.delay(30, key="cold")
    late = sleep_acks_late.delay(30, key="cold-late")
    wait_for(lambda: started("cold") and started("cold-late"), message="tasks to start")
    if how == "sigquit":
        worker.send_signal(signal.SIGQUIT)
    else:
        worker.send_signal(signal.SIGINT)
        wait_for(lambda: "Warm shutdown" in worker.output(), message="warm shutdown")
        worker.send_signal(signal.SIGINT)
    worker.proc.wait(30)
    assert "Cold shutdown" in worker.output()
    # Without acks_late the task ends FAILURE with WorkerLostError ...
    with pytest.raises(WorkerLostError):
        plain.get(timeout=10)
    # ... with acks_late it goes back to the queue to run again.
    assert Task.objects.get(id=late.id).status == Status.WAITING
    assert not SideEffect.objects.filter(key="cold", value="end").exists()


def test_max_tasks_per_child_recycles_processes(start_worker):
    start_worker("-c", "1", "--max-tasks-per-child", "2")
    pids = [record.delay(f"r{i}").get(timeout=20) for i in range(6)]
    assert len(set(pids)) == 3


def test_max_memory_per_child_replaces_a_process_after_the_task_that_passed_it(
        start_worker):
    # Any process is past 1 KiB: each task runs to its end, then its process is replaced.
    worker = start_worker("-c", "1", "--max-memory-per-child", "1")
    pids = [record.delay(f"m{i}").get(timeout=20) for i in range(3)]
    assert len(set(pids)) == 3
    assert "exiting after exceeding memory limit" in worker.output()


def test_under_max_memory_per_child_a_process_is_kept(start_worker):
    start_worker("-c", "1", "--max-memory-per-child", str(64 * 1024 * 1024))
    pids = [record.delay(f"k{i}").get(timeout=20) for i in range(3)]
    assert len(set(pids)) == 1


@pytest.mark.parametrize("option", ["--max-memory-per-child", "--max-tasks-per-child"])
def test_recycling_options_are_refused_without_pool_processes(start_worker, option):
    worker = start_worker("-P", "threads", option, "100", wait=False)
    assert worker.proc.wait(60) != 0
    assert f"{option} recycles pool processes" in worker.output()
