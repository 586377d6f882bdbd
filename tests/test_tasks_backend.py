"""Django's Tasks framework on djq: ``djq.backends.DjqBackend`` with real workers.

The tasks are in tests/testapp/django_tasks.py, declared with the framework's own
``@task``; tests/settings.py points ``TASKS`` at DjqBackend.
"""

from __future__ import annotations

import datetime
import json
import uuid
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.db import connection, transaction
from django.test import override_settings
from django.utils import timezone
from django_tasks import TaskResultStatus, default_task_backend, task_backends
from django_tasks.exceptions import InvalidTaskError, TaskResultDoesNotExist
from django_tasks.signals import task_enqueued

from djq import AsyncResult, states
from djq.backends import DjangoTaskAdapter, DjqBackend
from djq.broker import DONE, WAITING
from djq.exceptions import EncodeError, NotRegistered
from djq.models import Task as TaskRow
from djq.task import registry
from tests.conftest import wait_for
from tests.testapp import django_tasks as dt
from tests.testapp import tasks as djq_tasks
from tests.testapp.models import SideEffect

pytestmark = pytest.mark.timeout(90)


def finished(result: Any, timeout: float = 15.0) -> Any:
    """Refresh ``result`` until it is finished (bounded)."""

    def done() -> bool:
        result.refresh()
        return bool(result.is_finished)

    wait_for(done, timeout, message=f"{result.task.module_path}[{result.id}] to finish")
    return result


def effects(key: str) -> list[SideEffect]:
    return list(SideEffect.objects.filter(key=key).order_by("created", "id"))


def insert_row(name: str, args: list[Any] | None = None) -> str:
    """A waiting row naming ``name``, written as another client might."""
    task_id = uuid.uuid4()
    now = timezone.now()
    TaskRow.objects.create(id=task_id, name=name, queue="default", args=json.dumps(args or []),
                           run_at=now, date_created=now)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify('djq_enqueue', 'default')")
    return str(task_id)


# --- the backend, without workers ------------------------------------------------------


def test_backend_declares_what_it_supports() -> None:
    backend = task_backends["default"]
    assert isinstance(backend, DjqBackend)
    assert default_task_backend.alias == "default"
    assert backend.supports_defer is True
    assert backend.supports_priority is True
    assert backend.supports_get_result is True
    assert backend.supports_async_task is True
    assert backend.queues == {"default", "queue-1", "dj-high"}


@pytest.mark.django_db
def test_enqueue_writes_one_ordinary_djq_row() -> None:
    run_after = timezone.now() + datetime.timedelta(hours=1)
    result = dt.context_info.using(priority=7, queue_name="queue-1",
                                   run_after=run_after).enqueue("label")
    assert result.status == TaskResultStatus.READY
    assert not result.is_finished
    assert result.attempts == 0 and result.worker_ids == []
    assert result.args == ["label"] and result.kwargs == {}
    assert result.backend == "default"
    assert result.enqueued_at is not None
    assert result.started_at is None and result.finished_at is None
    with pytest.raises(ValueError, match="Task has not finished yet"):
        result.return_value  # noqa: B018

    row = TaskRow.objects.get(id=result.id)
    assert row.name == "tests.testapp.django_tasks.context_info"
    assert row.queue == "queue-1"
    assert row.priority == 7  # Django's priority as is: higher first in both
    assert row.eta == run_after and row.run_at == run_after
    assert row.state == states.PENDING and row.status == WAITING
    assert json.loads(row.args) == ["label"]
    assert json.loads(row.kwargs) == {}
    header = json.loads(row.options)["headers"]["django_task"]
    assert header == {"backend": "default", "takes_context": True}
    assert row.date_created == result.enqueued_at

    # djq's own API sees it like any task.
    djq_result = AsyncResult(result.id)
    assert djq_result.state == states.PENDING
    assert djq_result.name == "tests.testapp.django_tasks.context_info"
    assert djq_result.queue == "queue-1"


@pytest.mark.django_db
def test_get_result_reads_the_row_back() -> None:
    run_after = timezone.now() + datetime.timedelta(minutes=5)
    task = dt.add.using(priority=-20, run_after=run_after)
    result = task.enqueue(1, y=2)
    again = default_task_backend.get_result(result.id)
    assert again == result
    assert again.task == task
    assert again.task.run_after == run_after
    assert dt.add.get_result(result.id).id == result.id
    assert async_to_sync(default_task_backend.aget_result)(result.id) == result


@pytest.mark.django_db
def test_get_result_of_an_unknown_id_raises_does_not_exist() -> None:
    for bad in (str(uuid.uuid4()), "123", ""):
        with pytest.raises(TaskResultDoesNotExist):
            default_task_backend.get_result(bad)
        with pytest.raises(TaskResultDoesNotExist):
            async_to_sync(default_task_backend.aget_result)(bad)


@pytest.mark.django_db
def test_get_result_of_a_djq_task_raises_does_not_exist() -> None:
    native = djq_tasks.add.delay(1, 2)
    with pytest.raises(TaskResultDoesNotExist, match="not a task of Django's Tasks"):
        default_task_backend.get_result(native.id)


@pytest.mark.django_db
def test_unknown_queue_is_rejected_and_nothing_is_stored() -> None:
    with pytest.raises(InvalidTaskError, match="Queue 'nope' is not valid for backend"):
        dt.noop_task.using(queue_name="nope")
    with override_settings(TASKS={"default": {"BACKEND": "djq.backends.DjqBackend",
                                              "QUEUES": ["only-this"]}}):
        with pytest.raises(InvalidTaskError, match="Queue 'default' is not valid"):
            dt.noop_task.enqueue()
        with pytest.raises(InvalidTaskError, match="Queue 'default' is not valid"):
            async_to_sync(dt.noop_task.aenqueue)()
    with override_settings(TASKS={"default": {"BACKEND": "djq.backends.DjqBackend",
                                              "QUEUES": []}}):
        # An empty QUEUES list allows any queue, as in the framework.
        dt.noop_task.using(queue_name="anything").enqueue()
    assert TaskRow.objects.filter(queue="anything").count() == 1
    assert TaskRow.objects.exclude(queue="anything").count() == 0


def test_priority_outside_the_framework_range_is_rejected() -> None:
    for bad in (101, -101):
        with pytest.raises(InvalidTaskError, match="priority must be a whole number"):
            dt.noop_task.using(priority=bad)
    assert dt.noop_task.using(priority=100).priority == 100


def test_naive_run_after_is_rejected() -> None:
    with pytest.raises(InvalidTaskError, match="run_after must be an aware datetime"):
        dt.noop_task.using(run_after=datetime.datetime(2030, 1, 1))


@pytest.mark.django_db
def test_non_json_argument_fails_at_enqueue_and_stores_nothing() -> None:
    with pytest.raises(EncodeError, match="must be JSON"):
        dt.echo.enqueue(datetime.datetime.now())
    with pytest.raises(EncodeError, match="must be JSON"):
        dt.echo.enqueue(value={1, 2})
    with pytest.raises(EncodeError):
        dt.echo.enqueue(float("nan"))
    assert TaskRow.objects.count() == 0


@pytest.mark.django_db
def test_arguments_that_do_not_fit_fail_at_enqueue() -> None:
    with pytest.raises(TypeError, match="tests.testapp.django_tasks.add"):
        dt.add.enqueue(1, 2, 3)
    with pytest.raises(TypeError):
        dt.get_task_id.enqueue("unexpected")  # the context is not an argument
    assert TaskRow.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_enqueue_joins_the_callers_transaction() -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        dt.noop_task.enqueue()
        assert TaskRow.objects.count() == 1
        raise RuntimeError("roll back")
    assert TaskRow.objects.count() == 0


@pytest.mark.django_db
def test_task_enqueued_signal() -> None:
    received: list[tuple[Any, Any]] = []

    def receiver(sender: Any, task_result: Any, **kwargs: Any) -> None:
        received.append((sender, task_result))

    task_enqueued.connect(receiver, dispatch_uid="test.task_enqueued", weak=False)
    try:
        result = dt.noop_task.enqueue(1, two=3)
    finally:
        task_enqueued.disconnect(dispatch_uid="test.task_enqueued")
    assert received == [(DjqBackend, result)]
    assert received[0][1].status == TaskResultStatus.READY


def test_registry_resolves_django_tasks_and_nothing_else() -> None:
    name = "tests.testapp.django_tasks.add"
    registry.pop(name, None)
    try:
        assert name not in registry  # ``in`` and ``get`` never resolve
        assert registry.get(name) is None
        adapter = registry[name]
        assert isinstance(adapter, DjangoTaskAdapter)
        assert adapter.django_task is dt.add
        assert registry[name] is adapter  # registered once resolved
        assert adapter(2, 3) == 5  # runs inline too
    finally:
        registry.pop(name, None)
    for unknown in ("tests.testapp.django_tasks.nope", "subprocess.check_output",
                    "no.such.module.task", "noname", "tests.testapp.django_tasks.SIGNAL_PREFIX"):
        with pytest.raises(NotRegistered):
            registry[unknown]
        assert unknown not in registry


def test_check_reports_djq_missing_and_unknown_options() -> None:
    assert list(task_backends["default"].check()) == []
    with override_settings(INSTALLED_APPS=["django_tasks"]):
        errors = list(task_backends["default"].check())
    assert [e.id for e in errors] == ["djq.E101"]
    assert "djq" in str(errors[0].hint)
    with override_settings(TASKS={"default": {"BACKEND": "djq.backends.DjqBackend",
                                              "OPTIONS": {"bogus": 1}}}):
        warnings = list(task_backends["default"].check())
    assert [w.id for w in warnings] == ["djq.W101"]
    assert "bogus" in warnings[0].msg


# --- with a worker ----------------------------------------------------------------------


def test_worker_runs_the_task_and_get_result_is_successful(worker) -> None:
    result = dt.add.enqueue(2, 3)
    finished(result)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 5
    assert result.errors == []
    assert result.attempts == 1
    assert result.worker_ids == ["w1@test"]
    assert result.enqueued_at <= result.started_at <= result.finished_at
    assert result.last_attempted_at == result.started_at

    djq_result = AsyncResult(result.id)
    assert djq_result.get(timeout=5) == 5
    assert djq_result.state == states.SUCCESS
    assert djq_result.name == "tests.testapp.django_tasks.add"
    assert djq_result.worker == "w1@test"
    # The worker logs it under its real name, as any task.
    wait_for(lambda: f"Task tests.testapp.django_tasks.add[{result.id}] succeeded"
             in worker.output(), 5, message="the worker's success log line")


def test_failure_has_errors_with_traceback_and_class_path(worker) -> None:
    result = dt.failing_task_value_error.enqueue()
    finished(result)
    assert result.status == TaskResultStatus.FAILED
    with pytest.raises(ValueError, match="Task failed"):
        result.return_value  # noqa: B018
    assert len(result.errors) == 1
    error = result.errors[0]
    assert error.exception_class_path == "builtins.ValueError"
    assert error.exception_class is ValueError
    assert error.traceback.startswith("Traceback (most recent call last):")
    assert error.traceback.endswith("ValueError: This task failed due to ValueError\n")
    assert "failing_task_value_error" in error.traceback
    assert result.attempts == 1 and result.finished_at is not None

    djq_result = AsyncResult(result.id)
    assert djq_result.state == states.FAILURE
    with pytest.raises(ValueError, match="This task failed due to ValueError"):
        djq_result.get(timeout=5)


def test_run_after_is_not_run_before_its_time(worker) -> None:
    run_after = timezone.now() + datetime.timedelta(seconds=2)
    result = dt.record.using(run_after=run_after).enqueue("run-after", "ran")
    wait_for(lambda: timezone.now() >= run_after - datetime.timedelta(seconds=0.7), 5,
             message="just before run_after")
    result.refresh()
    assert result.status == TaskResultStatus.READY
    assert effects("run-after") == []
    finished(result)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.started_at >= run_after
    assert effects("run-after")[0].created >= run_after
    assert result.task.run_after == run_after


def test_priority_orders_django_tasks_among_djq_tasks(start_worker, monkeypatch) -> None:
    dt.record.using(priority=10).enqueue("order", "ten")
    dt.record.using(priority=-5).enqueue("order", "minus-five")
    dt.record.enqueue("order", "zero")
    djq_tasks.record.apply_async(("order", "djq-five"), priority=5)
    dt.record.using(priority=100).enqueue("order", "hundred")
    last = dt.record.using(priority=-100).enqueue("order", "minus-hundred")
    start_worker(pool="solo")  # one at a time, in claim order
    finished(last)
    assert [e.value for e in effects("order")] == [
        "hundred", "ten", "djq-five", "zero", "minus-five", "minus-hundred"]


def test_task_with_its_own_priority_and_queue(start_worker) -> None:
    assert dt.urgent.priority == 50 and dt.urgent.queue_name == "dj-high"
    result = dt.urgent.enqueue("urgent")
    row = TaskRow.objects.get(id=result.id)
    assert (row.queue, row.priority) == ("dj-high", 50)
    start_worker()  # the default queue only
    plain = dt.noop_task.enqueue()
    finished(plain)
    result.refresh()
    assert result.status == TaskResultStatus.READY
    start_worker("-Q", "dj-high")
    finished(result)
    assert result.return_value == "urgent"
    assert result.worker_ids == ["w2@test"]


def test_takes_context_gets_the_result_and_attempt_number(worker) -> None:
    result = dt.context_info.enqueue("ctx")
    finished(result)
    info = result.return_value
    assert info == {
        "label": "ctx", "attempt": 1, "id": result.id, "status": "RUNNING",
        "worker_ids": ["w1@test"], "args": ["ctx"], "backend": "default",
        "enqueued": True, "started": True,
    }


def test_attempt_number_is_retries_plus_one(start_worker) -> None:
    result = dt.context_info.enqueue("retried")
    TaskRow.objects.filter(id=result.id).update(retries=2)
    start_worker()
    finished(result)
    assert result.return_value["attempt"] == 3
    assert result.attempts == 3
    ok = finished(dt.check_context.enqueue(1))  # a first attempt is attempt 1
    assert ok.status == TaskResultStatus.SUCCESSFUL


def test_async_tasks_run_on_the_worker(worker) -> None:
    result = dt.async_add.enqueue(2, 3)
    context = dt.async_context_info.enqueue()
    finished(result)
    finished(context)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value["sum"] == 5
    assert context.return_value == {"attempt": 1, "id": context.id}
    assert AsyncResult(result.id).result["sum"] == 5


def test_framework_signals_fire_in_the_worker(start_worker, monkeypatch) -> None:
    monkeypatch.setenv("DJQ_TEST_RECORD_SIGNALS", "1")
    start_worker()
    ok = finished(dt.add.enqueue(1, 1))
    bad = finished(dt.failing_task_value_error.enqueue())
    prefix = dt.SIGNAL_PREFIX

    def values(name: str) -> list[str]:
        return [e.value for e in effects(prefix + name)]

    wait_for(lambda: len(values("task_finished")) == 2, 5, message="two task_finished")
    assert values("task_started") == [
        f"{ok.id}|DjqBackend|RUNNING|tests.testapp.django_tasks.add|1|",
        f"{bad.id}|DjqBackend|RUNNING|tests.testapp.django_tasks.failing_task_value_error|1|",
    ]
    assert values("task_finished") == [
        f"{ok.id}|DjqBackend|SUCCESSFUL|tests.testapp.django_tasks.add|1|",
        f"{bad.id}|DjqBackend|FAILED|tests.testapp.django_tasks.failing_task_value_error|1|"
        "builtins.ValueError",
    ]


def test_unknown_names_still_fail_not_registered(worker) -> None:
    missing = insert_row("tests.testapp.django_tasks.not_there")
    not_a_task = insert_row("subprocess.check_output", [["touch", "/tmp/djq-should-not-run"]])
    plain_function = insert_row("tests.testapp.django_tasks._record_signal")
    for task_id in (missing, not_a_task, plain_function):
        with pytest.raises(NotRegistered):
            AsyncResult(task_id).get(timeout=15)
        assert TaskRow.objects.get(id=task_id).status == DONE
        with pytest.raises(TaskResultDoesNotExist):
            default_task_backend.get_result(task_id)


def test_results_are_kept_even_with_task_ignore_result(start_worker) -> None:
    start_worker(djq={"task_ignore_result": True})
    result = finished(dt.calculate_meaning_of_life.enqueue())
    assert result.return_value == 42
    native = djq_tasks.add.delay(1, 2)
    wait_for(lambda: not TaskRow.objects.filter(id=native.id).exists(), 15,
             message="the ignored djq result to be dropped")


def test_aenqueue_and_aget_result(worker) -> None:
    result = async_to_sync(dt.add.aenqueue)(20, 22)
    assert result.status == TaskResultStatus.READY

    def done() -> bool:
        return async_to_sync(dt.add.aget_result)(result.id).is_finished

    wait_for(done, 15, message="the task to finish")
    again = async_to_sync(default_task_backend.aget_result)(result.id)
    assert again.return_value == 42


def test_admin_and_commands_show_django_tasks_like_any_other(worker, admin_client) -> None:
    from io import StringIO

    from django.core.management import call_command
    from django.urls import reverse

    result = finished(dt.add.enqueue(20, 22))
    html = admin_client.get(reverse("admin:djq_task_changelist")).content.decode()
    assert str(result.id) in html and "tests.testapp.django_tasks.add" in html
    detail = admin_client.get(reverse("admin:djq_task_change", args=[result.id]))
    assert detail.status_code == 200
    assert "tests.testapp.django_tasks.add" in detail.content.decode()

    out = StringIO()
    call_command("djq", "result", result.id, "--json", stdout=out)
    shown = json.loads(out.getvalue())
    assert (shown["name"], shown["state"], shown["result"]) == (
        "tests.testapp.django_tasks.add", states.SUCCESS, 42)

    # ``djq call`` finds a Django task by its module path and sends it the djq way;
    # the framework reads the result back all the same.
    out = StringIO()
    call_command("djq", "call", "tests.testapp.django_tasks.add", "--args", "[4, 5]",
                 stdout=out)
    called = finished(default_task_backend.get_result(out.getvalue().strip()))
    assert called.return_value == 9
    assert called.task.func is dt.add.func
