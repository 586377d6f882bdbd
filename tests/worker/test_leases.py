"""Leases: a worker cut off from the database longer than ``worker_lease`` is taken over
by the others, and never acts on the lost lease; a database outage longer than the lease
loses nothing; a worker killed between marking a task started and handing it over does
not turn it into a lost task.

Tasks count their completed runs in a file (``count_run``), so the counts hold even while
the database is out of reach. The test settings use a 4 s lease and 0.5 s heartbeats.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from djq import states
from djq.models import Task, Worker
from djq.status import Status
from tests.conftest import wait_for
from tests.testapp.tasks import count_run, count_run_late

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

LEASE = 4.0


def runs(path: Path) -> Counter[str]:
    return Counter(path.read_text().split()) if path.exists() else Counter()


def send_batch(path: Path, prefix: str, n: int, seconds: float) -> tuple[list[str], list[str]]:
    """``n`` tasks, half with acks_late; returns (plain ids, acks_late ids)."""
    once, late = [], []
    for i in range(n):
        if i % 2:
            late.append(count_run_late.delay(str(path), f"{prefix}-late-{i}", seconds).id)
        else:
            once.append(count_run.delay(str(path), f"{prefix}-once-{i}", seconds).id)
    return once, late


def key_of(row: Task) -> str:
    return row.args.split('"')[3]  # ["<path>", "<key>", seconds]


def all_done(timeout: float = 60.0) -> dict[str, Task]:
    wait_for(lambda: not Task.objects.exclude(status=Status.DONE).exists(), timeout,
             message="every task to finish")
    return {str(t.id): t for t in Task.objects.all()}


def live_worker_id(pid: int) -> int:
    return int(Worker.objects.get(pid=pid, stopped_at__isnull=True).id)


def in_flight(worker_id: int) -> set[str]:
    return {str(i) for i in Task.objects.filter(claimed_by=worker_id,
                                                status__in=[Status.CLAIMED, Status.STARTED])
            .values_list("id", flat=True)}


def test_partitioned_worker_is_taken_over_and_never_acts_on_its_lost_lease(
        start_worker, db_proxy, tmp_path):
    path = tmp_path / "runs"
    rescuer = start_worker("-c", "2", "-n", "rescuer@test")
    connected_at = time.monotonic()
    cut_off = start_worker("-c", "2", "-n", "cut@test", proxy=db_proxy)
    old_id = live_worker_id(cut_off.pid)
    # The rescuer recovers others' rows only after a full lease connected.
    time.sleep(max(0.0, LEASE + 0.5 - (time.monotonic() - connected_at)))

    once, late = send_batch(path, "a", 40, 0.3)
    wait_for(lambda: in_flight(old_id), message="the cut-off worker to start tasks")
    db_proxy.cut()
    cut_at = time.monotonic()
    time.sleep(0.5)  # a statement it sent just before the cut ends, one way or the other
    # It can write nothing now: what it holds is exactly what it was running (or had
    # claimed for later).
    lost_candidates = in_flight(old_id)
    cut_db_time = Task.objects.raw("SELECT id, now() AS t FROM djq_task LIMIT 1")[0].t
    assert lost_candidates
    time.sleep(LEASE + 2.5)  # its tasks finish meanwhile; the rescuer takes its rows over
    wait_for(lambda: Worker.objects.get(id=old_id).stopped_at is not None,
             message="the rescuer to declare the cut-off worker dead")
    db_proxy.restore()
    more_once, more_late = send_batch(path, "b", 40, 0.3)
    once += more_once
    late += more_late

    rows = all_done()
    assert time.monotonic() - cut_at > LEASE
    counts = runs(path)
    for task_id in once:
        row = rows[task_id]
        key = key_of(row)
        assert counts[key] <= 1, f"{key} ran {counts[key]} times without acks_late"
        if row.state == states.SUCCESS:
            assert counts[key] == 1
        else:
            # Only a task the worker was running when it was cut off may be stored as
            # lost: nothing claimed or started under its dead lease.
            assert row.state == states.FAILURE and "WorkerLostError" in row.result
            assert task_id in lost_candidates, (key, row.result)
    for task_id in late:
        row = rows[task_id]
        assert row.state == states.SUCCESS, row.result
        assert counts[key_of(row)] >= 1
        if counts[key_of(row)] > 1:  # a re-run only for what it was running when cut off
            assert task_id in lost_candidates
    # No row was claimed under the dead id after the cut.
    assert not Task.objects.filter(claimed_by=old_id, date_claimed__gt=cut_db_time).exists()
    # It said what happened, and serves on under a new id.
    wait_for(lambda: "Continuing as worker id=" in cut_off.output(), 30,
             message="the cut-off worker to start afresh")
    assert live_worker_id(cut_off.pid) != old_id
    assert "Lease of worker id=%d was lost" % old_id in cut_off.output()
    cut_off.stop()
    rescuer.stop()


def test_outage_longer_than_the_lease_loses_nothing(start_worker, db_proxy, tmp_path):
    path = tmp_path / "runs"
    first = start_worker("-c", "2", "-n", "first@test", proxy=db_proxy)
    second = start_worker("-c", "2", "-n", "second@test", proxy=db_proxy)
    once, late = send_batch(path, "o", 8, 3.0)
    ids = {live_worker_id(first.pid), live_worker_id(second.pid)}
    wait_for(lambda: sum(len(in_flight(i)) for i in ids) >= 4,
             message="both workers to run tasks")
    time.sleep(LEASE + 0.5)  # each has been connected a full lease: recovery is armed
    db_proxy.cut()  # the database is gone for every worker, longer than the lease
    time.sleep(LEASE + 2.5)
    db_proxy.restore()

    rows = all_done()
    counts = runs(path)
    for task_id in once + late:
        row = rows[task_id]
        assert row.state == states.SUCCESS, row.result
        assert counts[key_of(row)] == 1, (key_of(row), counts[key_of(row)])
    # Both kept their leases: each renewed before anyone recovered anything.
    assert {live_worker_id(first.pid), live_worker_id(second.pid)} == ids
    assert "Recovered tasks of lost workers" not in first.output() + second.output()
    first.stop()
    second.stop()


def test_sigterm_during_an_outage_shuts_down_warm_and_stores_when_it_can(
        start_worker, db_proxy, tmp_path):
    path = tmp_path / "runs"
    worker = start_worker("-c", "2", proxy=db_proxy)
    running = count_run.delay(str(path), "sigterm", 1.0)
    wait_for(lambda: running.state == states.STARTED or running.date_started is not None,
             message="the task to start")
    db_proxy.cut()
    worker.send_signal(signal.SIGTERM)
    # The warm shutdown starts at once: the task finishes, then the worker waits (up to a
    # lease) for the database to store its outcome.
    wait_for(lambda: "Database unavailable at shutdown" in worker.output(), 15,
             message="the worker to wait for the database at shutdown")
    assert runs(path)["sigterm"] == 1
    db_proxy.restore()
    assert worker.proc.wait(LEASE + 10) == 0
    assert running.get(timeout=10) == "sigterm"
    assert running.state == states.SUCCESS


def test_sigterm_during_an_outage_exits_after_a_bounded_wait(start_worker, db_proxy,
                                                             tmp_path):
    path = tmp_path / "runs"
    worker = start_worker("-c", "2", proxy=db_proxy)
    running = count_run_late.delay(str(path), "left", 0.5)
    wait_for(lambda: running.date_started is not None, message="the task to start")
    db_proxy.cut()
    signalled = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    assert worker.proc.wait(LEASE + 15) == 0
    assert time.monotonic() - signalled < LEASE + 15
    assert "other workers will recover those tasks" in worker.output()
    db_proxy.restore()
    # Its outcome was never stored; a live worker recovers the row (acks_late: runs again).
    start_worker("-c", "1", "-n", "after@test")
    assert running.get(timeout=30) == "left"
    assert runs(path)["left"] == 2


@pytest.mark.parametrize("failpoint, left", [
    ("before-handover", 0),  # started, uncommitted, no process has it: rolled back
    ("before-commit", 0),  # processes hold it, uncommitted: rolled back, they drop it
    ("before-go", 2),  # committed, held, not released: the holding process runs it
])
def test_main_process_killed_while_handing_a_task_over_runs_it_exactly_once(
        start_worker, tmp_path, failpoint, left):
    path = tmp_path / "runs"
    doomed = start_worker("-c", "2", "-n", "doomed@test", env={"DJQ_FAILPOINTS": failpoint})
    result = count_run.delay(str(path), "handover", 0.0)
    wait_for(lambda: doomed.proc.poll() is not None, message="the worker to kill itself")
    assert doomed.proc.returncode == -signal.SIGKILL
    if left == 0:
        # Never started: waiting for the next worker, not lost.
        wait_for(lambda: Task.objects.get(id=result.id).status == Status.WAITING,
                 message="the row to be waiting again")
        assert not path.exists()
        start_worker("-c", "1", "-n", "next@test")
    assert result.get(timeout=30) == "handover"
    assert result.state == states.SUCCESS
    assert runs(path)["handover"] == 1
    assert "WorkerLostError" not in (Task.objects.get(id=result.id).result or "")


@pytest.mark.parametrize("failpoint, committed", [
    ("before-handover@2", False),  # claimed, no process has it yet
    ("before-commit@2", False),  # its process holds it; the statement never ran
    ("before-go@2", True),  # started (one statement, committed), held, not released
])
def test_main_process_killed_handing_over_a_buffered_task_runs_it_exactly_once(
        start_worker, tmp_path, failpoint, committed):
    """The second hand-over is of a row claimed earlier (the buffer): it goes to its
    process before the statement that starts it."""
    path = tmp_path / "runs"
    first = count_run.delay(str(path), "first", 0.5)
    buffered = count_run.delay(str(path), "buffered", 0.0)
    doomed = start_worker("-c", "1", "-n", "doomed@test", env={"DJQ_FAILPOINTS": failpoint})
    wait_for(lambda: doomed.proc.poll() is not None, message="the worker to kill itself")
    assert doomed.proc.returncode == -signal.SIGKILL
    assert runs(path)["first"] == 1  # the first hand-over went through
    if not committed:
        assert runs(path)["buffered"] == 0
    start_worker("-c", "1", "-n", "next@test")
    assert buffered.get(timeout=40) == "buffered"
    assert runs(path)["buffered"] == 1
    wait_for(lambda: Task.objects.get(id=first.id).state in states.READY_STATES,
             timeout=40, message="the first task to end")
    assert runs(path)["first"] == 1
    # Its outcome went with the worker unless the statement that started the second
    # one (and wrote it) committed.
    assert Task.objects.get(id=first.id).state == (
        states.SUCCESS if committed else states.FAILURE)


def test_rows_of_a_worker_without_a_row_are_recovered(start_worker, tmp_path):
    from django.db import connection

    path = tmp_path / "runs"
    result = count_run.delay(str(path), "orphan", 0.0)
    ghost = 987654321  # no djq_worker row has this id
    with connection.cursor() as cursor:
        cursor.execute("UPDATE djq_task SET status = %s, claimed_by = %s, worker = 'ghost', "
                       "date_claimed = now() WHERE id = %s", [Status.CLAIMED, ghost, result.id])
    start_worker("-c", "1")
    assert result.get(timeout=30) == "orphan"
    assert runs(path)["orphan"] == 1
