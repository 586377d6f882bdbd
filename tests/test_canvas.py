"""Canvas: signatures, chain, group, chord and GroupResult, with real workers.

Every wait is bounded. Worker tests share one shape: send, then ``get(timeout=...)``.
"""

from __future__ import annotations

import datetime
import decimal
import importlib
import json
import os
import subprocess
import sys
import uuid
from typing import Any

import psycopg
import pytest
from django.db import connections, transaction

import djq
from djq import (
    GroupResult,
    broker,
    chain,
    chord,
    control,
    group,
    serialization,
    signature,
)
from djq.exceptions import (
    ChordError,
    DuplicateTaskError,
    TaskRevokedError,
    TimeoutError,
)
from djq.db import open_connection
from djq.models import Chord, SavedGroup, Task
from djq.status import Status
from tests.conftest import ROOT, wait_for
from tests.testapp import tasks as t
from tests.testapp.models import SideEffect

DB = pytest.mark.django_db(transaction=True)


def row(result: Any) -> Task:
    return Task.objects.get(id=result.id)


# --- signatures, without a database -----------------------------------------------------


def test_json_round_trip_keeps_each_class() -> None:
    canvas = chain(
        t.add.s(1, 1),
        group(t.mul.s(2), chain(t.mul.s(3), t.add.s(1)).set(queue="q")),
        t.tsum.s(10).set(countdown=3),
        chord([t.add.si(1, 2)], t.tsum.s()),
    )
    canvas.link_error(t.errback_one.s())
    text = serialization.dumps(canvas)
    back = signature(serialization.loads(text))
    assert isinstance(back, chain)
    assert back == canvas
    assert serialization.dumps(back) == text
    # chain(..., group, task) became a chord, and what followed the chord went into its
    # body, as in Celery
    first, second = back.tasks
    assert type(first) is djq.Signature and first.args == [1, 1]
    assert first.options["link_error"] == [t.errback_one.s()]
    assert isinstance(second, chord) and isinstance(second.header, group)
    assert isinstance(second.tasks[1], chain) and second.tasks[1].options == {"queue": "q"}
    body = second.body
    assert isinstance(body, chain) and body.tasks[0].options["countdown"] == 3
    assert isinstance(body.tasks[1], chord) and body.tasks[1].tasks[0].immutable
    # a signature travels as a task argument and comes back as itself
    assert signature(json.loads(json.dumps({"s": canvas}))["s"]) == canvas


def test_or_builds_chains_and_upgrades_as_celery() -> None:
    a, b, c = t.add.s(1, 1), t.mul.s(2), t.add.s(3)
    ab = a | b
    assert isinstance(ab, chain) and ab.tasks == [a, b]
    abc = ab | c
    assert isinstance(abc, chain) and abc.tasks == [a, b, c] and ab.tasks == [a, b]
    assert (a | (b | c)).tasks == [a, b, c]
    assert ((a | b) | (b | c)).tasks == [a, b, b, c]
    g = group(t.add.s(1, 1), t.add.s(2, 2))
    upgraded = g | c
    assert isinstance(upgraded, chord) and upgraded.body == c and upgraded.tasks == g.tasks
    assert isinstance(chain(a, g), chain) and isinstance(chain(a, g).tasks[1], group)
    ch = chain(a, g, c).tasks
    assert len(ch) == 2 and isinstance(ch[1], chord) and ch[1].body == c
    into_body = chord(g, b) | c
    assert isinstance(into_body, chord) and into_body.body == chain(b, c)
    assert (a | group(b)).tasks == [a, b]  # a group of one is its task


def test_clone_set_link_on_error_partials() -> None:
    s = t.add.s(2)
    clone = s.clone(args=(4,), kwargs={"y": 1}, queue="q")
    assert clone.args == [4, 2] and clone.kwargs == {"y": 1} and clone.options == {"queue": "q"}
    assert s.args == [2] and s.options == {}
    imm = t.add.si(1, 2)
    assert imm.clone(args=(9,)).args == [1, 2]
    assert s.set(priority=3) is s and s.options == {"priority": 3}
    cb = t.noop.s()
    assert s.link(cb) is cb and s.link(cb) is cb and s.options["link"] == [cb]
    eb = t.errback_one.s()
    assert s.on_error(eb) is s and s.link_error(eb) is eb and s.options["link_error"] == [eb]
    assert s.flatten_links() == [s, cb]
    deep = s.clone()
    deep["options"]["link"].append(t.add.s(0))
    assert s.options["link"] == [cb]
    # canvases: chain.link -> last task, group.link -> first task (immutable),
    # chain/group.link_error -> every task, chord.link -> body
    c = chain(t.add.s(1, 1), t.mul.s(2))
    c.link(cb)
    assert "link" not in c.tasks[0].options and c.tasks[1].options["link"] == [cb]
    c.link_error(eb)
    assert all(step.options["link_error"] == [eb] for step in c.tasks)
    g = group(t.add.s(1, 1), t.add.s(2, 2))
    g.link(t.noop.s())
    assert g.tasks[0].options["link"][0].immutable and "link" not in g.tasks[1].options
    ch = chord([t.add.s(1, 1)], t.tsum.s())
    ch.link(cb)
    assert ch.body is not None and ch.body.options["link"] == [cb]
    # a canvas's own partial args go first to its first tasks, after those given at send
    assert chain(t.add.s(1)).clone(args=(5,))["args"] == [5]


def test_freeze_fixes_ids_and_parents() -> None:
    c = chain(t.add.s(1, 1), group(t.mul.s(2), t.mul.s(3)), t.tsum.s())
    result = c.freeze()
    assert c.freeze().id == result.id  # frozen once
    header = result.parent
    assert isinstance(header, GroupResult) and len(header.results) == 2
    assert header.parent.id == c.tasks[0].id
    g = group(t.add.s(1, 1), t.add.s(2, 2))
    gr = g.freeze()
    assert gr.id == g.id and [r.id for r in gr.results] == [s.id for s in g.tasks]


# --- sending: rows, one round trip, transactions ---------------------------------------


@DB
def test_a_chord_of_1000_is_one_statement(monkeypatch: pytest.MonkeyPatch) -> None:
    connections["default"].ensure_connection()
    executed: list[str] = []
    original = psycopg.Cursor.execute

    def counting(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        executed.append(str(query)[:60])
        return original(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", counting)
    result = chord((t.add.s(i, i) for i in range(1000)), t.tsum.s()).apply_async()
    monkeypatch.undo()
    assert len(executed) == 1, executed
    header = result.parent
    assert Task.objects.filter(status=broker.WAITING, group_id=header.id).count() == 1000
    callback = row(result)
    assert callback.status == broker.DEFERRED and str(callback.waiting_on) == header.id
    stored = Chord.objects.get(group_id=header.id)
    assert stored.remaining == 1000 and [str(m) for m in stored.members] == [
        r.id for r in header.results]
    assert str(stored.callback_id) == result.id


@DB
def test_rows_of_a_chain_deferred_with_parents() -> None:
    result = (t.add.s(2, 2) | t.mul.s(8) | t.add.si(1, 1)).apply_async(countdown=0)
    third = row(result)
    second = row(result.parent)
    first = row(result.parent.parent)
    assert (first.status, second.status, third.status) == (
        broker.WAITING, broker.DEFERRED, broker.DEFERRED)
    assert second.waiting_on == first.id and third.waiting_on == second.id
    assert second.parent_id == first.id and third.parent_id == second.id
    assert {first.root_id, second.root_id, third.root_id} == {first.id}
    assert json.loads(second.args) == [8]  # the result comes first, when it exists
    assert result.state == djq.states.PENDING
    assert [c.id for c in djq.AsyncResult(first.id).children] == [str(second.id)]
    # the flags the canvas trigger reads are a column of their own; the options keep
    # only what the worker reads (a waited-on result is kept)
    assert (first.canvas, second.canvas, third.canvas) == (
        {"immutable": False}, {"immutable": False}, {"immutable": True})
    assert json.loads(first.options)["canvas"] == {"keep_result": True}
    assert "canvas" not in json.loads(third.options)


@DB
def test_rows_written_with_the_flags_of_canvas_v1_still_move_on(start_worker: Any) -> None:
    # Rolling upgrade: rows sent by djq before migration 0012 carry their flags as the
    # prefix of their options, and no column. Canvas v2 still reads them, and the
    # migration's backfill gives rows in flight their column.
    result = chain(t.add.s(1, 1), t.mul.s(10).set(countdown=1), t.add.si(5, 5)).apply_async()
    first, second, third = result.parent.parent.id, result.parent.id, result.id
    legacy = {
        first: '{"canvas":{"immutable":false,"keep_result":true}}',
        second: '{"canvas":{"immutable":false,"countdown":1.0,"keep_result":true}}',
        third: '{"canvas":{"immutable":true,"keep_result":false}}',
    }
    for task_id, options in legacy.items():
        Task.objects.filter(id=task_id).update(canvas=None, options=options)
    backfill = importlib.import_module("djq.migrations.0012_canvas_v2").BACKFILL
    with connections["default"].cursor() as cursor:
        cursor.execute(backfill + " AND id = %s", [second])
    assert Task.objects.get(id=second).canvas == {"immutable": False, "countdown": 1.0}
    start_worker()
    assert result.get(timeout=15) == 10
    assert result.parent.get(timeout=5) == 20  # the previous result was prepended
    assert row(result.parent).date_started - row(result.parent.parent).date_done >= (
        datetime.timedelta(seconds=0.9))  # and its countdown counted from then


@DB
def test_purge_takes_what_waits_on_purged_rows_with_them() -> None:
    # With no worker: a chain's later steps and a chord's callback wait (DEFERRED) on
    # rows that purge deletes. They could never run; purge takes them too, as Celery's
    # purge takes a chain with its first message.
    chained = (t.add.s(1, 1) | t.mul.s(2) | t.add.s(3)).apply_async(queue="purged")
    chorded = chord([t.add.s(1, 1), t.add.s(2, 2)], t.tsum.s()).apply_async(queue="purged")
    elsewhere = (t.add.s(5, 5) | t.mul.s(2)).apply_async(queue="kept")
    assert Task.objects.filter(status=broker.DEFERRED).count() == 4
    assert Chord.objects.count() == 1

    assert control.purge(["purged"]) == 3  # the waiting rows: the messages
    assert set(Task.objects.values_list("id", flat=True)) == {
        uuid.UUID(str(elsewhere.id)), uuid.UUID(str(elsewhere.parent.id))}
    assert not Chord.objects.exists()
    for result in (chained, chained.parent, chorded, *chorded.parent.results):
        assert result.state == djq.states.PENDING
    assert row(elsewhere).status == broker.DEFERRED  # another queue: untouched


@DB
def test_retrying_an_ended_member_of_a_waiting_chord_counts_it_once(worker: Any) -> None:
    result = chord([t.add.s(1, 1), t.sleep.s(3)], t.tsum.s()).apply_async()
    quick = result.parent.results[0]
    assert quick.get(timeout=20) == 2
    control.retry(quick.id)  # while the sleeper still runs
    wait_for(lambda: quick.ready(), timeout=20, message="the retried member to end again")
    # Counted twice, it would have started the callback without the sleeper's result.
    assert result.get(timeout=20) == 5
    assert Chord.objects.get(group_id=result.parent.id).remaining == 0


@DB
def test_a_rolled_back_canvas_leaves_nothing() -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        chord([t.add.s(1, 1), t.add.s(2, 2)], t.tsum.s()).apply_async()
        raise RuntimeError("rollback")
    assert not Task.objects.exists() and not Chord.objects.exists()


@DB
def test_bad_arguments_fail_before_anything_is_stored() -> None:
    with pytest.raises(TypeError):
        chain(t.add.s(1, 1), t.add.s(1, 2, 3)).apply_async()
    with pytest.raises(djq.exceptions.EncodeError):
        group(t.add.s(1, 1), t.identity.s(object())).apply_async()
    frozen = t.add.s(1, 1)
    frozen.freeze()
    with pytest.raises(ValueError):
        group(frozen, frozen).apply_async()
    assert not Task.objects.exists()
    done = t.add.s(1, 1).freeze()
    chain(t.add.s(1, 1).set(task_id=done.id), t.add.s(1)).apply_async()
    with pytest.raises(DuplicateTaskError):
        chain(t.add.s(1, 1).set(task_id=done.id), t.add.s(1)).apply_async()
    assert Task.objects.count() == 2


# --- a large plain group: one setup shared by its members, its rows sent by COPY --------

# What a row holds besides its own id and the time it was sent.
_CONTENT = ("name", "state", "status", "queue", "priority", "args", "kwargs", "options",
            "retries", "eta", "parent_id", "waiting_on")


def _sent(canvas: Any, *args: Any, **options: Any) -> list[tuple[Any, ...]]:
    """Send a group; per member (in order): its row's content, how its ids and times
    relate, and the headers its before_task_publish signal carried (without its ids)."""
    headers: list[dict[str, Any]] = []

    def before(sender: Any = None, **kwargs: Any) -> None:
        headers.append(kwargs["headers"])

    djq.signals.before_task_publish.connect(before)
    try:
        result = canvas.apply_async(*args, **options)
    finally:
        djq.signals.before_task_publish.disconnect(before)
    ids = [r.id for r in result.results]
    stored = {str(r["id"]): r for r in Task.objects.filter(id__in=ids).values()}
    rows = [stored[i] for i in ids]
    assert [h["id"] for h in headers] == ids
    return [(
        tuple(r[f] for f in _CONTENT),
        str(r["root_id"]) == ids[0], str(r["group_id"]) == result.id,
        r["run_at"] == r["date_created"], r["expires"] - r["date_created"],
        h["root_id"] == h["id"], h["group"] == result.id,
        {k: v for k, v in h.items() if k not in ("id", "root_id", "group", "expires")},
    ) for r, h in zip(rows, headers, strict=True)]


@DB
def test_a_plain_group_makes_the_rows_of_the_general_path(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def members(general: bool) -> list[Any]:
        sigs = [s for i in range(20) for s in (t.add.s(i), t.echo.s(i, k=i), t.echo.si(i))]
        # An option of its own (group_index changes nothing in the row) sends a member
        # the general way; plain members share one setup per task.
        return [s.clone().set(group_index=i) if general else s for i, s in enumerate(sigs)]

    options = {"queue": "bulk", "priority": 3, "expires": 600, "headers": {"h": 1},
               "link_error": t.identity.s()}
    assert len(members(False)) >= broker._COPY_MIN_ROWS
    plain = _sent(group(members(False)), (7,), **options)
    assert plain == _sent(group(members(True)), (7,), **options)
    monkeypatch.setattr(broker, "_COPY_MIN_ROWS", 10**6)  # one INSERT statement instead
    assert plain == _sent(group(members(False)), (7,), **options)
    content = plain[0][0]
    assert content[_CONTENT.index("args")] == "[7,0]"
    assert content[_CONTENT.index("queue")] == "bulk"


@DB
def test_a_bad_member_of_a_large_group_fails_at_call_time_and_stores_nothing() -> None:
    published: list[Any] = []

    def before(sender: Any = None, **kwargs: Any) -> None:
        published.append(kwargs)

    members = [t.add.s(i, i) for i in range(100)]
    djq.signals.before_task_publish.connect(before)
    try:
        for bad, error in ((t.add.s(1), TypeError), (t.add.s(1, 2, 3), TypeError),
                           (t.identity.s(object()), djq.exceptions.EncodeError)):
            for at in (0, 57, 100):
                with pytest.raises(error):
                    group([*members[:at], bad, *members[at:]]).apply_async()
    finally:
        djq.signals.before_task_publish.disconnect(before)
    assert not published and not Task.objects.exists()


@DB
def test_a_large_canvas_is_stored_all_or_nothing_and_wakes_its_queue() -> None:
    with open_connection() as listener:
        listener.execute(f"LISTEN {broker.ENQUEUE_CHANNEL}")
        done = t.add.s(1, 1).freeze()
        t.add.apply_async((1, 1), task_id=done.id)
        with pytest.raises(DuplicateTaskError):
            group([*(t.add.s(i, i) for i in range(50)),
                   t.add.s(1, 1).set(task_id=done.id)]).apply_async(queue="q1")
        with pytest.raises(RuntimeError), transaction.atomic():
            group(t.add.s(i, i) for i in range(50)).apply_async(queue="q2")
            raise RuntimeError("rollback")
        assert Task.objects.count() == 1
        with transaction.atomic():
            result = chord((t.add.s(i, i) for i in range(50)), t.tsum.s()).apply_async(
                queue="q3")
        assert Task.objects.filter(group_id=result.parent.id).count() == 50
        assert Chord.objects.get(group_id=result.parent.id).remaining == 50
        woken = {n.payload for n in listener.notifies(timeout=1.0)}
    assert "q3" in woken and not woken & {"q1", "q2"}


# --- the database moves canvases on, whatever ends a task (no worker needed) -----------


@DB
def test_revoking_members_fails_the_chord_and_the_rest_of_the_chain() -> None:
    c = chain(chord([t.add.s(1, 1), t.add.s(2, 2)], t.tsum.s()), t.add.s(1))
    result = c.apply_async()
    callback = result.parent
    header = callback.parent
    header.revoke()
    assert header.ready() and not header.successful() and header.completed_count() == 0
    with pytest.raises(ChordError) as info:
        callback.get(timeout=5)
    first = header.results[0].id
    assert str(info.value) == f"Dependency {first} raised TaskRevokedError('revoked')"
    with pytest.raises(ChordError):
        result.get(timeout=5)
    assert row(result).state == djq.states.FAILURE
    assert not Task.objects.filter(status=broker.DEFERRED).exists()
    assert Chord.objects.get(group_id=header.id).remaining == 0


@DB
def test_revoking_a_deferred_step_fails_the_steps_after_it() -> None:
    result = (t.add.s(1, 1) | t.add.s(2) | t.add.s(3)).apply_async()
    result.parent.revoke()
    assert result.parent.state == djq.states.REVOKED
    with pytest.raises(TaskRevokedError):
        result.get(timeout=5)
    assert result.parent.parent.state == djq.states.PENDING  # the first one still waits


@DB
def test_a_deleted_running_row_starts_the_next_step() -> None:
    # How a worker drops an ignored result: the row goes while running.
    result = (t.add.s(1, 1) | t.add.s(1)).apply_async()
    with connections["default"].cursor() as cursor:
        cursor.execute("UPDATE djq_task SET status = %s WHERE id = %s",
                       [Status.STARTED, result.parent.id])
        cursor.execute("DELETE FROM djq_task WHERE id = %s", [result.parent.id])
    assert row(result).status == broker.WAITING and json.loads(row(result).args) == [None, 1]


@DB
def test_a_chord_counts_each_member_once() -> None:
    result = chord([t.add.s(1, 1), t.add.s(2, 2)], t.tsum.s(5)).apply_async()
    first, second = result.parent.results
    end = (f"UPDATE djq_task SET status = {Status.DONE}, state = 'SUCCESS', result = %s "
           "WHERE id = %s")
    with connections["default"].cursor() as cursor:
        cursor.execute(end, ["2", first.id])
        assert row(result).status == broker.DEFERRED
        cursor.execute(end, ['{"z":1,"a":[1.50,null]}', second.id])
        assert row(result).status == broker.WAITING
        assert row(result).args == '[[2,{"z":1,"a":[1.50,null]}],5]'
        # re-running a member (djq retry) does not start the callback again
        control.retry(first.id)
        cursor.execute(end, ["2", first.id])
    assert row(result).args == '[[2,{"z":1,"a":[1.50,null]}],5]'
    assert Chord.objects.get(group_id=result.parent.id).remaining == 0


# --- with workers ------------------------------------------------------------------------


@DB
def test_chain_feeds_each_result_to_the_next(worker: Any) -> None:
    result = (t.add.s(2, 2) | t.mul.s(8) | t.add.s(1)).apply_async()
    assert result.get(timeout=15) == 33
    assert result.parent.get(timeout=5) == 32 and result.parent.parent.get(timeout=5) == 4
    # partial args at send time go to the first task; an immutable step ignores results
    result = chain(t.add.s(10), t.add.si(1, 1), t.mul.s(3)).apply_async((5,))
    assert result.get(timeout=15) == 6
    assert row(result.parent.parent).args == "[5,10]"
    # read back later, the chain's links come from the rows
    fresh = djq.AsyncResult(result.id)
    assert fresh.parent.parent.result == 15
    assert [c.id for c in fresh.parent.parent.children] == [fresh.parent.id]


@DB
def test_chain_failure_in_every_position(worker: Any) -> None:
    steps = [t.add.s(1, 1), t.add.s(1), t.add.s(1)]
    for position in range(3):
        tasks = list(steps)
        tasks[position] = t.fail.si(f"boom {position}")
        result = chain(*tasks).apply_async()
        with pytest.raises(ValueError, match=f"boom {position}"):
            result.get(timeout=15)
        ids = [result.parent.parent.id, result.parent.id, result.id]
        states = [djq.AsyncResult(i).state for i in ids]
        assert states == ["SUCCESS"] * position + ["FAILURE"] * (3 - position)
        for i in ids[position + 1:]:  # never ran, failed with the same error
            assert row(djq.AsyncResult(i)).date_started is None
            with pytest.raises(ValueError, match=f"boom {position}"):
                djq.AsyncResult(i).get(timeout=1)


@DB
def test_chain_errback_runs_for_the_failed_task(worker: Any) -> None:
    eb = t.errback_one.s()
    result = chain(t.add.s(1, 1), t.fail.si("x"), t.add.s(1)).on_error(eb).apply_async()
    with pytest.raises(ValueError):
        result.get(timeout=15)
    failed = result.parent.id
    wait_for(lambda: SideEffect.objects.filter(key="errback_one").exists(), 10)
    assert list(SideEffect.objects.values_list("value", flat=True)) == [failed]


@DB
def test_chain_through_ignored_results_and_countdown(worker: Any) -> None:
    result = chain(t.ignored_double.s(2), t.ignored_double.s().set(countdown=1),
                   t.add.s(1)).apply_async()
    assert result.get(timeout=15) == 9
    first, second = row(result.parent.parent), row(result.parent)
    assert (first.result, second.result) == ("4", "8")  # kept: the next step reads them
    # an ignored result with nothing after it is not kept
    alone = chain(t.add.s(1, 1), t.ignored_double.s()).apply_async()
    wait_for(lambda: not Task.objects.filter(id=alone.id).exists(), 10)
    assert second.date_started - first.date_done >= datetime.timedelta(seconds=0.9)


@DB
def test_group_result(worker: Any) -> None:
    g = group(t.add.s(i, i) for i in range(10))
    result = g.apply_async()
    assert isinstance(result, GroupResult) and g.id is None
    assert result.get(timeout=15) == [i * 2 for i in range(10)]
    assert result.ready() and result.successful() and not result.failed()
    assert result.completed_count() == 10 and result.join(timeout=1) == result.get()
    assert {row(r).group_id for r in result.results} == {uuid.UUID(result.id)}
    seen: list[Any] = []
    assert result.join(callback=lambda i, v: seen.append((i, v)), timeout=1) == []
    assert seen == [(r.id, r.result) for r in result.results]

    failing = group(t.add.s(1, 1), t.fail.si("no"), t.add.s(2, 2)).apply_async((), {})
    with pytest.raises(ValueError, match="no"):
        failing.get(timeout=15)
    wait_for(failing.ready, 10)
    assert failing.failed() and not failing.successful() and failing.completed_count() == 2
    values = failing.get(timeout=5, propagate=False)
    assert values[0] == 2 and isinstance(values[1], ValueError) and values[2] == 4

    slow = group(t.sleep.s(5), t.add.s(1, 1)).apply_async()
    with pytest.raises(TimeoutError):
        slow.get(timeout=0.3)
    assert slow.waiting() and not slow.ready()
    slow.revoke(terminate=True)


@DB
def test_chord(worker: Any) -> None:
    header = [t.add.s(i, i) for i in range(5)]
    assert chord(header)(t.tsum.s()).get(timeout=15) == 20
    assert (group(header) | t.tsum.s(100)).delay().get(timeout=15) == 120
    assert chord(header, t.add.si(1, 1)).apply_async().get(timeout=15) == 2
    assert chord([], t.tsum.s()).apply_async().get(timeout=15) == 0
    # results keep their types and key order on the way through PostgreSQL
    values = [{"b": 1, "a": decimal.Decimal("1.5")}, datetime.date(2024, 1, 2), None, "x"]
    result = chord([t.identity.s(v) for v in values], t.identity.s()).apply_async()
    got = result.get(timeout=15)
    assert got == values and list(got[0]) == ["b", "a"]
    parent = djq.AsyncResult(result.id).parent
    assert isinstance(parent, GroupResult) and parent.get(timeout=1) == values


@DB
def test_chord_member_failure_is_a_chord_error(worker: Any) -> None:
    result = chord([t.add.s(1, 1), t.fail_custom.si("member"), t.fail.si("later")],
                   t.chord_record.s("never")).apply_async()
    with pytest.raises(ChordError) as info:
        result.get(timeout=15)
    culprit = result.parent.results[1].id
    assert str(info.value) == f"Dependency {culprit} raised CustomError('member')"
    assert result.parent.completed_count() == 1
    assert not SideEffect.objects.filter(key="never").exists()


@DB
def test_chord_callback_failure(worker: Any) -> None:
    result = chord([t.add.s(1, 1), t.add.s(2, 2)], t.fail.si("callback")).apply_async()
    with pytest.raises(ValueError, match="callback"):
        result.get(timeout=15)
    assert result.parent.successful()


@DB
def test_chain_inside_group_and_chord(worker: Any) -> None:
    g = group(chain(t.add.s(1, 1), t.mul.s(10)), t.add.s(5, 5),
              t.add.s(2, 2) | t.mul.s(10) | t.add.s(1))
    result = g.apply_async()
    assert result.get(timeout=15) == [20, 10, 41]
    assert result.results[0].parent.get(timeout=1) == 2
    assert chord(g.tasks, t.tsum.s()).apply_async().get(timeout=15) == 71
    # a failure early in a member chain reaches the chord through the chain
    failing = chord([t.fail.si("deep") | t.add.s(1), t.add.s(1, 1)], t.tsum.s())
    with pytest.raises(ChordError, match=r"raised ValueError\('deep'\)"):
        failing.apply_async().get(timeout=15)


@DB
def test_group_inside_chain(worker: Any) -> None:
    result = chain(t.add.s(1, 1), group(t.mul.s(2), t.mul.s(3)), t.tsum.s()).apply_async()
    assert result.get(timeout=15) == 10  # 2 -> [4, 6] -> 10
    ending = chain(t.add.s(1, 1), group(t.mul.s(2), t.mul.s(3))).apply_async()
    assert isinstance(ending, GroupResult) and ending.get(timeout=15) == [4, 6]
    assert ending.parent.get(timeout=1) == 2
    two = chain(group(t.add.s(1, 1), t.add.s(2, 2)), group(t.mul.s(1), t.identity.s()),
                t.identity.s()).apply_async()
    assert two.get(timeout=15) == [[2, 4], [2, 4]]
    failing = chain(t.fail.si("first"), group(t.mul.s(2), t.mul.s(3)), t.tsum.s())
    with pytest.raises(ChordError, match=r"raised ValueError\('first'\)"):
        failing.apply_async().get(timeout=15)


@DB
def test_nested_chords(worker: Any) -> None:
    inner = chord([t.add.s(1, 1), t.add.s(2, 2)], t.tsum.s())
    outer = chord([inner, t.add.s(3, 3)], t.tsum.s(1000))
    assert outer.apply_async().get(timeout=15) == 1012
    twice = chain(chord([t.add.s(1, 1), t.add.s(2, 2)], t.tsum.s()),
                  group(t.mul.s(2), t.mul.s(3)), t.tsum.s())
    assert twice.apply_async().get(timeout=15) == 30  # 6 -> [12, 18] -> 30
    body_group = chord([t.add.s(1, 1), t.add.s(2, 2)], group(t.tsum.s(), t.tsum.s(1)))
    assert body_group.apply_async().get(timeout=15) == [6, 7]


@DB
def test_chord_with_1000_members(start_worker: Any) -> None:
    start_worker(concurrency=2)
    result = chord((t.add.s(i, i) for i in range(1000)), t.tsum.s()).apply_async()
    assert result.get(timeout=60) == 999000
    assert result.parent.get(timeout=5) == [i * 2 for i in range(1000)]
    assert result.parent.completed_count() == 1000


@DB
def test_worker_killed_mid_chord_completes_it_once(start_worker: Any) -> None:
    first = start_worker("-n", "doomed@test", concurrency=2)
    result = chord([t.slow_late.s(i, 1.5, "member") for i in range(6)],
                   t.chord_record.s("callback")).apply_async()
    wait_for(lambda: SideEffect.objects.filter(key="member").count() >= 2, 15,
             message="members to start")
    first.kill()
    assert not SideEffect.objects.filter(key="callback").exists()
    start_worker("-n", "survivor@test", concurrency=3)
    assert result.get(timeout=45) == list(range(6))
    assert SideEffect.objects.filter(key="callback").count() == 1
    assert Chord.objects.get(group_id=result.parent.id).remaining == 0
    # the killed members ran again (acks_late); every member counted once
    assert SideEffect.objects.filter(key="member").count() > 6


@DB
def test_group_result_save_and_restore_in_another_process(worker: Any) -> None:
    result = group(t.add.s(1, 1), group(t.add.s(2, 2), t.add.s(3, 3)),
                   chain(t.add.s(4, 4), group(t.mul.s(1), t.mul.s(2)))).apply_async()
    assert result.get(timeout=15) == [2, 4, 6, [8, 16]]  # inner groups are one group
    result.save()
    assert SavedGroup.objects.filter(id=result.id).exists()
    restored = GroupResult.restore(result.id)
    assert restored == result and restored is not None
    script = (
        "import django, sys; django.setup(); from djq import GroupResult; "
        f"g = GroupResult.restore('{result.id}'); "
        "print(g.get(timeout=5), g.completed_count(), [r.id for r in g.results])"
    )
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="tests.settings",
               DJQ_TEST_DATABASE_NAME=connections["default"].settings_dict["NAME"])
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, timeout=60,
                         check=False, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    ids = [str(r.id) for r in result.results]
    assert out.stdout.strip() == f"[2, 4, 6, [8, 16]] 4 {ids}"
    restored.delete()
    assert GroupResult.restore(result.id) is None


@DB
def test_canvas_sent_from_a_task_is_its_child(worker: Any) -> None:
    result = t.spawn_canvas.delay()
    child_id = result.get(timeout=15)
    child = djq.AsyncResult(child_id)
    assert child.get(timeout=15) == 6
    first = child.parent.parent
    assert first.parent is not None and first.parent.id == result.id
    assert row(child).root_id == uuid.UUID(result.id)


def test_eager_mode(settings: Any) -> None:
    settings.DJQ = {**settings.DJQ, "task_always_eager": True}
    assert (t.add.s(2, 2) | t.mul.s(8)).delay().get() == 32
    assert group(t.add.s(i, i) for i in range(3)).delay().get() == [0, 2, 4]
    assert chord([t.add.s(1, 1), t.add.s(2, 2)], t.tsum.s()).delay().get() == 6
    with pytest.raises(ValueError):
        chain(t.fail.si("eager"), t.add.s(1)).delay()
