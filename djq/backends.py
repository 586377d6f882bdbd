"""``DjqBackend``: tasks of Django's Tasks framework, run by djq workers.

``TASKS = {"default": {"BACKEND": "djq.backends.DjqBackend", "QUEUES": ["default"]}}``

A Django task enqueued here is an ordinary djq row, written by the same INSERT as
``apply_async`` (:func:`djq.broker.enqueue`):

- ``name``: the task's module path, so the admin, the API and the commands show it;
- ``queue``: the task's ``queue_name``;
- ``priority``: Django's priority unchanged. djq's priority is an integer where higher
  runs first and 0 is the default, as in Django; Django's -100..100 is a part of that
  range, so it maps onto itself and Django tasks interleave with djq tasks by priority;
- ``run_after``: the row's ``eta`` (a worker does not claim it before then);
- arguments: JSON, as the framework requires (anything else raises ``EncodeError``
  and stores nothing);
- the ``django_task`` message header: the backend alias and ``takes_context``.

A worker meets the module path as an unregistered name and asks the registry's
resolvers (:class:`djq.registry.Registry`); :func:`resolve_django_task`, installed by djq's
AppConfig, imports the path and wraps a Django task in a :class:`DjangoTaskAdapter`.
djq's tracer stores the outcome like any task's; :meth:`DjqBackend.get_result` reads
the row back as a ``TaskResult``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import traceback
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from django.apps import apps
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from django.utils.module_loading import import_string

from . import broker, serialization, signals, states
from ._state import Context
from .exceptions import EncodeError
from .publish import publish_one
from .registry import registry
from .task import Task

if TYPE_CHECKING:
    from django_tasks import TaskContext, TaskResult, TaskResultStatus, task_backends
    from django_tasks.backends.base import BaseTaskBackend
    from django_tasks.base import Task as DjangoTask
    from django_tasks.base import TaskError
    from django_tasks.exceptions import InvalidTaskError, TaskResultDoesNotExist
    from django_tasks.signals import task_enqueued, task_finished, task_started
    from django_tasks.utils import normalize_json
else:
    try:  # Django 6
        from django.tasks import TaskContext, TaskResult, TaskResultStatus, task_backends
        from django.tasks.backends.base import BaseTaskBackend
        from django.tasks.base import Task as DjangoTask
        from django.tasks.base import TaskError
        from django.tasks.exceptions import InvalidTask as InvalidTaskError
        from django.tasks.exceptions import TaskResultDoesNotExist
        from django.tasks.signals import task_enqueued, task_finished, task_started
        from django.tasks.utils import normalize_json
    except ImportError:  # Django 5.2 and the django-tasks backport
        from django_tasks import TaskContext, TaskResult, TaskResultStatus, task_backends
        from django_tasks.backends.base import BaseTaskBackend
        from django_tasks.base import Task as DjangoTask
        from django_tasks.base import TaskError
        from django_tasks.exceptions import InvalidTaskError, TaskResultDoesNotExist
        from django_tasks.signals import task_enqueued, task_finished, task_started
        from django_tasks.utils import normalize_json

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Message header (in the row's options) naming the backend alias and takes_context.
HEADER = "django_task"
#: Keys ``OPTIONS`` accepts. None yet: djq's own settings (``DJQ``) configure the rest.
KNOWN_OPTIONS: frozenset[str] = frozenset()


class DjqBackend(BaseTaskBackend):
    """Django's Tasks framework backend whose tasks djq workers run."""

    supports_defer = True
    supports_priority = True
    supports_get_result = True
    supports_async_task = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        self.options = dict(params.get("OPTIONS") or {})

    def enqueue(self, task: DjangoTask[..., T], args: Any, kwargs: Any) -> TaskResult[T]:
        """Store the task as a djq row (inside the caller's transaction, if any)."""
        self.validate_task(task)
        try:
            args = normalize_json(list(args))
            kwargs = normalize_json(dict(kwargs))
        except (TypeError, ValueError) as exc:
            raise EncodeError(
                f"{task.module_path}: arguments of a task of Django's Tasks framework must "
                f"be JSON: {exc}"
            ) from exc
        adapter = adapter_for(task)
        header = {HEADER: {"backend": self.alias, "takes_context": bool(task.takes_context)}}
        call = adapter.prepare(args, kwargs, eta=task.run_after, queue=task.queue_name,
                               priority=task.priority, ignore_result=False, headers=header)
        publish_one(call)
        message = call.message
        result: TaskResult[T] = TaskResult(
            task=task, id=str(message.id), status=TaskResultStatus.READY,
            enqueued_at=message.date_created, started_at=None, finished_at=None,
            last_attempted_at=None, args=args, kwargs=kwargs, backend=self.alias,
            errors=[], worker_ids=[],
        )
        signals.send(task_enqueued, sender=type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> TaskResult[Any]:
        """The task's row as a ``TaskResult``; ``TaskResultDoesNotExist`` if there is
        none, or if the row is not a task of Django's Tasks framework."""
        try:
            task_id = uuid.UUID(str(result_id))
        except ValueError:
            raise TaskResultDoesNotExist(result_id) from None
        row = broker.fetch(task_id)
        if row is None:
            raise TaskResultDoesNotExist(result_id)
        django_task = import_django_task(row["name"])
        if django_task is None:
            raise TaskResultDoesNotExist(
                f"{result_id} is a task named {row['name']!r}, which is not a task of "
                "Django's Tasks framework"
            )
        return result_from_row(row, django_task, self.alias)

    def check(self, **kwargs: Any) -> Iterable[checks.CheckMessage]:
        yield from super().check(**kwargs)
        name = type(self).__name__
        if not apps.is_installed("djq"):
            yield checks.Error(
                f"TASKS[{self.alias!r}] uses {name}, but djq is not installed",
                hint="Add 'djq' to INSTALLED_APPS", id="djq.E101",
            )
        unknown = sorted(set(self.options) - KNOWN_OPTIONS)
        if unknown:
            yield checks.Warning(
                f"Unknown OPTIONS for TASKS[{self.alias!r}] ({name}): {', '.join(unknown)}",
                hint="DjqBackend takes no OPTIONS; configure djq with settings.DJQ",
                id="djq.W101",
            )


class DjangoTaskAdapter(Task):
    """A djq task that runs a task of Django's Tasks framework.

    It passes a ``TaskContext`` (attempt = retries + 1) to ``takes_context`` tasks, runs
    coroutine functions with ``asyncio.run``, sends the framework's ``task_started`` and
    ``task_finished``, and lets djq's tracer store the outcome.
    """

    # The framework is about results: keep them whatever ``task_ignore_result`` says.
    ignore_result = False

    def __init__(self, django_task: DjangoTask[..., Any]) -> None:
        super().__init__(name=django_task.module_path)
        self.django_task = django_task
        self.__doc__ = django_task.func.__doc__
        signature = inspect.signature(django_task.func)
        params = list(signature.parameters.values())
        if django_task.takes_context:
            params = params[1:]
        self._signature = signature.replace(parameters=params)

    def run(self, *args: Any, **kwargs: Any) -> Any:
        django_task = self.django_task
        request = self.request
        result = self._running_result(request, list(args), dict(kwargs))
        sender = _backend_class(result.backend)
        signals.send(task_started, sender=sender, task_result=result)
        try:
            call_args: tuple[Any, ...] = args
            if django_task.takes_context:
                call_args = (TaskContext(task_result=result), *args)
            if inspect.iscoroutinefunction(django_task.func):
                value = asyncio.run(django_task.func(*call_args, **kwargs))
            else:
                value = django_task.func(*call_args, **kwargs)
            try:
                value = normalize_json(value)
            except (TypeError, ValueError) as exc:
                raise TypeError(
                    f"Return value of type {type(value).__name__} is not JSON serializable"
                ) from exc
        except BaseException as exc:  # noqa: BLE001 - reported, then djq's tracer stores it
            error = TaskError(exception_class_path=_class_path(type(exc)),
                              traceback="".join(traceback.format_exception(exc)))
            failed = dataclasses.replace(result, status=TaskResultStatus.FAILED,
                                         finished_at=timezone.now(), errors=[error])
            signals.send(task_finished, sender=sender, task_result=failed)
            raise
        done = dataclasses.replace(result, status=TaskResultStatus.SUCCESSFUL,
                                   finished_at=timezone.now(), errors=[])
        object.__setattr__(done, "_return_value", value)
        signals.send(task_finished, sender=sender, task_result=done)
        return value

    def _running_result(self, request: Context, args: list[Any],
                        kwargs: dict[str, Any]) -> TaskResult[Any]:
        """The ``TaskResult`` of this attempt, status RUNNING."""
        header = (request.headers or {}).get(HEADER) or {}
        alias = str(header.get("backend") or self.django_task.backend)
        django_task = self.django_task
        enqueued_at = None
        now = timezone.now()
        started_at = now
        if request.id and not request.is_eager and not request.called_directly:
            # One read for the times the row holds (enqueued, marked started).
            row = broker.fetch(request.id)
            if row is not None:
                django_task = _task_of_row(row, django_task, alias)
                enqueued_at = row["date_created"]
                started_at = row["date_started"] or now
        attempts = int(request.retries or 0) + 1
        return TaskResult(
            task=django_task, id=str(request.id or uuid.uuid4()),
            status=TaskResultStatus.RUNNING, enqueued_at=enqueued_at, started_at=started_at,
            finished_at=None, last_attempted_at=started_at, args=args, kwargs=kwargs,
            backend=alias, errors=[],
            worker_ids=[str(request.hostname or "unknown")] * attempts,
        )

    def __repr__(self) -> str:
        return f"<@task: {self.name} (Django Tasks)>"


def adapter_for(django_task: DjangoTask[..., Any]) -> DjangoTaskAdapter:
    """The registered adapter of ``django_task``, registering one if needed."""
    name = django_task.module_path
    found = registry.get(name)
    if isinstance(found, DjangoTaskAdapter) and found.django_task.func is django_task.func:
        return found
    if found is not None and not isinstance(found, DjangoTaskAdapter):
        raise InvalidTaskError(f"{name!r} is already the name of a djq task")
    adapter = DjangoTaskAdapter(django_task)
    registry[name] = adapter
    registry.resolved.add(name)  # not a @task: never shadows one (e.g. in `djq shell`)
    return adapter


def import_django_task(path: str) -> DjangoTask[..., Any] | None:
    """The task of Django's Tasks framework at module path ``path``, or None."""
    if "." not in path:
        return None
    try:
        found = import_string(path)
    except ImportError as exc:
        logger.debug("No task of Django's Tasks framework at %r: %s", path, exc)
        return None
    except Exception:  # noqa: BLE001 - a module that fails to import names no task
        logger.warning("Importing %r to look for a task of Django's Tasks framework failed",
                       path, exc_info=True)
        return None
    return found if isinstance(found, DjangoTask) else None


def resolve_django_task(name: str) -> Task | None:
    """Registry resolver: an adapter for the Django task at module path ``name``."""
    django_task = import_django_task(name)
    return None if django_task is None else DjangoTaskAdapter(django_task)


def result_from_row(row: dict[str, Any], django_task: DjangoTask[..., Any],
                    alias: str) -> TaskResult[Any]:
    """A ``TaskResult`` from a row as :func:`djq.broker.fetch` reads it.

    Status: waiting or claimed → READY, started → RUNNING, done → SUCCESSFUL if the
    state is SUCCESS, else FAILED (FAILURE, REVOKED). djq keeps the hostname of the
    latest attempt only, so ``worker_ids`` repeats it once per attempt (retries, plus the
    one running or run); ``started_at`` and ``last_attempted_at`` are that attempt's start.
    """
    header = _header(row)
    alias = str(header.get("backend") or alias)
    if row["status"] == broker.DONE:
        status = (TaskResultStatus.SUCCESSFUL if row["state"] == states.SUCCESS
                  else TaskResultStatus.FAILED)
    elif row["status"] == broker.STARTED:
        status = TaskResultStatus.RUNNING
    else:
        status = TaskResultStatus.READY
    started_at = row["date_started"]
    attempts = int(row["retries"] or 0) + (1 if started_at is not None else 0)
    errors: list[TaskError] = []
    value: Any = None
    if status == TaskResultStatus.FAILED:
        stored = serialization.loads(row["result"])
        if isinstance(stored, dict) and stored.get("exc_type"):
            path = f"{stored.get('exc_module') or 'builtins'}.{stored['exc_type']}"
        else:
            path = "djq.exceptions.TaskError"
        errors.append(TaskError(exception_class_path=path, traceback=row["traceback"] or ""))
    elif status == TaskResultStatus.SUCCESSFUL:
        value = serialization.loads(row["result"])
    result: TaskResult[Any] = TaskResult(
        task=_task_of_row(row, django_task, alias), id=str(row["id"]), status=status,
        enqueued_at=row["date_created"], started_at=started_at,
        finished_at=row["date_done"] if row["status"] == broker.DONE else None,
        last_attempted_at=started_at, args=serialization.loads(row["args"]),
        kwargs=serialization.loads(row["kwargs"]), backend=alias, errors=errors,
        worker_ids=[str(row["worker"] or "unknown")] * attempts,
    )
    object.__setattr__(result, "_return_value", value)
    return result


def _header(row: dict[str, Any]) -> dict[str, Any]:
    options = serialization.loads(row["options"]) or {}
    header = (options.get("headers") or {}).get(HEADER)
    return header if isinstance(header, dict) else {}


def _task_of_row(row: dict[str, Any], django_task: DjangoTask[..., Any],
                 alias: str) -> DjangoTask[..., Any]:
    """``django_task`` as the row was enqueued: its priority, queue, run_after, backend."""
    try:
        return dataclasses.replace(django_task, priority=row["priority"],
                                   queue_name=row["queue"], run_after=row["eta"],
                                   backend=alias)
    except (InvalidTaskError, ImproperlyConfigured):
        # The settings changed since (a queue or backend gone): the task as declared.
        return django_task


def _backend_class(alias: str) -> type[Any]:
    try:
        return type(task_backends[alias])
    except ImproperlyConfigured:
        return DjqBackend


def _class_path(cls: type[BaseException]) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


__all__ = ["DjqBackend", "DjangoTaskAdapter", "adapter_for", "import_django_task",
           "resolve_django_task", "result_from_row"]
