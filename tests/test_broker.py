"""The queue's statements against a second connection: claims that race, a finish from
a worker whose lease was taken over, recovery against a cycle in progress; and the
partial indexes the claim, the recovery and the pruning read.

Each test drives :mod:`djq.broker` directly on its own psycopg connections (as workers
do), on committed rows of the test database.
"""

from __future__ import annotations

import os
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from djq import broker, sql, states
from djq.db import open_connection
from djq.exceptions import LeaseLost
from djq.models import Task
from djq.rows import Claimed, Message, Outcome
from djq.status import Status
from tests.conftest import wait_for

pytestmark = [pytest.mark.timeout(60)]
DB = pytest.mark.django_db(transaction=True)

QUEUE = "broker-test"
LEASE = 30.0


def send(n: int) -> list[uuid.UUID]:
    """``n`` committed waiting rows of QUEUE."""
    now = timezone.now()
    messages = [Message(id=uuid.uuid4(), name="tests.testapp.tasks.add", queue=QUEUE,
                        priority=0, args="[1, 1]", kwargs="{}", options="{}", run_at=now,
                        date_created=now) for _ in range(n)]
    assert broker.enqueue(messages) == n
    return [m.id for m in messages]


def register(conn: Any, name: str) -> int:
    return broker.register_worker(conn, f"{name}@test", os.getpid(), "solo", 1, [QUEUE],
                                  "0,0,0", "test")


def claim(conn: Any, worker_id: int, limit: int, start: int = 0,
          outcomes: list[Outcome] | None = None, hold: bool = False) -> list[Claimed]:
    _, claimed = broker.cycle(conn, worker_id, f"{worker_id}@test", outcomes or [], [],
                              [QUEUE], limit, start, broker.Tracking(), LEASE, hold=hold)
    return claimed


def lapse(worker_id: int) -> None:
    """The worker stopped beating a lease ago (as if cut off)."""
    with connection.cursor() as cursor:
        cursor.execute("UPDATE djq_worker SET last_heartbeat = now() - interval '1 hour' "
                       "WHERE id = %s", [worker_id])


def waits_on_a_lock(conn: Any) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                       [conn.info.backend_pid])
        row = cursor.fetchone()
    return row is not None and row[0] == "Lock"


def test_the_statements_take_their_numbers_from_the_one_status() -> None:
    assert sql.query("forget").endswith(f"status = {int(Status.DONE)}")
    assert f"'{states.REVOKED}'" in sql.query("revoke_waiting")
    with pytest.raises(ValueError, match="NO_SUCH_NAME"):
        sql._fill("SELECT {NO_SUCH_NAME}", "test")


# --- races ------------------------------------------------------------------------------

@DB
def test_a_claim_skips_the_rows_another_connection_is_claiming() -> None:
    ids = set(send(10))
    with open_connection() as a, open_connection() as b:
        wa, wb = register(a, "a"), register(b, "b")
        first = claim(a, wa, 6, hold=True)  # its transaction stays open: its rows locked
        second = claim(b, wb, 10)  # SKIP LOCKED: takes the others, never waits
        broker.commit(a)
    got_a, got_b = {c.id for c in first}, {c.id for c in second}
    assert len(got_a) == 6 and len(got_b) == 4
    assert not got_a & got_b and got_a | got_b == ids
    stored = dict(Task.objects.filter(id__in=ids).values_list("id", "claimed_by"))
    assert stored == {**{i: wa for i in got_a}, **{i: wb for i in got_b}}


@DB
def test_two_connections_claiming_at_once_never_get_the_same_row() -> None:
    ids = set(send(60))
    got: dict[str, list[uuid.UUID]] = {"a": [], "b": []}
    ready = threading.Barrier(2)

    def drain(name: str) -> None:
        with open_connection() as conn:
            worker_id = register(conn, name)
            ready.wait(10)
            while rows := claim(conn, worker_id, 3, start=1):
                got[name] += [r.id for r in rows]

    with ThreadPoolExecutor(2) as pool:
        for future in [pool.submit(drain, "a"), pool.submit(drain, "b")]:
            future.result(timeout=30)
    assert len(got["a"]) + len(got["b"]) == len(ids)
    assert set(got["a"]) | set(got["b"]) == ids
    assert not set(got["a"]) & set(got["b"])
    assert not Task.objects.filter(id__in=ids, status=Status.WAITING).exists()


@DB
def test_a_finish_from_a_worker_whose_lease_was_taken_over_writes_nothing() -> None:
    [task_id] = send(1)
    with open_connection() as a, open_connection() as b, open_connection() as rescuer:
        wa = register(a, "a")
        [row] = claim(a, wa, 1, start=1)
        assert row.id == task_id and row.started
        # a stops beating; another worker's recovery declares it dead, takes its row back
        # and runs it again.
        lapse(wa)
        with rescuer.transaction():
            assert broker.expire_workers(rescuer, LEASE) == [(wa, "a@test")]
            assert [o.id for o in broker.orphans(rescuer)] == [task_id]
            assert broker.requeue_orphans(rescuer, [task_id]) == 1
        wb = register(b, "b")
        [again] = claim(b, wb, 1, start=1)
        assert again.id == task_id

        # a comes back and reports its run: refused, by the finish and by the cycle.
        late = Outcome(id=task_id, state=states.SUCCESS, result="2", traceback=None,
                       date_done=timezone.now())
        assert broker.finish(a, wa, [late]) == [late]
        with pytest.raises(LeaseLost):
            claim(a, wa, 1, outcomes=[late])
    stored = Task.objects.get(id=task_id)
    assert (stored.status, stored.claimed_by, stored.result) == (Status.STARTED, wb, None)
    assert stored.state != states.SUCCESS


@DB
def test_recovery_and_a_concurrent_cycle_serialise() -> None:
    ids = send(2)
    with open_connection() as a, open_connection() as rescuer:
        wa = register(a, "a")
        lapse(wa)
        # A cycle in progress (its worker row locked FOR KEY SHARE) is not declared dead
        # half-way: recovery skips it. The cycle renews the lapsed lease.
        assert len(claim(a, wa, 1, hold=True)) == 1
        with rescuer.transaction():
            assert broker.expire_workers(rescuer, LEASE) == []
        broker.commit(a)
        assert Task.objects.filter(claimed_by=wa).count() == 1

        # Recovery in progress (the worker row locked FOR UPDATE): the cycle waits for it,
        # then finds itself dead and claims nothing.
        lapse(wa)
        with ThreadPoolExecutor(1) as pool:
            with rescuer.transaction():
                assert broker.expire_workers(rescuer, LEASE) == [(wa, "a@test")]
                cycle = pool.submit(claim, a, wa, 5)
                wait_for(lambda: waits_on_a_lock(a), 10, message="the cycle to wait")
                assert not cycle.done()
            with pytest.raises(LeaseLost):
                cycle.result(timeout=10)
    # Only the row of the first cycle is claimed; the dead one's cycle took nothing.
    claimed = Task.objects.filter(id__in=ids).exclude(status=Status.WAITING)
    assert list(claimed.values_list("claimed_by", flat=True)) == [wa]


# --- the partial indexes ------------------------------------------------------------------
# With sequential scans priced out, a statement reads the partial index exactly when its
# WHERE clause implies the index's condition (models.Task.Meta.indexes).

def explain(conn: Any, statement: str, params: Any = None) -> str:
    with conn.transaction():
        conn.execute("SET LOCAL enable_seqscan = off")
        return "\n".join(r[0] for r in conn.execute("EXPLAIN " + statement, params))


@DB
def test_recovery_reads_the_in_flight_index() -> None:
    with open_connection() as conn:
        plan = explain(conn, sql.query("orphans"))
    assert "djq_task_inflight" in plan, plan


@DB
def test_pruning_reads_the_done_index() -> None:
    with open_connection() as conn:
        plan = explain(conn, sql.query("prune"),
                       {"shortest": 60.0, "others": 60.0, "failed": 600.0, "batch": 100})
    assert "djq_task_done" in plan, plan


@DB
def test_the_claim_reads_the_ready_index() -> None:
    # The claim runs inside djq_cycle_v3: auto_explain shows the plans of its statements.
    send(3)
    plans: list[str] = []
    with open_connection() as conn:
        try:
            conn.execute("LOAD 'auto_explain'")
        except psycopg.errors.InsufficientPrivilege:
            pytest.skip("LOAD 'auto_explain' needs a superuser")
        worker_id = register(conn, "a")
        conn.add_notice_handler(lambda diag: plans.append(diag.message_primary or ""))
        for setting in ("auto_explain.log_min_duration = 0",
                        "auto_explain.log_nested_statements = on",
                        "auto_explain.log_level = notice", "enable_seqscan = off"):
            conn.execute(f"SET {setting}")
        assert len(claim(conn, worker_id, 3)) == 3
    [plan] = [p for p in plans if "x.queue = q" in p]
    assert "djq_task_ready" in plan, plan
