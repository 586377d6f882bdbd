"""``Task.map``, ``Task.starmap`` and ``Task.chunks`` with Celery's result shapes
(issue 14)."""

from __future__ import annotations

import pytest

from djq import Signature, chain
from djq.models import Task as TaskRow
from djq.result import GroupResult
from tests.testapp.tasks import add, identity

pytestmark = pytest.mark.django_db(transaction=True)


def test_map_and_starmap_are_one_task_each_returning_a_list(worker):
    mapped = identity.map([1, "two", [3]])
    assert mapped.task == "celery.map" and mapped.immutable
    result = mapped.delay()
    assert result.get(timeout=20) == [1, "two", [3]]
    starred = add.starmap(zip(range(5), range(5)))
    assert starred.delay().get(timeout=20) == [0, 2, 4, 6, 8]
    assert TaskRow.objects.filter(name__in=["celery.map", "celery.starmap"]).count() == 2


def test_map_and_starmap_run_inline_when_called():
    assert add.starmap([(1, 2), (3, 4)])() == [3, 7]
    assert identity.map([5, 6])() == [5, 6]


def test_chunks_are_sent_as_one_group_of_starmaps_when_called(worker):
    sig = add.chunks(zip(range(10), range(10)), 3)
    result = sig()
    assert isinstance(result, GroupResult)
    assert len(result.results) == 4
    assert result.get(timeout=30) == [[0, 2, 4], [6, 8, 10], [12, 14, 16], [18]]
    assert set(TaskRow.objects.values_list("name", flat=True)) == {"celery.starmap"}


def test_chunks_apply_async_and_group(worker):
    sig = add.chunks([(1, 1), (2, 2)], 1)
    assert [s.task for s in sig.group().tasks] == ["celery.starmap"] * 2
    assert sig.apply_async().get(timeout=20) == [[2], [4]]
    decoded = Signature.from_dict(dict(sig))
    assert decoded.apply_async().get(timeout=20) == [[2], [4]]


def test_chunks_refuse_a_bad_size():
    with pytest.raises(ValueError, match="n must be a positive integer"):
        add.chunks([(1, 1)], 0)


def test_map_is_a_chain_step_that_ignores_the_previous_result(worker):
    result = chain(add.s(1, 1), identity.map([7, 8])).apply_async()
    assert result.get(timeout=20) == [7, 8]
