"""Which errbacks a canvas calls, as Celery does, with real workers.

Celery calls the errbacks of the task that failed (a chain's own errbacks are linked to
every step, so they are among them); the steps after it never run and their own errbacks
are not called. A chord callback is the exception: when a member fails, the callback
fails with ``ChordError`` without running, and Celery calls its errbacks with its request
(old style: its id), the ``ChordError`` and no traceback.

Every wait is bounded.
"""

from __future__ import annotations

from typing import Any

import pytest

from djq import chain, chord, group
from djq.exceptions import ChordError
from djq.models import Status, Task
from tests.conftest import wait_for
from tests.testapp import tasks as t
from tests.testapp.models import SideEffect

DB = pytest.mark.django_db(transaction=True)


def settled() -> bool:
    """Nothing left to run or waiting to start (errbacks sent as tasks included)."""
    return not Task.objects.exclude(status=Status.DONE).exists()


def errbacks(key: str) -> list[str]:
    return sorted(SideEffect.objects.filter(key=key).values_list("value", flat=True))


def both(sig: Any) -> Any:
    """``sig`` with an old-style errback (one argument: the id) and a new-style one
    (request, exc, traceback)."""
    return sig.on_error(t.errback_one.s()).on_error(t.errback_three.s())


@DB
def test_a_chord_callback_that_fails_with_chord_error_calls_its_errbacks(worker: Any) -> None:
    failing = [t.add.s(1, 1), t.fail.si("member")]
    for canvas in (
        chord(failing, both(t.tsum.s())),
        chain(group(failing), both(t.tsum.s())),  # group | task is a chord too
    ):
        SideEffect.objects.all().delete()
        result = canvas.apply_async()
        with pytest.raises(ChordError):
            result.get(timeout=15)
        wait_for(lambda: len(errbacks("errback_one")) == 1
                 and len(errbacks("errback_three")) == 1 and settled(), 15,
                 message="the callback's errbacks")
        assert errbacks("errback_one") == [result.id]
        assert errbacks("errback_three") == [f"{result.id}|ChordError"]
        assert Task.objects.get(id=result.id).date_started is None  # it never ran


@DB
def test_a_chord_callback_that_runs_has_its_errbacks_called_once_by_its_worker(
        worker: Any) -> None:
    ok = chord([t.add.s(1, 1), t.add.s(2, 2)], both(t.tsum.s())).apply_async()
    assert ok.get(timeout=15) == 6
    failing = chord([t.add.s(1, 1)], both(t.fail.s())).apply_async()
    with pytest.raises(ValueError):
        failing.get(timeout=15)
    wait_for(lambda: errbacks("errback_one") and errbacks("errback_three") and settled(), 15,
             message="the failed callback's errbacks")
    assert errbacks("errback_one") == [failing.id]
    assert errbacks("errback_three") == [f"{failing.id}|ValueError"]
    # the rows that would have called them had the callbacks not run are gone
    assert not Task.objects.filter(name="djq.chord_errbacks").exists()


@DB
def test_a_failed_chain_step_calls_its_own_errbacks_not_those_of_later_steps(
        worker: Any) -> None:
    result = chain(t.add.s(1, 1), t.fail.si("x"),
                   t.add.s(1).on_error(t.errback_three.s())).on_error(t.errback_one.s())
    sent = result.apply_async()
    with pytest.raises(ValueError):
        sent.get(timeout=15)
    wait_for(lambda: errbacks("errback_one") and settled(), 15,
             message="the chain's errback")
    assert errbacks("errback_one") == [sent.parent.id]  # once, for the step that failed
    assert errbacks("errback_three") == []


@DB
def test_errbacks_of_a_chord_over_a_failing_chain_as_celery_calls_them(worker: Any) -> None:
    # Celery's t/integration test_mutable_errback_called_by_chord_from_chain: a chord's
    # errbacks are its body's. A header chain failing before its end fails the chord: the
    # body's errbacks are called once, for the body.
    steps = (t.identity.si(42), t.fail.s(), t.identity.si(42))
    sig = chord([chain(*steps)], t.identity.s())
    sig.link_error(t.errback_one.s())
    result = sig.apply_async()
    with pytest.raises(ChordError):
        result.get(timeout=15)
    wait_for(lambda: errbacks("errback_one") and settled(), 15, message="the errback")
    assert errbacks("errback_one") == [result.id]
    # A body chain failing before its end: its errbacks (linked to each of its steps)
    # are called once, for the step that failed; not for the step after it, which never
    # ran, nor for its first step (the chord's callback, which ran and succeeded).
    SideEffect.objects.all().delete()
    sig = chord([t.identity.si(42)], chain(*steps))
    sig.link_error(t.errback_one.s())
    result = sig.apply_async()
    with pytest.raises(ValueError):
        result.get(timeout=15)
    wait_for(lambda: errbacks("errback_one") and settled(), 15, message="the errback")
    assert errbacks("errback_one") == [result.parent.id]


# --- results ------------------------------------------------------------------------------


@DB
def test_a_group_at_the_end_of_a_chain_in_a_chord_header_gives_one_result(
        worker: Any) -> None:
    # Celery (t/integration test_nested_chord_group_chain_group_tail): the chain keeps
    # its group's results together, [[42, 42]], where djq used to give [42, 42].
    tail = chain(t.identity.s(42), group(t.identity.s(), t.identity.s()))
    result = chord(group(tail), t.identity.s()).apply_async()
    assert result.get(timeout=15) == [[42, 42]]
    # beside other members, and as the header of a chain's chord (group | task)
    mixed = [t.add.si(1, 1), chain(t.add.s(4, 4), group(t.mul.s(1), t.mul.s(2)))]
    assert chord(mixed, t.identity.s()).apply_async().get(timeout=15) == [2, [8, 16]]
    result = (group(mixed) | t.identity.s()).apply_async()
    assert result.get(timeout=15) == [2, [8, 16]]
    assert result.parent.get(timeout=5) == [2, [8, 16]]
    # a group nested in the header directly is still one group with it, as in Celery
    flat = chord([t.add.si(1, 1), group(t.add.si(2, 2), t.add.si(3, 3))], t.identity.s())
    assert flat.apply_async().get(timeout=15) == [2, 4, 6]
