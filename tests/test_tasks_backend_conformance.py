"""The framework's database-backend test cases, pointed at DjqBackend.

django-tasks 0.12 ships no database backend and no tests; its database backend and
that backend's test suite live on in django-tasks-db (``tests/tests.py``). The classes
and test names here follow that suite's (``DatabaseBackendTestCase``,
``DatabaseBackendWorkerTestCase``, ``DatabaseTaskResultTestCase``,
``DatabaseWorkerProcessTestCase``), with djq's rows and real ``djq_worker`` processes
in place of ``DBTaskResult`` and ``db_worker``.

Left out, because they test that backend's own machinery rather than the framework's
behaviour: query counts of ``enqueue`` (djq writes with its own server-side-bound
statement, which Django's query log does not see; one row is asserted instead), the
``id_function`` option (djq ids are UUID4), ``DBTaskResult`` model constraints, index
plans and ``get_locked`` (djq's claim is covered by ``test_worker_with_locked_rows``),
``db_worker``'s command-line options, ``--batch`` and ``--max-tasks``, backend-filtered
workers (a djq worker runs the rows of every DjqBackend alias), the
``prune_db_task_results`` command (djq prunes by ``result_expires``), and SIGKILL or a
second Ctrl-C (djq's own worker tests cover recovery and cold shutdown).
"""

from __future__ import annotations

import contextlib
import datetime
import signal
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.db import connection, connections, transaction
from django.test import override_settings
from django.utils import timezone
from django_tasks import TaskResultStatus, default_task_backend, task_backends
from django_tasks.base import Task
from django_tasks.exceptions import InvalidTaskError, TaskResultDoesNotExist
from django_tasks.signals import task_enqueued

from djq import broker, states
from djq.backends import DjqBackend
from djq.models import Task as TaskRow
from tests.conftest import wait_for
from tests.test_tasks_backend import effects, finished, insert_row
from tests.testapp import django_tasks as test_tasks

pytestmark = pytest.mark.timeout(90)


@contextlib.contextmanager
def capture_task_enqueued() -> Iterator[list[tuple[Any, Any]]]:
    received: list[tuple[Any, Any]] = []

    def capture(sender: Any, task_result: Any, **kwargs: Any) -> None:
        received.append((sender, task_result))

    task_enqueued.connect(capture, dispatch_uid="conformance.enqueued", weak=False)
    try:
        yield received
    finally:
        task_enqueued.disconnect(dispatch_uid="conformance.enqueued")


def count_in_new_connection() -> int:
    """What another connection sees."""
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM djq_task")
            return int(cursor.fetchone()[0])
    finally:
        other.close()


def waiting() -> int:
    return TaskRow.objects.filter(status=broker.WAITING).count()


def row_state(task_id: str) -> str:
    return str(TaskRow.objects.get(id=task_id).state)


def wait_done(task_id: str, timeout: float = 15.0) -> TaskRow:
    return wait_for(lambda: TaskRow.objects.filter(id=task_id, status=broker.DONE).first(),
                    timeout, message=f"row {task_id} to be done")


@pytest.mark.django_db(transaction=True)
class TestDatabaseBackend:
    def test_using_correct_backend(self) -> None:
        assert default_task_backend == task_backends["default"]
        assert isinstance(task_backends["default"], DjqBackend)
        assert default_task_backend.alias == "default"
        assert default_task_backend.options == {}

    @pytest.mark.parametrize("task", [test_tasks.noop_task, test_tasks.noop_task_async])
    def test_enqueue_task(self, task: Task[Any, Any]) -> None:
        with capture_task_enqueued() as received:
            result = task.enqueue(1, two=3)
        assert uuid.UUID(result.id).version == 4
        assert result.status == TaskResultStatus.READY
        assert not result.is_finished
        assert result.started_at is None
        assert result.last_attempted_at is None
        assert result.finished_at is None
        with pytest.raises(ValueError, match="Task has not finished yet"):
            result.return_value  # noqa: B018
        assert result.task == task
        assert result.args == [1]
        assert result.kwargs == {"two": 3}
        assert result.attempts == 0
        assert received == [(DjqBackend, result)]
        assert TaskRow.objects.count() == 1

    @pytest.mark.parametrize("task", [test_tasks.noop_task, test_tasks.noop_task_async])
    def test_enqueue_task_async(self, task: Task[Any, Any]) -> None:
        with capture_task_enqueued() as received:
            result = async_to_sync(task.aenqueue)()
        assert uuid.UUID(result.id).version == 4
        assert result.status == TaskResultStatus.READY
        assert not result.is_finished
        assert result.started_at is None
        assert result.last_attempted_at is None
        assert result.finished_at is None
        with pytest.raises(ValueError, match="Task has not finished yet"):
            result.return_value  # noqa: B018
        assert result.task == task
        assert result.args == []
        assert result.kwargs == {}
        assert result.attempts == 0
        assert received == [(DjqBackend, result)]

    def test_get_result(self, django_assert_num_queries: Any) -> None:
        result = default_task_backend.enqueue(test_tasks.noop_task, [], {})
        with django_assert_num_queries(1):
            new_result = default_task_backend.get_result(result.id)
        assert result == new_result

    def test_get_result_async(self) -> None:
        result = async_to_sync(default_task_backend.aenqueue)(test_tasks.noop_task, [], {})
        new_result = async_to_sync(default_task_backend.aget_result)(result.id)
        assert result == new_result

    def _mark_successful(self) -> None:
        now = timezone.now()
        TaskRow.objects.all().update(status=broker.DONE, state=states.SUCCESS, result="42",
                                     date_started=now, date_done=now, worker="w@elsewhere")

    def _assert_fresh(self, result: Any) -> None:
        assert result.status == TaskResultStatus.READY
        assert not result.is_finished
        assert result.started_at is None
        assert result.last_attempted_at is None
        assert result.finished_at is None
        assert result.attempts == 0

    def _assert_refreshed(self, result: Any) -> None:
        assert result.started_at is not None
        assert result.last_attempted_at is not None
        assert result.finished_at is not None
        assert result.status == TaskResultStatus.SUCCESSFUL
        assert result.is_finished
        assert result.return_value == 42
        assert result.attempts == 1

    def test_refresh_result(self, django_assert_num_queries: Any) -> None:
        result = default_task_backend.enqueue(test_tasks.calculate_meaning_of_life, (), {})
        self._mark_successful()
        self._assert_fresh(result)
        with django_assert_num_queries(1):
            result.refresh()
        self._assert_refreshed(result)

    def test_refresh_result_async(self) -> None:
        result = async_to_sync(default_task_backend.aenqueue)(
            test_tasks.calculate_meaning_of_life, (), {})
        self._mark_successful()
        self._assert_fresh(result)
        async_to_sync(result.arefresh)()
        self._assert_refreshed(result)

    def test_get_missing_result(self) -> None:
        with pytest.raises(TaskResultDoesNotExist):
            default_task_backend.get_result(str(uuid.uuid4()))

    def test_async_get_missing_result(self) -> None:
        with pytest.raises(TaskResultDoesNotExist):
            async_to_sync(default_task_backend.aget_result)(str(uuid.uuid4()))

    def test_invalid_uuid(self) -> None:
        with pytest.raises(TaskResultDoesNotExist):
            default_task_backend.get_result("123")

    def test_async_invalid_uuid(self) -> None:
        with pytest.raises(TaskResultDoesNotExist):
            async_to_sync(default_task_backend.aget_result)("123")

    def test_invalid_task_path(self) -> None:
        # A row naming something that is not a Task is no result of the framework.
        task_id = insert_row("subprocess.check_output", [["exit", "1"]])
        with pytest.raises(TaskResultDoesNotExist, match="subprocess.check_output"):
            default_task_backend.get_result(task_id)

    def test_missing_task_path(self) -> None:
        task_id = insert_row("missing.func")
        with pytest.raises(TaskResultDoesNotExist, match="missing.func"):
            default_task_backend.get_result(task_id)

    def test_check(self) -> None:
        errors = list(default_task_backend.check())
        assert errors == []

    def test_database_backend_app_missing(self) -> None:
        with override_settings(INSTALLED_APPS=[]):
            errors = list(default_task_backend.check())
        assert len(errors) == 1
        assert "djq" in str(errors[0].hint)

    def test_priority_range_check(self) -> None:
        for bad in (-101, 101, 3.1):
            with pytest.raises(InvalidTaskError, match="priority must be a whole number"):
                test_tasks.noop_task.using(priority=bad)  # type: ignore[arg-type]
        for good in (100, -100, 0):
            result = test_tasks.noop_task.using(priority=good).enqueue()
            assert TaskRow.objects.get(id=result.id).priority == good

    def test_doesnt_wait_until_transaction_commit(self) -> None:
        with transaction.atomic():
            result = test_tasks.noop_task.enqueue()
            assert result.enqueued_at is not None
            assert TaskRow.objects.count() == 1
            assert count_in_new_connection() == 0
        assert count_in_new_connection() == 1

    def test_enqueue_logs(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level("DEBUG", logger="django_tasks")
        result = test_tasks.noop_task.enqueue()
        output = [r.getMessage() for r in caplog.records if r.name == "django_tasks"]
        assert len(output) == 1
        assert "enqueued" in output[0]
        assert result.id in output[0]

    def test_run_after_tz(self) -> None:
        result = test_tasks.noop_task.enqueue()
        assert default_task_backend.get_result(result.id).task.run_after is None

    def test_validate_on_enqueue(self) -> None:
        with override_settings(TASKS={"default": {"BACKEND": "djq.backends.DjqBackend",
                                                  "QUEUES": ["unknown_queue"]}}):
            task_with_custom_queue_name = test_tasks.noop_task.using(
                queue_name="unknown_queue")
        with pytest.raises(InvalidTaskError,
                           match="Queue 'unknown_queue' is not valid for backend"):
            task_with_custom_queue_name.enqueue()
        assert TaskRow.objects.count() == 0

    def test_validate_on_aenqueue(self) -> None:
        with override_settings(TASKS={"default": {"BACKEND": "djq.backends.DjqBackend",
                                                  "QUEUES": ["unknown_queue"]}}):
            task_with_custom_queue_name = test_tasks.noop_task.using(
                queue_name="unknown_queue")
        with pytest.raises(InvalidTaskError,
                           match="Queue 'unknown_queue' is not valid for backend"):
            async_to_sync(task_with_custom_queue_name.aenqueue)()
        assert TaskRow.objects.count() == 0


class TestDatabaseBackendWorker:
    @pytest.mark.parametrize("task", [test_tasks.noop_task, test_tasks.noop_task_async])
    def test_run_enqueued_task(self, worker: Any, task: Task[Any, Any]) -> None:
        result = task.enqueue()
        assert result.status == TaskResultStatus.READY
        finished(result)
        assert result.started_at is not None
        assert result.last_attempted_at is not None
        assert result.finished_at is not None
        assert result.started_at >= result.enqueued_at
        assert result.finished_at >= result.started_at
        assert result.status == TaskResultStatus.SUCCESSFUL
        assert result.attempts == 1
        assert waiting() == 0

    def test_batch_processes_all_tasks(self, start_worker: Any) -> None:
        results = [test_tasks.noop_task.enqueue() for _ in range(3)]
        results.append(test_tasks.failing_task_value_error.enqueue())
        assert waiting() == 4
        start_worker()
        for result in results:
            finished(result)
        assert waiting() == 0
        assert TaskRow.objects.filter(state=states.SUCCESS).count() == 3
        assert TaskRow.objects.filter(state=states.FAILURE).count() == 1

    def test_doesnt_process_different_queue(self, start_worker: Any) -> None:
        result = test_tasks.noop_task.using(queue_name="queue-1").enqueue()
        start_worker()  # the default queue
        finished(test_tasks.noop_task.enqueue())
        assert TaskRow.objects.get(id=result.id).status == broker.WAITING
        start_worker("-Q", result.task.queue_name)
        finished(result)
        assert waiting() == 0

    def test_process_all_queues(self, start_worker: Any) -> None:
        one = test_tasks.noop_task.using(queue_name="queue-1").enqueue()
        default = test_tasks.noop_task.enqueue()
        start_worker("-Q", "default,queue-1,dj-high")
        finished(one)
        finished(default)
        assert waiting() == 0

    def test_failing_task(self, worker: Any) -> None:
        result = test_tasks.failing_task_value_error.enqueue()
        assert result.status == TaskResultStatus.READY
        finished(result)
        assert result.started_at is not None
        assert result.last_attempted_at is not None
        assert result.finished_at is not None
        assert result.started_at >= result.enqueued_at
        assert result.finished_at >= result.started_at
        assert result.status == TaskResultStatus.FAILED
        with pytest.raises(ValueError, match="Task failed"):
            result.return_value  # noqa: B018
        assert result.errors[0].exception_class == ValueError
        traceback = result.errors[0].traceback
        assert traceback.endswith("ValueError: This task failed due to ValueError\n"), traceback
        assert waiting() == 0

    def test_complex_exception(self, worker: Any) -> None:
        result = test_tasks.complex_exception.enqueue()
        finished(result)
        assert result.started_at >= result.enqueued_at
        assert result.finished_at >= result.started_at
        assert result.status == TaskResultStatus.FAILED
        with pytest.raises(ValueError, match="Task failed"):
            result.return_value  # noqa: B018
        assert result.errors[0].exception_class == ValueError
        assert 'ValueError(ValueError("This task failed"))' in result.errors[0].traceback

    def test_complex_return_value(self, worker: Any) -> None:
        result = test_tasks.complex_return_value.enqueue()
        finished(result)
        assert result.status == TaskResultStatus.FAILED
        assert result.started_at is not None
        assert result.last_attempted_at is not None
        assert result.finished_at is not None
        assert result._return_value is None
        assert result.errors[0].exception_class == TypeError
        assert "is not JSON serializable" in result.errors[0].traceback

    def test_run_after(self, worker: Any) -> None:
        result = test_tasks.noop_task.using(
            run_after=timezone.now() + datetime.timedelta(hours=10)).enqueue()
        finished(test_tasks.noop_task.enqueue())  # the worker is busy with the queue
        assert TaskRow.objects.get(id=result.id).status == broker.WAITING
        result.refresh()
        assert result.status == TaskResultStatus.READY
        TaskRow.objects.filter(id=result.id).update(run_at=timezone.now())
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, 'default')", [broker.ENQUEUE_CHANNEL])
        finished(result)
        assert result.status == TaskResultStatus.SUCCESSFUL
        assert waiting() == 0

    def test_run_after_priority(self, start_worker: Any,
                                monkeypatch: pytest.MonkeyPatch) -> None:
        now = timezone.now()
        record = test_tasks.record
        record.using(priority=20, run_after=now - datetime.timedelta(hours=2)).enqueue(
            "order", "old_task")
        record.using(priority=20, run_after=now - datetime.timedelta(hours=10)).enqueue(
            "order", "very_old_task")
        far_future = record.using(run_after=now + datetime.timedelta(hours=10)).enqueue(
            "order", "far_future_result")
        high_far_future = record.using(
            priority=10, run_after=now + datetime.timedelta(hours=10)).enqueue(
            "order", "high_priority_far_future_result")
        future = record.using(run_after=now + datetime.timedelta(hours=2)).enqueue(
            "order", "future_result")
        record.using(priority=10).enqueue("order", "high_priority_result")
        record.using(priority=2).enqueue("order", "low_priority_result")
        last = record.using(priority=-2).enqueue("order", "lower_priority_result")
        start_worker(pool="solo")  # one at a time, in claim order
        finished(last)
        assert [e.value for e in effects("order")] == [
            "very_old_task", "old_task", "high_priority_result", "low_priority_result",
            "lower_priority_result",
        ]
        for result in (far_future, high_far_future, future):
            result.refresh()
            assert result.status == TaskResultStatus.READY

    def test_invalid_task_path(self, worker: Any) -> None:
        task_id = insert_row("subprocess.check_output", [["exit", "1"]])
        wait_done(task_id)
        assert row_state(task_id) == states.FAILURE

    def test_missing_task_path(self, worker: Any) -> None:
        task_id = insert_row("missing.func")
        wait_done(task_id)
        assert row_state(task_id) == states.FAILURE

    def test_worker_doesnt_exit(self, worker: Any) -> None:
        result = finished(test_tasks.exit_task.enqueue())
        assert result.status == TaskResultStatus.FAILED
        assert result.errors[0].exception_class == SystemExit
        assert worker.proc.poll() is None
        assert finished(test_tasks.noop_task.enqueue()).status == TaskResultStatus.SUCCESSFUL

    def test_worker_with_locked_rows(self, start_worker: Any) -> None:
        result_1 = test_tasks.noop_task.enqueue()
        other = connections.create_connection("default")
        try:
            other.set_autocommit(False)
            with other.cursor() as cursor:
                cursor.execute("SELECT id FROM djq_task FOR UPDATE")
                assert len(cursor.fetchall()) == 1
            result_2 = test_tasks.noop_task.enqueue()
            start_worker()
            finished(result_2)
            result_1.refresh()
            assert result_1.status == TaskResultStatus.READY
            assert result_2.status == TaskResultStatus.SUCCESSFUL
        finally:
            other.rollback()
            other.close()
        # Unlocked, it runs too (at the latest on the worker's fallback poll).
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, 'default')", [broker.ENQUEUE_CHANNEL])
        assert finished(result_1).status == TaskResultStatus.SUCCESSFUL

    def test_takes_context(self, worker: Any) -> None:
        result = finished(test_tasks.get_task_id.enqueue())
        assert result.return_value == result.id

    def test_context(self, worker: Any) -> None:
        result = finished(test_tasks.check_context.enqueue(1))
        assert result.status == TaskResultStatus.SUCCESSFUL

    def test_task_import_string(self, worker: Any) -> None:
        task_id = insert_row("tests.testapp.django_tasks.some_test")
        row = wait_done(task_id)
        assert row.state == states.FAILURE
        assert "NotRegistered" in (row.traceback or "")


@pytest.mark.django_db(transaction=True)
class TestDatabaseTaskResult:
    def test_cross_connection(self) -> None:
        test_tasks.noop_task.enqueue()
        test_tasks.noop_task.enqueue()
        assert TaskRow.objects.count() == 2
        assert TaskRow.objects.using("default").count() == 2
        assert count_in_new_connection() == 2


class TestDatabaseWorkerProcess:
    def test_run_subprocess(self, worker: Any) -> None:
        result = test_tasks.noop_task.enqueue()
        assert result.status == TaskResultStatus.READY
        finished(result)
        assert result.status == TaskResultStatus.SUCCESSFUL

    @pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
    def test_interrupt_signals(self, start_worker: Any, signum: int) -> None:
        result = test_tasks.sleep_for.enqueue(2)
        assert TaskRow.objects.get(id=result.id).worker is None
        process = start_worker()

        def running() -> bool:
            result.refresh()
            return result.status == TaskResultStatus.RUNNING

        wait_for(running, 10, message="the task to be running")
        assert result.worker_ids == ["w1@test"]
        process.send_signal(signum)
        assert process.proc.wait(15) == 0
        result.refresh()
        assert result.status == TaskResultStatus.SUCCESSFUL

    def test_system_exit_task(self, worker: Any) -> None:
        result = finished(test_tasks.failing_task_system_exit.enqueue())
        assert result.status == TaskResultStatus.FAILED
        assert result.errors[0].exception_class == SystemExit
        assert worker.proc.poll() is None

    def test_keyboard_interrupt_task(self, worker: Any) -> None:
        result = finished(test_tasks.failing_task_keyboard_interrupt.enqueue())
        assert result.status == TaskResultStatus.FAILED
        assert result.errors[0].exception_class == KeyboardInterrupt
        assert worker.proc.poll() is None

    def test_multiple_workers(self, start_worker: Any) -> None:
        results = [test_tasks.sleep_for.enqueue(0.1) for _ in range(10)]
        for _ in range(3):
            start_worker(concurrency=1)
        for result in results:
            finished(result)
            assert result.status == TaskResultStatus.SUCCESSFUL
            assert result.worker_ids[0] in {"w1@test", "w2@test", "w3@test"}
