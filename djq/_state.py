"""What the running task knows about itself, shared by the modules that need it.

``Context`` is ``task.request``; :func:`current_request` is the request of the task this
thread is running, if any (the parent of the tasks it sends). Both live here, apart from
:mod:`djq.task` and :mod:`djq.trace`, so that calling, results and the canvas can read
them without importing each other (Celery's ``celery._state``).
"""

from __future__ import annotations

import threading
from typing import Any


class Context:
    """``task.request``: what the running task knows about its own call."""

    id: str | None = None
    task: str | None = None
    args: list[Any] | tuple[Any, ...] = ()
    kwargs: dict[str, Any] = {}
    retries: int = 0
    eta: str | None = None
    expires: str | None = None
    hostname: str | None = None
    delivery_info: dict[str, Any] = {}
    root_id: str | None = None
    parent_id: str | None = None
    group: str | None = None
    is_eager: bool = False
    called_directly: bool = True
    ignore_result: bool = False
    callbacks: list[dict[str, Any]] | None = None
    errbacks: list[dict[str, Any]] | None = None
    headers: dict[str, Any] | None = None
    timelimit: tuple[float | None, float | None] = (None, None)
    priority: int | None = None
    origin: str | None = None
    result_json: str | None = None  # the return value as stored, set by the tracer

    def __init__(self, **kwargs: Any) -> None:
        self.__dict__.update(kwargs)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in (
            "id", "task", "args", "kwargs", "retries", "eta", "expires", "hostname",
            "delivery_info", "root_id", "parent_id", "group", "is_eager", "called_directly",
            "ignore_result",
        )}

    def __repr__(self) -> str:
        return f"<Context: {self.as_dict()!r}>"


class _Running(threading.local):
    request: Context | None = None


_running = _Running()


def current_request() -> Context | None:
    """The request of the task running in this thread, if any (parents of new tasks)."""
    return _running.request


def set_current_request(request: Context | None) -> None:
    """Set by the tracer as a task starts (its request) and ends (None)."""
    _running.request = request
