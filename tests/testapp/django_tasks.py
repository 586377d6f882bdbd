"""Tasks declared with Django's own ``@task`` (the django-tasks backport here), run by
djq workers through ``djq.backends.DjqBackend`` (tests/settings.py ``TASKS``).

Receivers of the framework's ``task_started`` and ``task_finished`` write a SideEffect
row per signal in processes started with ``DJQ_TEST_RECORD_SIGNALS=1``.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from django_tasks import TaskContext, task
from django_tasks.signals import task_finished, task_started

from .models import SideEffect

SIGNAL_PREFIX = "django-signal:"


@task()
def noop_task(*args: Any, **kwargs: Any) -> None:
    return None


@task()
async def noop_task_async(*args: Any, **kwargs: Any) -> None:
    return None


@task
def noop_task_from_bare_decorator(*args: Any, **kwargs: Any) -> None:
    return None


@task()
def calculate_meaning_of_life() -> int:
    return 42


@task()
def add(x: int, y: int) -> int:
    return x + y


@task()
def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
    return {"args": list(args), "kwargs": kwargs}


@task()
async def async_add(x: int, y: int) -> dict[str, Any]:
    await asyncio.sleep(0.01)
    return {"sum": x + y, "pid": os.getpid()}


@task()
def failing_task_value_error() -> None:
    raise ValueError("This task failed due to ValueError")


@task()
def failing_task_system_exit() -> None:
    raise SystemExit("This task failed due to SystemExit")


@task()
def failing_task_keyboard_interrupt() -> None:
    raise KeyboardInterrupt("This task failed due to KeyboardInterrupt")


@task()
def complex_exception() -> None:
    raise ValueError(ValueError("This task failed"))


@task()
def complex_return_value() -> Any:
    # Neither JSON nor picklable.
    return lambda: True


@task()
def exit_task() -> None:
    exit(1)


@task()
def sleep_for(seconds: float) -> None:
    time.sleep(seconds)


@task()
def record(key: str, value: str = "") -> str:
    SideEffect.objects.create(key=key, value=value, pid=os.getpid())
    return value


@task(priority=50, queue_name="dj-high")
def urgent(key: str) -> str:
    SideEffect.objects.create(key=key, value="urgent", pid=os.getpid())
    return "urgent"


@task(takes_context=True)
def get_task_id(context: TaskContext) -> str:
    return context.task_result.id


@task(takes_context=True)
def check_context(context: TaskContext, attempt: int) -> None:
    assert isinstance(context, TaskContext)
    assert context.attempt == attempt


@task(takes_context=True)
def context_info(context: TaskContext, label: str) -> dict[str, Any]:
    result = context.task_result
    return {
        "label": label, "attempt": context.attempt, "id": result.id,
        "status": str(result.status), "worker_ids": result.worker_ids,
        "args": result.args, "backend": result.backend,
        "enqueued": result.enqueued_at is not None, "started": result.started_at is not None,
    }


@task(takes_context=True)
async def async_context_info(context: TaskContext) -> dict[str, Any]:
    return {"attempt": context.attempt, "id": context.task_result.id}


def _record_signal(name: str, sender: Any, task_result: Any) -> None:
    if os.environ.get("DJQ_TEST_RECORD_SIGNALS") != "1":
        return
    errors = ",".join(e.exception_class_path for e in task_result.errors)
    SideEffect.objects.create(
        key=SIGNAL_PREFIX + name, pid=os.getpid(),
        value=f"{task_result.id}|{sender.__name__}|{task_result.status}|"
              f"{task_result.task.module_path}|{task_result.attempts}|{errors}",
    )


def on_task_started(sender: Any, task_result: Any, **kwargs: Any) -> None:
    _record_signal("task_started", sender, task_result)


def on_task_finished(sender: Any, task_result: Any, **kwargs: Any) -> None:
    _record_signal("task_finished", sender, task_result)


task_started.connect(on_task_started, dispatch_uid="testapp.django_tasks.started",
                     weak=False)
task_finished.connect(on_task_finished, dispatch_uid="testapp.django_tasks.finished",
                      weak=False)
