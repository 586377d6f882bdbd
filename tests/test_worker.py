"""The worker as a user runs it: ``manage.py djq_worker`` subprocesses on the test
database, with their options, pools, signals, shutdown, heartbeat and pruning."""

from __future__ import annotations

import datetime
import signal
import uuid

import pytest
from django.db import connection
from django.utils import timezone

from djq import AsyncResult, states
from djq.broker import CLAIMED, DONE, WAITING
from djq.exceptions import (
    DecodeError,
    MaxRetriesExceededError,
    NotRegistered,
    TaskRevokedError,
    WorkerLostError,
)
from djq.models import Task as TaskRow
from djq.models import Worker as WorkerRow
from tests.conftest import wait_for
from tests.testapp.models import SideEffect
from tests.testapp.receivers import PREFIX
from tests.testapp.tasks import (
    add,
    errback_one,
    errback_three,
    exit_process,
    fail,
    ignored,
    ignored_fail,
    kill_self,
    log_something,
    raise_keyboard_interrupt,
    raise_system_exit,
    record,
    retry_override,
    sleep,
)

pytestmark = pytest.mark.django_db(transaction=True)


def effects(key: str) -> list[SideEffect]:
    return list(SideEffect.objects.filter(key=key).order_by("id"))


def status_of(task_id: str) -> int | None:
    return TaskRow.objects.filter(id=task_id).values_list("status", flat=True).first()


def notify_workers(queue: str = "default") -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify('djq_enqueue', %s)", [queue])


def insert_row(name: str, args: str = "[]", kwargs: str = "{}", notify: bool = True) -> str:
    """A task row written straight into djq_task, as another program might."""
    task_id = uuid.uuid4()
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO djq_task (id, name, state, status, queue, priority, args, kwargs, "
            "options, retries, run_at, date_created) "
            "VALUES (%s, %s, 'PENDING', 0, 'default', 0, %s, %s, '{}', 0, %s, %s)",
            [task_id, name, args, kwargs, now, now],
        )
    if notify:
        notify_workers()
    return str(task_id)


# --- ordering and routing -------------------------------------------------------------


def test_priority_higher_first_then_oldest(start_worker):
    record.apply_async(("order", "low"), priority=0)
    record.apply_async(("order", "mid-old"), priority=5)
    record.apply_async(("order", "negative"), priority=-3)
    record.apply_async(("order", "high"), priority=9)
    record.apply_async(("order", "mid-new"), priority=5)
    last = record.apply_async(("order", "low-new"), priority=0)
    start_worker(pool="solo")  # one at a time, in claim order
    last.get(timeout=15)
    wait_for(lambda: len(effects("order")) == 6, message="all six tasks")
    assert [e.value for e in effects("order")] == [
        "high", "mid-old", "mid-new", "low", "low-new", "negative"]


def test_queues_option_consumes_only_those_queues(start_worker):
    alpha = record.apply_async(("q", "alpha"), queue="alpha")
    beta = record.apply_async(("q", "beta"), queue="beta")
    gamma = record.apply_async(("q", "gamma"), queue="gamma")
    default = record.apply_async(("q", "default"))
    start_worker("-Q", "alpha,beta")
    alpha.get(timeout=15)
    beta.get(timeout=15)
    assert alpha.queue == "alpha"
    assert beta.queue == "beta"
    assert gamma.state == states.PENDING
    assert default.state == states.PENDING
    assert status_of(gamma.id) == WAITING
    assert status_of(default.id) == WAITING
    assert sorted(e.value for e in effects("q")) == ["alpha", "beta"]


def test_countdown_does_not_run_before_it(worker):
    sent_at = timezone.now()
    result = record.apply_async(("countdown", "ran"), countdown=3)
    assert result.state == states.PENDING
    result.get(timeout=15)
    ran = effects("countdown")
    assert len(ran) == 1
    assert (ran[0].created - sent_at).total_seconds() >= 3
    assert (result.date_started - sent_at).total_seconds() >= 3


def test_eta_does_not_run_before_it(worker):
    eta = timezone.now() + datetime.timedelta(seconds=1.5)
    result = record.apply_async(("eta", "ran"), eta=eta)
    result.get(timeout=15)
    assert effects("eta")[0].created >= eta


def test_expired_task_is_revoked_and_never_runs(worker):
    past = record.apply_async(("expired", "past"),
                              expires=timezone.now() - datetime.timedelta(seconds=1))
    with pytest.raises(TaskRevokedError):
        past.get(timeout=15)
    assert past.state == states.REVOKED
    assert isinstance(past.result, TaskRevokedError)
    # Expires before its countdown ends: it expires while it waits.
    late = record.apply_async(("expired", "late"), countdown=1.5, expires=0.5)
    assert isinstance(late.get(timeout=15, propagate=False), TaskRevokedError)
    assert late.state == states.REVOKED
    assert effects("expired") == []
    # An expiry still ahead does not stop it.
    assert record.apply_async(("expired", "fine"), expires=60).get(timeout=15)
    assert [e.value for e in effects("expired")] == ["fine"]


def test_worker_wakes_by_notify_when_work_arrives(start_worker):
    # Polling once a minute: only the NOTIFY sent with the task can wake it in time.
    start_worker(djq={"worker_poll_interval": 60})
    first = add.delay(1, 1)
    assert first.get(timeout=10) == 2
    second = add.delay(2, 2)  # now the worker is idle, waiting
    assert second.get(timeout=10) == 4


def test_worker_polls_for_rows_nobody_announced(start_worker):
    start_worker(djq={"worker_poll_interval": 0.5})
    task_id = insert_row("tests.testapp.tasks.add", args="[5, 5]", notify=False)
    assert AsyncResult(task_id).get(timeout=15) == 10


# --- rows the worker cannot run ----------------------------------------------------------


def test_unregistered_task_fails_with_not_registered_and_worker_goes_on(worker):
    task_id = insert_row("no.such.task", args="[1, 2]")
    result = AsyncResult(task_id)
    with pytest.raises(NotRegistered):
        result.get(timeout=15)
    assert result.state == states.FAILURE
    assert "no.such.task" in str(result.result)
    assert status_of(task_id) == DONE
    assert add.delay(1, 1).get(timeout=15) == 2
    assert worker.proc.poll() is None


@pytest.mark.parametrize("args, kwargs, message", [
    ("this is not json", "{}", "decode"),
    ('{"not": "a list"}', "{}", "list"),
    ("[1, 2]", "[3]", "object"),
])
def test_malformed_payload_fails_with_a_clear_error(worker, args, kwargs, message):
    task_id = insert_row("tests.testapp.tasks.add", args=args, kwargs=kwargs)
    result = AsyncResult(task_id)
    error = result.get(timeout=15, propagate=False)
    assert result.state == states.FAILURE
    assert isinstance(error, DecodeError)
    assert message in str(error).lower()
    assert add.delay(2, 2).get(timeout=15) == 4


# --- nothing a task does stops the worker ------------------------------------------------


def test_system_exit_and_keyboard_interrupt_are_task_failures(worker):
    exited = raise_system_exit.delay()
    interrupted = raise_keyboard_interrupt.delay()
    assert isinstance(exited.get(timeout=15, propagate=False), SystemExit)
    assert isinstance(interrupted.get(timeout=15, propagate=False), KeyboardInterrupt)
    assert exited.state == interrupted.state == states.FAILURE
    assert "SystemExit" in exited.traceback
    assert "KeyboardInterrupt" in interrupted.traceback
    assert add.delay(3, 4).get(timeout=15) == 7
    assert worker.proc.poll() is None


@pytest.mark.parametrize("pool", ["threads", "solo"])
def test_system_exit_does_not_stop_thread_or_solo_workers(start_worker, pool):
    w = start_worker(pool=pool)
    assert isinstance(raise_system_exit.delay().get(timeout=15, propagate=False), SystemExit)
    assert isinstance(raise_keyboard_interrupt.delay().get(timeout=15, propagate=False),
                      KeyboardInterrupt)
    assert add.delay(3, 4).get(timeout=15) == 7
    assert w.proc.poll() is None


@pytest.mark.parametrize("task", [exit_process, kill_self], ids=["os._exit", "SIGKILL"])
def test_process_dying_inside_a_task_is_worker_lost(worker, task):
    result = task.delay()
    with pytest.raises(WorkerLostError):
        result.get(timeout=15)
    assert result.state == states.FAILURE
    # The pool process is replaced and the worker goes on, on both processes.
    assert [add.delay(i, 1).get(timeout=15) for i in range(4)] == [1, 2, 3, 4]
    assert worker.proc.poll() is None


# --- ignore_result -----------------------------------------------------------------------


def gone(task_id: str) -> bool:
    return not TaskRow.objects.filter(id=task_id).exists()


def test_ignore_result_keeps_no_row(worker):
    by_option = ignored.delay(1)
    by_call = add.apply_async((1, 2), ignore_result=True)
    failed = ignored_fail.delay()
    kept = add.delay(1, 1)
    assert kept.get(timeout=15) == 2
    for result in (by_option, by_call, failed):
        wait_for(lambda: gone(result.id), message="the ignored result's row to go")
        assert result.state == states.PENDING


def test_store_errors_even_if_ignored_keeps_failures(start_worker):
    start_worker(djq={"task_store_errors_even_if_ignored": True})
    failed = ignored_fail.delay()
    with pytest.raises(ValueError, match="ignored failure"):
        failed.get(timeout=15)
    assert failed.state == states.FAILURE
    succeeded = ignored.delay(5)
    wait_for(lambda: gone(succeeded.id), message="the ignored success's row to go")
    assert succeeded.state == states.PENDING


def test_task_ignore_result_setting(start_worker):
    start_worker(djq={"task_ignore_result": True})
    result = add.delay(1, 1)
    wait_for(lambda: gone(result.id), message="the result's row to go")
    assert result.state == states.PENDING


# --- pools and processes -----------------------------------------------------------------


@pytest.mark.parametrize("pool", ["prefork", "threads", "solo"])
def test_each_pool_runs_tasks(start_worker, pool):
    w = start_worker(pool=pool, concurrency=2)
    results = [record.delay(f"pool-{pool}", str(i)) for i in range(4)]
    pids = {r.get(timeout=15) for r in results}
    assert fail.delay("in pool").get(timeout=15, propagate=False).args == ("in pool",)
    assert all(r.worker == w.args[w.args.index("-n") + 1] for r in results)
    if pool == "prefork":
        assert w.pid not in pids  # ran in child processes
    else:
        assert pids == {w.pid}  # ran in the worker process itself
    row = WorkerRow.objects.get(pid=w.pid)
    assert row.pool == pool


@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_concurrency_runs_tasks_side_by_side(start_worker, pool):
    start_worker("-c", "2", pool=pool)
    a = sleep.delay(1.5, key="side-a")
    b = sleep.delay(1.5, key="side-b")
    # Both are running at the same time: each started before the other ended.
    wait_for(lambda: SideEffect.objects.filter(value="start").count() == 2,
             message="both tasks to start")
    assert SideEffect.objects.filter(value="end").count() == 0
    a.get(timeout=15)
    b.get(timeout=15)


def test_max_tasks_per_child_recycles_processes(start_worker):
    start_worker("--max-tasks-per-child", "1", concurrency=1)
    pids = [record.delay("recycle", str(i)).get(timeout=15) for i in range(3)]
    assert len(set(pids)) == 3


def test_without_max_tasks_per_child_processes_are_reused(start_worker):
    start_worker(concurrency=1)
    pids = [record.delay("reuse", str(i)).get(timeout=15) for i in range(3)]
    assert len(set(pids)) == 1


def test_worker_name_option(start_worker):
    start_worker("-n", "named-worker@host")
    result = add.delay(1, 1)
    assert result.get(timeout=15) == 2
    assert result.worker == "named-worker@host"


def test_prefetch_claims_concurrency_times_multiplier(start_worker):
    sleeper = sleep.delay(2.0, key="prefetch")
    start_worker("--prefetch-multiplier", "2", concurrency=1)
    wait_for(lambda: effects("prefetch"), message="the sleeper to start")
    queued = [add.delay(i, i) for i in range(4)]
    # One process, multiplier 2: while the sleeper runs (started, so no longer counted
    # as prefetched, as with Celery's early acknowledgement) two more are claimed and
    # the rest wait for later.
    wait_for(lambda: sum(status_of(r.id) == CLAIMED for r in queued) == 2,
             message="two more tasks to be claimed")
    assert sum(status_of(r.id) == WAITING for r in queued) == 2
    sleeper.get(timeout=15)
    assert [r.get(timeout=15) for r in queued] == [0, 2, 4, 6]


def test_task_options_route_to_their_queue(start_worker):
    from tests.testapp.tasks import routed

    result = routed.delay()
    start_worker("-Q", "special")
    assert result.get(timeout=15) == "routed"
    assert result.queue == "special"


def test_rows_and_signatures_name_tasks_the_worker_discovered(worker):
    import djq

    # The worker finds tests/testapp/tasks.py by autodiscovery; rows name tasks only.
    task_id = insert_row("tests.testapp.tasks.add", args="[40, 2]")
    assert AsyncResult(task_id).get(timeout=15) == 42
    assert djq.signature("custom.name").delay().get(timeout=15) == "named"


def test_loglevel_option(start_worker):
    w = start_worker("-l", "WARNING", wait=False)
    wait_for(lambda: WorkerRow.objects.filter(pid=w.pid).exists() or w.proc.poll() is not None,
             message="the worker to start")
    assert add.delay(1, 1).get(timeout=15) == 2
    with pytest.raises(ValueError):
        fail.delay("loud").get(timeout=15)
    wait_for(lambda: "raised unexpected" in w.output(), message="the error to be logged")
    assert "succeeded in" not in w.output()
    assert " received" not in w.output()


def test_receivers_that_raise_never_break_the_worker(start_worker, monkeypatch):
    monkeypatch.setenv("DJQ_TEST_BROKEN_RECEIVERS", "1")
    w = start_worker()
    assert add.delay(2, 2).get(timeout=15) == 4
    with pytest.raises(ValueError):
        fail.delay("still stored").get(timeout=15)
    assert "receiver bug" in w.output()
    assert w.proc.poll() is None


# --- shutdown and heartbeat -------------------------------------------------------------


def test_sigterm_finishes_running_task_and_hands_back_claimed_ones(start_worker):
    w = start_worker(concurrency=1)
    running = sleep.delay(1.5, key="shutdown")
    wait_for(lambda: effects("shutdown"), message="the task to start")
    waiting = [record.delay("after-shutdown", str(i)) for i in range(3)]
    wait_for(lambda: all(status_of(r.id) == CLAIMED for r in waiting),
             message="the worker to claim the waiting tasks")
    assert w.stop(signal.SIGTERM) == 0
    assert running.state == states.SUCCESS
    assert running.result == 1.5
    assert [e.value for e in effects("shutdown")] == ["start", "end"]
    for result in waiting:
        assert status_of(result.id) == WAITING
        assert result.state == states.PENDING
    assert effects("after-shutdown") == []
    assert "Warm shutdown" in w.output()
    # Handed back, they run on the next worker.
    start_worker()
    assert sorted(r.get(timeout=15) is not None for r in waiting) == [True] * 3
    assert len(effects("after-shutdown")) == 3


def test_heartbeat_row(start_worker):
    w = start_worker("-Q", "default,other", concurrency=2)
    row = WorkerRow.objects.get(hostname="w1@test")
    assert row.pid == w.pid
    assert row.pool == "prefork"
    assert row.concurrency == 2
    assert set(row.queues.split(",")) == {"default", "other"}
    assert row.stopped_at is None
    first = row.last_heartbeat
    wait_for(lambda: WorkerRow.objects.get(pk=row.pk).last_heartbeat > first,
             message="a newer heartbeat")
    add.delay(1, 2).get(timeout=15)
    wait_for(lambda: WorkerRow.objects.get(pk=row.pk).processed >= 1,
             message="the processed count")
    assert w.stop(signal.SIGTERM) == 0
    assert WorkerRow.objects.get(pk=row.pk).stopped_at is not None


def test_task_logger_lines_carry_task_name_and_id(worker):
    result = log_something.delay("hello there")
    result.get(timeout=15)
    wait_for(lambda: "task says hello there" in worker.output(), message="the log line")
    line = next(ln for ln in worker.output().splitlines() if "task says hello there" in ln)
    assert "tests.testapp.tasks.log_something" in line
    assert result.id in line
    assert f"Task tests.testapp.tasks.log_something[{result.id}] received" in worker.output()
    assert f"Task tests.testapp.tasks.log_something[{result.id}] succeeded in" in \
        worker.output()


# --- signals in the worker ---------------------------------------------------------------


def signal_values(name: str) -> list[str]:
    return [e.value for e in effects(PREFIX + name)]


def test_worker_sends_task_and_worker_signals(start_worker, monkeypatch):
    monkeypatch.setenv("DJQ_TEST_RECORD_SIGNALS", "1")
    w = start_worker(concurrency=2)
    wait_for(lambda: signal_values("worker_ready") == ["w1@test"], message="worker_ready")
    wait_for(lambda: len(signal_values("worker_process_init")) >= 2,
             message="worker_process_init in each pool process")

    ok = add.delay(2, 3)
    assert ok.get(timeout=15) == 5
    bad = fail.delay("signal")
    with pytest.raises(ValueError):
        bad.get(timeout=15)
    unknown = insert_row("no.such.signal.task")
    with pytest.raises(NotRegistered):
        AsyncResult(unknown).get(timeout=15)
    retried = retry_override.delay("signal-retry")
    with pytest.raises(MaxRetriesExceededError):
        retried.get(timeout=30)
    retry_id = retried.id

    received = signal_values("task_received")
    assert f"{ok.id}|tests.testapp.tasks.add" in received
    assert f"{bad.id}|tests.testapp.tasks.fail" in received
    assert f"{ok.id}|tests.testapp.tasks.add|[2, 3]" in signal_values("task_prerun")
    postrun = signal_values("task_postrun")
    assert f"{ok.id}|SUCCESS" in postrun
    assert f"{bad.id}|FAILURE" in postrun
    assert f"{retry_id}|RETRY" in postrun
    assert f"{ok.id}|5" in signal_values("task_success")
    failures = signal_values("task_failure")
    assert f"{bad.id}|ValueError" in failures
    assert f"{retry_id}|MaxRetriesExceededError" in failures
    assert signal_values("task_retry") == [f"{retry_id}|0"]
    assert signal_values("task_unknown") == [f"{unknown}|no.such.signal.task"]

    assert w.stop(signal.SIGTERM) == 0
    assert signal_values("worker_shutdown") == ["w1@test"]


# --- link and link_error ---------------------------------------------------------------


def test_link_runs_with_the_parent_result(worker):
    parent = add.apply_async((2, 3), link=add.s(10))
    assert parent.get(timeout=15) == 5
    children = wait_for(lambda: parent.children, message="the linked task")
    assert len(children) == 1
    assert children[0].get(timeout=15) == 15
    assert children[0].parent.id == parent.id


def test_link_is_not_run_on_failure(worker):
    parent = fail.apply_async(("no link",), link=record.si("link-not-run"))
    with pytest.raises(ValueError):
        parent.get(timeout=15)
    assert parent.children == []
    assert effects("link-not-run") == []


def test_link_error_with_one_argument_gets_the_parent_id(worker):
    parent = fail.apply_async(("errback",), link_error=errback_one.s())
    with pytest.raises(ValueError):
        parent.get(timeout=15)
    wait_for(lambda: effects("errback_one"), message="the errback")
    assert [e.value for e in effects("errback_one")] == [parent.id]


def test_link_error_with_three_arguments_is_called_in_the_worker(worker):
    parent = fail.apply_async(("errback",), link_error=errback_three.s())
    with pytest.raises(ValueError):
        parent.get(timeout=15)
    # Called in the worker before the parent's failure is stored: no task was sent.
    assert [e.value for e in effects("errback_three")] == [f"{parent.id}|ValueError"]
    assert parent.children == []


def test_link_error_is_not_run_on_success(worker):
    parent = add.apply_async((1, 1), link_error=errback_one.s())
    assert parent.get(timeout=15) == 2
    assert parent.children == []
    assert effects("errback_one") == []


# --- pruning ---------------------------------------------------------------------------


def test_worker_prunes_results_older_than_result_expires(start_worker):
    start_worker(djq={"result_expires": 3600, "worker_prune_interval": 0.5})
    old = add.delay(1, 1)
    fresh = add.delay(2, 2)
    old.get(timeout=15)
    fresh.get(timeout=15)
    waiting = add.apply_async((3, 3), countdown=3600)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE djq_task SET date_done = now() - interval '2 hours' "
                       "WHERE id = %s", [uuid.UUID(old.id)])
        # A waiting row is never pruned, however old.
        cursor.execute("UPDATE djq_task SET date_created = now() - interval '2 hours' "
                       "WHERE id = %s", [uuid.UUID(waiting.id)])
    wait_for(lambda: AsyncResult(old.id).state == states.PENDING, timeout=20,
             message="the old result to be pruned")
    assert not TaskRow.objects.filter(id=old.id).exists()
    assert AsyncResult(fresh.id).state == states.SUCCESS
    assert AsyncResult(fresh.id).result == 4
    assert status_of(waiting.id) == WAITING


def test_start_up_log_lists_the_registered_tasks(worker):
    # As Celery's banner does: "[tasks]" then one "  . name" line per task.
    out = wait_for(lambda: " ready: pool=" in worker.output() and worker.output(),
                   message="the worker's start-up log")
    assert "[tasks]" in out
    assert "  . tests.testapp.tasks.add\n" in out
    assert out.index("[tasks]") < out.index(" ready: pool=")
