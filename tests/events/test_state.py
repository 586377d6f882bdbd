"""``State``: Celery's cluster state fed by events, bounded, and started from the database."""

from __future__ import annotations

import datetime
import threading
import time
import uuid
from typing import Any

import pytest
from django.utils import timezone

from djq import states
from djq.events.state import State
from djq.models import Task as TaskRow
from djq.models import Worker as WorkerRow
from djq.status import Status
from tests.testapp.tasks import add, sleep


def ev(type_: str, **fields: Any) -> dict[str, Any]:
    now = time.time()
    fields.setdefault("hostname", "w1@test")
    fields.setdefault("timestamp", now)
    fields.setdefault("local_received", now)
    fields.setdefault("clock", 1)
    fields.setdefault("utcoffset", 0)
    fields.setdefault("pid", 1234)
    return {"type": type_, **fields}


def task_events(uuid_: str, *kinds: str, **extra: Any) -> list[dict[str, Any]]:
    out = []
    for clock, kind in enumerate(kinds, start=1):
        fields: dict[str, Any] = {"uuid": uuid_, "clock": clock}
        if kind == "received":
            fields.update(name="app.add", args="[2,3]", kwargs="{}", retries=0,
                          root_id=uuid_, parent_id=None, eta=None, expires=None)
        elif kind == "succeeded":
            fields.update(result="5", runtime=0.25)
        elif kind in ("failed", "retried"):
            fields.update(exception="ValueError('boom')", traceback="Traceback ...")
        elif kind == "revoked":
            fields.update(terminated=True, signum=15, expired=False)
        fields.update(extra)
        out.append(ev(f"task-{kind}", **fields))
    return out


def test_a_task_through_its_events():
    state = State()
    tid = str(uuid.uuid4())
    for e in task_events(tid, "received", "started", "succeeded"):
        state.event(e)
    task = state.tasks[tid]
    assert task.state == states.SUCCESS
    assert (task.name, task.args, task.kwargs, task.result, task.runtime) == (
        "app.add", "[2,3]", "{}", "5", 0.25)
    assert task.received and task.started and task.succeeded
    assert task.worker is state.workers["w1@test"]
    assert task.ready
    assert state.event_count == 3
    assert state.task_count == 1  # Celery counts received tasks
    info = task.as_dict()
    assert info["worker"] == "w1@test" and info["state"] == states.SUCCESS


def test_failure_and_retry_fields():
    state = State()
    tid = str(uuid.uuid4())
    for e in task_events(tid, "received", "started", "retried"):
        state.event(e)
    task = state.tasks[tid]
    assert task.state == states.RETRY and task.exception == "ValueError('boom')"
    for e in task_events(tid, "started", "failed"):
        state.event(e)
    assert task.state == states.FAILURE and task.traceback == "Traceback ..."
    assert task.retried and task.failed


def test_events_out_of_order_never_move_the_state_back():
    state = State()
    tid = str(uuid.uuid4())
    succeeded, = task_events(tid, "succeeded")
    started, = task_events(tid, "started")
    received, = task_events(tid, "received")
    state.event(succeeded)
    state.event(received)  # late: only fills in the fields RECEIVED may merge
    state.event(started)
    task = state.tasks[tid]
    assert task.state == states.SUCCESS
    assert task.name == "app.add" and task.args == "[2,3]"
    assert task.result == "5"
    # A retry always applies, whatever came before (Celery's rule).
    retried, = task_events(tid, "retried")
    state.event(retried)
    assert task.state == states.RETRY


def test_revoked_and_custom_states():
    state = State()
    tid = str(uuid.uuid4())
    for e in task_events(tid, "received", "started", "revoked"):
        state.event(e)
    assert state.tasks[tid].state == states.REVOKED and state.tasks[tid].ready
    other = str(uuid.uuid4())
    state.event(ev("task-progress", uuid=other))
    assert state.tasks[other].state == "PROGRESS"


def test_workers_online_heartbeat_offline():
    state = State()
    joined, left = [], []
    state.on_node_join, state.on_node_leave = joined.append, left.append
    state.event(ev("worker-online", freq=2.0, active=0, processed=0, loadavg=[0.1, 0.2, 0.3],
                   sw_ident="py-djq", sw_ver="0.1.0", sw_sys="Linux"))
    worker = state.workers["w1@test"]
    assert worker.alive and worker.status_string == "ONLINE" and joined == [worker]
    for i in range(6):
        state.event(ev("worker-heartbeat", freq=2.0, active=1, processed=i))
    assert len(worker.heartbeats) == worker.heartbeat_max == 4
    assert (worker.processed, worker.active, worker.freq) == (5, 1, 2.0)
    assert worker.loadavg == [0.1, 0.2, 0.3] and worker.sw_ident == "py-djq"
    state.event(ev("worker-offline", freq=2.0))
    assert not worker.alive and left == [worker]
    assert state.alive_workers() == []
    # A worker last heard of longer ago than twice its frequency is not alive.
    old = time.time() - 10
    state.event(ev("worker-heartbeat", hostname="w2@test", freq=2.0, timestamp=old,
                   local_received=old))
    assert not state.workers["w2@test"].alive


def test_clear_keeps_unfinished_tasks_and_resets_counts():
    state = State()
    done, running = str(uuid.uuid4()), str(uuid.uuid4())
    for e in task_events(done, "received", "started", "succeeded"):
        state.event(e)
    for e in task_events(running, "received", "started"):
        state.event(e)
    state.clear()
    assert list(state.tasks) == [running]
    assert state.event_count == 0 and state.task_count == 0
    assert state.workers == {}
    state.clear(ready=False)
    assert state.tasks == {}


def test_freeze_while_blocks_events_and_clear_after():
    state = State()
    started = threading.Event()
    applied = threading.Event()

    def frozen() -> int:
        started.set()
        thread = threading.Thread(target=lambda: (state.event(ev("worker-online")),
                                                  applied.set()))
        thread.start()
        time.sleep(0.2)
        seen = applied.is_set()
        assert not seen, "an event was applied while the state was frozen"
        return 42

    tid = str(uuid.uuid4())
    for e in task_events(tid, "received", "succeeded"):
        state.event(e)
    assert state.freeze_while(frozen, clear_after=True) == 42
    assert applied.wait(5)
    assert tid not in state.tasks  # cleared after
    assert "w1@test" in state.workers  # the held-back event came after the clear


def test_tasks_by_time_newest_first():
    state = State()
    ids = [str(uuid.uuid4()) for _ in range(4)]
    base = time.time()
    for i, tid in enumerate(ids):
        state.event(ev("task-received", uuid=tid, name="app.add", timestamp=base + i))
    assert [u for u, _ in state.tasks_by_time()] == list(reversed(ids))
    assert [u for u, _ in state.tasks_by_time(limit=2)] == [ids[3], ids[2]]
    assert [u for u, _ in state.tasks_by_time(reverse=False)] == ids
    assert [u for u, _ in state.tasks_by_type("app.add", limit=1)] == [ids[3]]
    assert len(list(state.tasks_by_worker("w1@test"))) == 4
    assert state.task_types() == ["app.add"]


def test_memory_is_bounded_oldest_finished_dropped_first():
    state = State(max_tasks=3, max_workers=2)
    a, b, c, d, e = (str(uuid.uuid4()) for _ in range(5))
    for e_ in task_events(a, "received", "succeeded"):  # finished first
        state.event(e_)
    state.event(task_events(b, "received")[0])  # unfinished, older than c
    for e_ in task_events(c, "received", "failed"):  # finished second
        state.event(e_)
    state.event(task_events(d, "received")[0])  # a 4th: a (finished longest ago) goes
    assert set(state.tasks) == {b, c, d}
    state.event(task_events(e, "received")[0])  # then c, the other finished one
    assert set(state.tasks) == {b, d, e}
    f = str(uuid.uuid4())
    state.event(task_events(f, "received")[0])  # none finished: the oldest, b
    assert set(state.tasks) == {d, e, f}
    for host in ("a@x", "b@x", "c@x"):
        state.event(ev("worker-heartbeat", hostname=host, freq=2.0))
    assert len(state.workers) == 2 and "a@x" not in state.workers
    # Celery's argument names work too.
    assert State(max_tasks_in_memory=7, max_workers_in_memory=8).max_tasks == 7


@pytest.mark.django_db(transaction=True)
def test_starts_from_the_database_truth():
    now = timezone.now()
    waiting = add.apply_async((1, 2), countdown=60)
    claimed = add.delay(3, 4)
    started = sleep.delay(5)
    done = add.delay(5, 6)
    wid = WorkerRow.objects.create(
        hostname="w9@elsewhere", pid=4242, pool="prefork", concurrency=4, queues="default",
        started_at=now, last_heartbeat=now, processed=12, failed=1, active=1,
        loadavg="0.50,0.25,0.10", sw_ver="0.1.0").id
    WorkerRow.objects.create(
        hostname="gone@elsewhere", pid=1, pool="prefork", concurrency=1, queues="default",
        started_at=now, last_heartbeat=now, stopped_at=now)
    TaskRow.objects.filter(id=claimed.id).update(
        status=Status.CLAIMED, worker="w9@elsewhere", claimed_by=wid, date_claimed=now)
    TaskRow.objects.filter(id=started.id).update(
        status=Status.STARTED, worker="w9@elsewhere", claimed_by=wid, date_claimed=now,
        date_started=now)
    TaskRow.objects.filter(id=done.id).update(
        status=Status.DONE, state=states.SUCCESS, result="11", worker="w9@elsewhere",
        date_started=now, date_done=now + datetime.timedelta(seconds=2))

    state = State.from_database()
    assert state.tasks[str(waiting.id)].state == states.PENDING
    assert state.tasks[str(waiting.id)].eta is not None
    assert state.tasks[str(claimed.id)].state == states.RECEIVED
    running = state.tasks[str(started.id)]
    assert running.state == states.STARTED and running.worker.hostname == "w9@elsewhere"
    assert running.routing_key == "default" and running.args == "[5]"
    assert str(done.id) not in state.tasks  # finished ones only when asked for
    worker = state.workers["w9@elsewhere"]
    assert worker.alive and (worker.pid, worker.processed, worker.active) == (4242, 12, 1)
    assert worker.loadavg == [0.5, 0.25, 0.1]
    assert "gone@elsewhere" not in state.workers

    with_done = State.from_database(finished=10)
    finished = with_done.tasks[str(done.id)]
    assert finished.state == states.SUCCESS and finished.result == "11"
    assert finished.runtime == pytest.approx(2.0)
    # Events go on from there.
    with_done.event(ev("task-succeeded", hostname="w9@elsewhere", uuid=str(started.id),
                       result="5", runtime=5.0))
    assert with_done.tasks[str(started.id)].state == states.SUCCESS
    # Bounded while loading too: the newest unfinished tasks are kept.
    small = State.from_database(max_tasks=2)
    assert len(small.tasks) == 2
