"""Signal receivers that write a SideEffect row per signal, so a test can see which
signals a worker sent. They act only in processes started with
``DJQ_TEST_RECORD_SIGNALS=1`` in their environment."""

from __future__ import annotations

import os
from typing import Any

from djq import signals

from .models import SideEffect

PREFIX = "signal:"


def _on() -> bool:
    return os.environ.get("DJQ_TEST_RECORD_SIGNALS") == "1"


def _write(name: str, value: str) -> None:
    SideEffect.objects.create(key=PREFIX + name, value=value, pid=os.getpid())


def on_task_received(sender: Any = None, request: Any = None, **kwargs: Any) -> None:
    if _on():
        _write("task_received", f"{request.id}|{request.task}")


def on_task_prerun(sender: Any = None, task_id: Any = None, task: Any = None,
                   args: Any = None, kwargs: Any = None, **extra: Any) -> None:
    if _on():
        _write("task_prerun", f"{task_id}|{task.name}|{list(args)!r}")


def on_task_postrun(sender: Any = None, task_id: Any = None, retval: Any = None,
                    state: Any = None, **kwargs: Any) -> None:
    if _on():
        _write("task_postrun", f"{task_id}|{state}")


def on_task_success(sender: Any = None, result: Any = None, **kwargs: Any) -> None:
    if _on():
        _write("task_success", f"{sender.request.id}|{result!r}")


def on_task_failure(sender: Any = None, task_id: Any = None, exception: Any = None,
                    **kwargs: Any) -> None:
    if _on():
        _write("task_failure", f"{task_id}|{type(exception).__name__}")


def on_task_retry(sender: Any = None, request: Any = None, reason: Any = None,
                  **kwargs: Any) -> None:
    if _on():
        _write("task_retry", f"{request.id}|{request.retries}")


def on_task_unknown(sender: Any = None, name: Any = None, id: Any = None,
                    **kwargs: Any) -> None:
    if _on():
        _write("task_unknown", f"{id}|{name}")


def on_worker_ready(sender: Any = None, **kwargs: Any) -> None:
    if _on():
        _write("worker_ready", str(getattr(sender, "hostname", "")))


def on_worker_process_init(sender: Any = None, **kwargs: Any) -> None:
    if _on():
        _write("worker_process_init", "")


def on_worker_shutdown(sender: Any = None, **kwargs: Any) -> None:
    if _on():
        _write("worker_shutdown", str(getattr(sender, "hostname", "")))


def broken(**kwargs: Any) -> None:
    """A receiver with a bug, active with ``DJQ_TEST_BROKEN_RECEIVERS=1``."""
    if os.environ.get("DJQ_TEST_BROKEN_RECEIVERS") == "1":
        raise RuntimeError("receiver bug")


def connect() -> None:
    for signal, receiver in (
        (signals.task_received, on_task_received),
        (signals.task_prerun, on_task_prerun),
        (signals.task_postrun, on_task_postrun),
        (signals.task_success, on_task_success),
        (signals.task_failure, on_task_failure),
        (signals.task_retry, on_task_retry),
        (signals.task_unknown, on_task_unknown),
        (signals.worker_ready, on_worker_ready),
        (signals.worker_process_init, on_worker_process_init),
        (signals.worker_shutdown, on_worker_shutdown),
    ):
        signal.connect(receiver, dispatch_uid=f"testapp.{receiver.__name__}", weak=False)
    for signal in (signals.task_received, signals.task_prerun, signals.task_postrun,
                   signals.task_success, signals.task_failure, signals.worker_ready,
                   signals.worker_process_init):
        signal.connect(broken, dispatch_uid="testapp.broken", weak=False)
