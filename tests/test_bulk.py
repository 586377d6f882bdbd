"""``Task.delay_many``: many calls of one task at once, as ``delay()`` would send each."""

from __future__ import annotations

import datetime
import uuid
from decimal import Decimal
from typing import Any

import pytest
from django.db import transaction

from djq import AsyncResult, serialization, signals, states
from djq.db import open_connection
from djq.exceptions import EncodeError
from djq.models import Task as TaskRow
from tests.testapp.tasks import add, echo

pytestmark = pytest.mark.django_db(transaction=True)

FIELDS = ("name", "state", "status", "queue", "priority", "args", "kwargs", "options",
          "retries", "eta", "expires", "parent_id", "group_id")


def seen_by_another_session() -> int:
    with open_connection() as conn:
        return int(conn.execute("SELECT count(*) FROM djq_task").fetchone()[0])


@pytest.mark.parametrize("n", [5, 100])  # one INSERT, then COPY
def test_rows_are_those_delay_writes(n: int) -> None:
    one = add.apply_async((0, 0), queue="bulk", priority=3)
    many = add.delay_many([((i, i), {}) for i in range(n)], queue="bulk", priority=3)
    assert [type(r) for r in many] == [AsyncResult] * n
    assert len({r.id for r in many}) == n
    stored = {str(t.id): t for t in TaskRow.objects.exclude(id=one.id)}
    reference = TaskRow.objects.get(id=one.id)
    for i, result in enumerate(many):
        got = stored[result.id]
        assert got.args == f"[{i},{i}]"
        for field in FIELDS:
            if field != "args":
                assert getattr(got, field) == getattr(reference, field), field
        assert got.root_id == got.id  # its own root, as a delay() is
    assert seen_by_another_session() == n + 1


def test_arguments_keep_their_types_and_kwargs() -> None:
    when = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    (result,) = echo.delay_many([((Decimal("1.5"), when), {"k": uuid.UUID(int=7)})])
    stored = TaskRow.objects.get(id=result.id)
    assert serialization.loads(stored.args) == [Decimal("1.5"), when]
    assert serialization.loads(stored.kwargs) == {"k": uuid.UUID(int=7)}


def test_a_bad_call_anywhere_stores_nothing_and_names_its_position() -> None:
    calls: list[Any] = [((1, 2), {})] * 5 + [((1,), {})] + [((1, 2), {})]
    with pytest.raises(TypeError, match="call 5"):
        add.delay_many(calls)
    with pytest.raises(EncodeError, match="call 2"):
        add.delay_many([((1, 2), {}), ((1, 2), {}), ((object(), 2), {})])
    with pytest.raises(TypeError, match="call 1 must be an .args, kwargs. pair"):
        add.delay_many([((1, 2), {}), (1, 2)])
    assert TaskRow.objects.count() == 0


@pytest.mark.parametrize("options", [{"task_id": str(uuid.uuid4())}, {"group_id": "x"},
                                     {"countdown": "soon"}, {"time_limit": -1},
                                     {"exchange_nope": 1}])
def test_bad_or_unshareable_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises((TypeError, ValueError)):
        add.delay_many([((1, 2), {})] * 40, **options)
    assert TaskRow.objects.count() == 0


def test_inside_a_rolled_back_transaction_nothing_is_stored() -> None:
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            add.delay_many([((i, 1), {}) for i in range(50)])
            assert TaskRow.objects.count() == 50
            raise RuntimeError("roll back")
    assert TaskRow.objects.count() == 0


def test_publish_signals_for_every_call() -> None:
    seen: list[tuple[str, Any]] = []

    def before(sender: str, headers: dict[str, Any], **kwargs: Any) -> None:
        seen.append(("before", headers["id"]))

    def after(sender: str, headers: dict[str, Any], **kwargs: Any) -> None:
        seen.append(("after", headers["id"]))

    signals.before_task_publish.connect(before)
    signals.after_task_publish.connect(after)
    try:
        results = add.delay_many([((i, 1), {}) for i in range(40)])
    finally:
        signals.before_task_publish.disconnect(before)
        signals.after_task_publish.disconnect(after)
    ids = [r.id for r in results]
    assert seen == [("before", i) for i in ids] + [("after", i) for i in ids]


def test_empty_list_sends_nothing() -> None:
    assert add.delay_many([]) == []
    assert TaskRow.objects.count() == 0


def test_eager_runs_each_inline(settings: Any) -> None:
    settings.DJQ = {**settings.DJQ, "task_always_eager": True}
    results = add.delay_many([((1, 2), {}), ((3, 4), {})])
    assert [r.get() for r in results] == [3, 7]
    assert TaskRow.objects.count() == 0


def test_a_worker_runs_them_all(start_worker: Any) -> None:
    results = add.delay_many([((i, i), {}) for i in range(200)])
    start_worker("-c", "2")
    assert [r.get(timeout=30) for r in results] == [2 * i for i in range(200)]
    assert {r.state for r in results} == {states.SUCCESS}
