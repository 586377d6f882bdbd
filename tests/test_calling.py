"""Calling tasks: delay/apply_async and their options, what is refused at call time (with
nothing stored), transactional enqueue, the publish signals, inline and eager calls."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import pytest

import djq
from django.db import transaction
from django.utils import timezone

from djq import AsyncResult, EagerResult, signals, states
from djq.broker import WAITING
from djq.db import open_connection
from djq.exceptions import EncodeError
from djq.models import Task as TaskRow
from tests.testapp.models import SideEffect
from tests.testapp.tasks import add, div, echo, fail, record, request_info

pytestmark = pytest.mark.django_db(transaction=True)

ADD = "tests.testapp.tasks.add"


def rows() -> int:
    return TaskRow.objects.count()


def row(result: AsyncResult) -> TaskRow:
    return TaskRow.objects.get(id=result.id)


def count_from_second_connection(task_id: str | None = None) -> int:
    """Rows visible to another session: what a worker would see."""
    with open_connection() as conn:
        if task_id is None:
            return int(conn.execute("SELECT count(*) FROM djq_task").fetchone()[0])
        return int(conn.execute("SELECT count(*) FROM djq_task WHERE id = %s",
                                [uuid.UUID(task_id)]).fetchone()[0])


# --- delay and apply_async ------------------------------------------------------------


def test_delay_returns_pending_result_at_once_and_stores_a_waiting_row():
    result = add.delay(2, 3)
    assert isinstance(result, AsyncResult)
    assert result.state == states.PENDING
    assert not result.ready()
    stored = row(result)
    assert stored.name == ADD
    assert stored.status == WAITING
    assert stored.queue == "default"
    assert stored.priority == 0
    assert result.args == [2, 3]
    assert result.kwargs == {}
    assert result.name == ADD
    assert count_from_second_connection(result.id) == 1


def test_delay_passes_kwargs():
    result = echo.delay(1, b=2)
    assert result.args == [1]
    assert result.kwargs == {"b": 2}


def test_apply_async_queue_priority_and_task_id():
    task_id = str(uuid.uuid4())
    result = add.apply_async((1, 2), queue="reports", priority=7, task_id=task_id)
    assert result.id == task_id
    stored = row(result)
    assert (stored.queue, stored.priority) == ("reports", 7)
    assert result.queue == "reports"


def test_apply_async_task_id_as_uuid_object():
    task_id = uuid.uuid4()
    result = add.apply_async((1, 2), task_id=task_id)
    assert result.id == str(task_id)
    assert rows() == 1


def test_countdown_sets_eta_and_delays_availability():
    before = timezone.now()
    result = add.apply_async((1, 2), countdown=10)
    after = timezone.now()
    stored = row(result)
    assert stored.eta is not None
    assert before + datetime.timedelta(seconds=10) <= stored.eta
    assert stored.eta <= after + datetime.timedelta(seconds=10)
    assert stored.run_at == stored.eta
    assert result.state == states.PENDING


def test_eta_datetime_is_stored():
    eta = timezone.now() + datetime.timedelta(minutes=5)
    result = add.apply_async((1, 2), eta=eta)
    stored = row(result)
    assert stored.eta == eta
    assert stored.run_at == eta


def test_naive_eta_is_read_in_the_current_time_zone():
    naive = datetime.datetime(2030, 1, 2, 3, 4, 5)
    result = add.apply_async((1, 2), eta=naive)
    assert row(result).eta == timezone.make_aware(naive)


def test_expires_in_seconds_or_as_datetime():
    before = timezone.now()
    in_seconds = add.apply_async((1, 2), expires=60)
    stored = row(in_seconds)
    assert stored.expires is not None
    assert before + datetime.timedelta(seconds=60) <= stored.expires
    assert stored.expires <= timezone.now() + datetime.timedelta(seconds=60)

    when = timezone.now() + datetime.timedelta(hours=1)
    as_datetime = add.apply_async((1, 2), expires=when)
    assert row(as_datetime).expires == when


def test_task_options_are_the_defaults_of_its_calls(settings):
    settings.DJQ = {**settings.DJQ, "task_default_queue": "elsewhere",
                    "task_default_priority": 3}
    result = add.delay(1, 2)
    stored = row(result)
    assert (stored.queue, stored.priority) == ("elsewhere", 3)


def test_signature_delay_prepends_partial_arguments():
    result = add.s(2).delay(4)
    assert result.args == [4, 2]


@pytest.mark.parametrize("options, error", [
    ({"countdown": "soon"}, TypeError),
    ({"countdown": 5, "eta": timezone.now()}, ValueError),
    ({"eta": "tomorrow"}, TypeError),
    ({"expires": "later"}, TypeError),
    ({"queue": ""}, ValueError),
    ({"priority": "high"}, TypeError),
    ({"priority": 1.5}, TypeError),
    ({"task_id": "not-a-uuid"}, ValueError),
    ({"headers": ["x"]}, TypeError),
    ({"link": "tests.testapp.tasks.add"}, TypeError),
    ({"link_error": 42}, TypeError),
    ({"no_such_option": 1}, TypeError),
    ({"time_limit": "abc"}, TypeError),
    ({"time_limit": 0}, ValueError),
    ({"soft_time_limit": -1}, ValueError),
    ({"soft_time_limit": float("nan")}, ValueError),
    ({"countdown": float("inf")}, ValueError),
    ({"expires": float("nan")}, ValueError),
    ({"queue": "q" * 201}, ValueError),
    ({"priority": 2 ** 40}, ValueError),
    ({"retries": -1}, ValueError),
    ({"retries": "2"}, ValueError),
    ({"parent_id": "nope"}, ValueError),
    ({"root_id": 12}, ValueError),
    ({"shadow": 3}, TypeError),
    ({"argsrepr": ["x"]}, TypeError),
    ({"using": "no-such-db"}, ValueError),
])
def test_bad_options_fail_at_call_time_and_store_nothing(options, error):
    with pytest.raises(error) as raised:
        add.apply_async((1, 2), **options)
    name = next(iter(options)) if len(options) == 1 else None
    if name and name != "no_such_option" and name not in ("link", "link_error"):
        assert name in str(raised.value), raised.value  # the message names the option
    assert rows() == 0
    assert count_from_second_connection() == 0


@pytest.mark.parametrize("options", [
    {"time_limit": "abc"}, {"countdown": "soon"}, {"priority": "high"}, {"queue": ""},
    {"task_id": "nope"},
])
def test_bad_options_fail_when_a_signature_is_made(options):
    with pytest.raises((TypeError, ValueError)):
        add.signature((1, 2), **options)
    with pytest.raises((TypeError, ValueError)):
        add.s(1, 2).set(**options)
    with pytest.raises((TypeError, ValueError)):
        djq.signature("tests.testapp.tasks.add", args=(1, 2), options=options)
    assert rows() == 0


def test_kwargs_must_be_a_dict():
    with pytest.raises(TypeError):
        add.apply_async((1,), kwargs=[("y", 2)])
    assert rows() == 0


# --- arguments --------------------------------------------------------------------------


@pytest.mark.parametrize("args, kwargs", [
    ((1,), {}),
    ((1, 2, 3), {}),
    ((1, 2), {"z": 3}),
    ((1,), {"x": 2}),
    ((), {}),
])
def test_wrong_arguments_raise_type_error_at_call_time_and_store_nothing(args, kwargs):
    with pytest.raises(TypeError):
        add.delay(*args, **kwargs)
    with pytest.raises(TypeError):
        add.apply_async(args, kwargs)
    assert rows() == 0


def test_arguments_that_fit_are_accepted():
    add.delay(1, y=2)
    add.apply_async(kwargs={"x": 1, "y": 2})
    echo.delay(1, 2, 3, anything=4)
    assert rows() == 3


@pytest.mark.parametrize("value", [
    {1, 2},
    frozenset({1}),
    object(),
    {"nested": [1, {2, 3}]},
    float("nan"),
    complex(1, 2),
])
def test_non_json_argument_raises_encode_error_and_stores_nothing(value):
    with pytest.raises(EncodeError):
        echo.delay(value)
    with pytest.raises(EncodeError):
        echo.delay(1, key=value)
    assert rows() == 0
    assert count_from_second_connection() == 0


def test_encode_error_is_a_djq_error():
    from djq.exceptions import DjqError

    with pytest.raises(DjqError):
        echo.delay({1})


def test_encode_error_sends_no_publish_signal():
    sent: list[str] = []

    def receiver(sender: Any = None, **kwargs: Any) -> None:
        sent.append(sender)

    signals.before_task_publish.connect(receiver)
    signals.after_task_publish.connect(receiver)
    try:
        with pytest.raises(EncodeError):
            echo.delay({1})
    finally:
        signals.before_task_publish.disconnect(receiver)
        signals.after_task_publish.disconnect(receiver)
    assert sent == []


# --- transactions -----------------------------------------------------------------------


def test_enqueue_inside_rolled_back_atomic_leaves_no_task():
    class Abort(Exception):
        pass

    ids: list[str] = []
    with pytest.raises(Abort):
        with transaction.atomic():
            ids.append(add.delay(2, 3).id)
            # Not committed: another session (a worker) does not see it yet.
            assert count_from_second_connection(ids[0]) == 0
            raise Abort
    assert count_from_second_connection() == 0
    assert rows() == 0
    assert AsyncResult(ids[0]).state == states.PENDING


def test_enqueue_inside_committed_atomic_is_visible_only_after_commit():
    with transaction.atomic():
        result = add.delay(2, 3)
        assert count_from_second_connection(result.id) == 0
    assert count_from_second_connection(result.id) == 1


def test_enqueue_in_a_rolled_back_savepoint_only():
    with transaction.atomic():
        kept = add.delay(1, 1)
        try:
            with transaction.atomic():
                add.delay(2, 2)
                raise RuntimeError
        except RuntimeError:
            pass
    assert count_from_second_connection() == 1
    assert count_from_second_connection(kept.id) == 1


# --- publish signals ---------------------------------------------------------------------


PROTOCOL_2_HEADERS = {"id", "task", "root_id", "parent_id", "group", "eta", "expires",
                      "retries", "argsrepr", "kwargsrepr", "origin"}


@pytest.fixture
def published() -> Any:
    calls: list[tuple[str, dict[str, Any]]] = []

    def before(sender: Any = None, **kwargs: Any) -> None:
        kwargs["row_exists"] = TaskRow.objects.filter(id=kwargs["headers"]["id"]).exists()
        calls.append(("before", {"sender": sender, **kwargs}))

    def after(sender: Any = None, **kwargs: Any) -> None:
        kwargs["row_exists"] = TaskRow.objects.filter(id=kwargs["headers"]["id"]).exists()
        calls.append(("after", {"sender": sender, **kwargs}))

    signals.before_task_publish.connect(before)
    signals.after_task_publish.connect(after)
    yield calls
    signals.before_task_publish.disconnect(before)
    signals.after_task_publish.disconnect(after)


def test_publish_signals_carry_protocol_2_headers(published):
    result = add.delay(2, 3)
    assert [name for name, _ in published] == ["before", "after"]
    for _, call in published:
        assert call["sender"] == ADD
        headers = call["headers"]
        assert PROTOCOL_2_HEADERS <= set(headers)
        assert headers["id"] == result.id
        assert headers["task"] == ADD
        assert headers["root_id"] == result.id
        assert headers["parent_id"] is None
        assert headers["group"] is None
        assert headers["eta"] is None
        assert headers["expires"] is None
        assert headers["retries"] == 0
        assert headers["argsrepr"] == "(2, 3)"
        assert headers["kwargsrepr"] == "{}"
        assert isinstance(headers["origin"], str) and headers["origin"]
    # before: not stored yet; after: stored.
    assert published[0][1]["row_exists"] is False
    assert published[1][1]["row_exists"] is True


def test_publish_headers_with_eta_expires_and_kwargs(published):
    result = echo.apply_async((1,), {"k": "v"}, countdown=30, expires=60)
    headers = published[0][1]["headers"]
    assert headers["id"] == result.id
    stored = row(result)
    assert datetime.datetime.fromisoformat(headers["eta"]) == stored.eta
    assert datetime.datetime.fromisoformat(headers["expires"]) == stored.expires
    assert headers["argsrepr"] == "(1,)"
    assert headers["kwargsrepr"] == "{'k': 'v'}"
    assert published[0][1]["routing_key"] == "default"


def test_publish_signal_receiver_that_raises_does_not_break_the_caller():
    def broken(**kwargs: Any) -> None:
        raise RuntimeError("receiver bug")

    signals.before_task_publish.connect(broken)
    signals.after_task_publish.connect(broken)
    try:
        result = add.delay(2, 3)
    finally:
        signals.before_task_publish.disconnect(broken)
        signals.after_task_publish.disconnect(broken)
    assert row(result).name == ADD


# --- inline and eager -------------------------------------------------------------------


def test_calling_a_task_runs_it_inline_and_stores_nothing():
    assert add(2, 3) == 5
    assert rows() == 0


def test_inline_bound_task_sees_itself_called_directly():
    info = request_info(1, x=2)
    assert info["called_directly"] is True
    assert list(info["args"]) == [1]
    assert info["kwargs"] == {"x": 2}
    assert rows() == 0


def test_inline_call_raises_the_task_exception():
    with pytest.raises(ValueError, match="inline"):
        fail("inline")


def test_apply_runs_inline_and_returns_eager_result():
    result = add.apply((2, 3))
    assert isinstance(result, EagerResult)
    assert result.get() == 5
    assert result.state == states.SUCCESS
    assert result.successful()
    assert rows() == 0


def test_apply_request_is_eager():
    info = request_info.apply((1, 2), {"k": 3}, task_id="6b0a5a4e-7ad3-4f4c-a1d4-0c1d9b6f3b11"
                              ).get()
    assert info["is_eager"] is True
    assert info["called_directly"] is False
    assert info["id"] == "6b0a5a4e-7ad3-4f4c-a1d4-0c1d9b6f3b11"
    assert info["args"] == [1, 2]
    assert info["kwargs"] == {"k": 3}
    assert info["retries"] == 0


def test_apply_failure_is_an_eager_failure():
    result = fail.apply(("eager boom",))
    assert result.state == states.FAILURE
    assert result.failed()
    assert isinstance(result.result, ValueError)
    assert "ValueError" in result.traceback
    with pytest.raises(ValueError, match="eager boom"):
        result.get()
    assert isinstance(result.get(propagate=False), ValueError)


def test_apply_retries_inline_until_the_limit():
    result = div.apply((4, 0))
    assert result.state == states.FAILURE
    assert isinstance(result.result, ZeroDivisionError)
    assert rows() == 0


@pytest.fixture
def eager(settings: Any) -> None:
    settings.DJQ = {**settings.DJQ, "task_always_eager": True}


def test_task_always_eager_runs_delay_inline(eager):
    result = add.delay(2, 3)
    assert isinstance(result, EagerResult)
    assert result.get() == 5
    assert result.state == states.SUCCESS
    assert rows() == 0
    assert count_from_second_connection() == 0


def test_task_always_eager_apply_async_keeps_task_id(eager):
    task_id = str(uuid.uuid4())
    result = request_info.apply_async((1,), task_id=task_id)
    assert result.id == task_id
    assert result.get()["id"] == task_id
    assert result.get()["is_eager"] is True


def test_task_always_eager_failure(eager):
    result = fail.delay("eager")
    assert result.state == states.FAILURE
    with pytest.raises(ValueError, match="eager"):
        result.get()
    assert rows() == 0


def test_task_always_eager_still_checks_arguments(eager):
    with pytest.raises(TypeError):
        add.delay(1)
    with pytest.raises(EncodeError):
        echo.delay({1})


def test_task_always_eager_runs_link(eager):
    result = add.apply_async((2, 3), link=record.si("eager-link"))
    assert result.get() == 5
    assert SideEffect.objects.filter(key="eager-link").count() == 1
    assert rows() == 0


def test_custom_headers_travel_with_the_protocol_2_headers(published):
    add.apply_async((1, 2), headers={"tenant": "acme"})
    headers = published[0][1]["headers"]
    assert headers["tenant"] == "acme"
    assert PROTOCOL_2_HEADERS <= set(headers)


# --- names and task options ----------------------------------------------------------------


def test_registered_names():
    from djq import shared_task, task
    from djq.task import registry
    from tests.testapp.tasks import named

    assert shared_task is task
    assert add.name == ADD
    assert named.name == "custom.name"
    assert registry[ADD] is add
    assert registry["custom.name"] is named


def test_unknown_task_option_is_refused():
    from djq import task

    with pytest.raises(TypeError):
        task(no_such_option=True)(lambda: None)


@pytest.mark.parametrize("options", [
    {"time_limit": "abc"}, {"soft_time_limit": 0}, {"queue": ""}, {"priority": "high"},
    {"max_retries": -1}, {"default_retry_delay": "soon"},
])
def test_bad_task_options_are_refused_at_definition(options):
    from djq import task

    with pytest.raises((TypeError, ValueError), match=next(iter(options))):
        task(name=f"tests.bad_{next(iter(options))}", **options)(lambda: None)


def test_task_queue_and_priority_options_and_call_overrides():
    from tests.testapp.tasks import routed

    stored = row(routed.delay())
    assert (stored.queue, stored.priority) == ("special", 6)
    stored = row(routed.apply_async(queue="other", priority=1))
    assert (stored.queue, stored.priority) == ("other", 1)


def test_signature_by_name_and_options():
    import djq

    result = djq.signature(ADD, args=(2, 2)).apply_async(queue="sig", countdown=60)
    stored = row(result)
    assert stored.name == ADD
    assert result.args == [2, 2]
    assert stored.queue == "sig"
    assert stored.eta is not None
