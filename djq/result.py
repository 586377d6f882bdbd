"""``AsyncResult``: a task's state and result, read from the database by id."""

from __future__ import annotations

import datetime
import importlib
import time
import uuid
from typing import Any

import psycopg

from . import broker, serialization, states
from .exceptions import TaskError, TimeoutError


def exception_from_dict(data: Any) -> BaseException:
    """Rebuild a stored exception: its own type where importable, else a look-alike
    subclass of :class:`TaskError` with the same name."""
    if not isinstance(data, dict) or "exc_type" not in data:
        return TaskError(repr(data))
    name = str(data.get("exc_type"))
    module = str(data.get("exc_module") or "builtins")
    message = data.get("exc_message") or []
    args = message if isinstance(message, list) else [message]
    cls: Any = None
    try:
        cls = getattr(importlib.import_module(module), name, None)
    except Exception:  # noqa: BLE001 - an unimportable module is just "not importable"
        cls = None
    if isinstance(cls, type) and issubclass(cls, BaseException):
        try:
            exc: BaseException = cls(*args)
        except Exception:  # noqa: BLE001 - a constructor with another signature
            exc = cls.__new__(cls)
            exc.args = tuple(args)
        return exc
    lookalike = type(name, (TaskError,), {"__module__": module})
    made: BaseException = lookalike(*args)
    return made


class AsyncResult:
    """The state and result of a task, by id. Attributes read the database each time."""

    def __init__(self, id: str | uuid.UUID, task_name: str | None = None,
                 using: str | None = None, **kwargs: Any) -> None:
        self.id = str(id)
        self.task_id = self.id
        self._task_name = task_name
        self.using = using
        self._cache: dict[str, Any] | None = None

    # -- reading -------------------------------------------------------------------------
    def _row(self) -> dict[str, Any] | None:
        if self._cache is not None:
            return self._cache
        try:
            uuid.UUID(self.id)
        except ValueError:
            return None
        row = broker.fetch(self.id, using=self.using)
        if row is not None and row["state"] in states.READY_STATES:
            self._cache = row  # a finished result no longer changes
        return row

    def _decoded_result(self, row: dict[str, Any] | None) -> Any:
        if row is None or row["result"] is None:
            return None
        value = serialization.loads(row["result"])
        if row["state"] in states.EXCEPTION_STATES:
            return exception_from_dict(value)
        return value

    @property
    def state(self) -> str:
        row = self._row()
        return row["state"] if row else states.PENDING

    status = state

    @property
    def result(self) -> Any:
        """The return value, the exception of a failed task, or a custom state's meta."""
        return self._decoded_result(self._row())

    info = result

    @property
    def traceback(self) -> str | None:
        row = self._row()
        return row["traceback"] if row else None

    def _field(self, name: str) -> Any:
        row = self._row()
        return row[name] if row else None

    @property
    def name(self) -> str | None:
        return self._field("name") or self._task_name

    @property
    def args(self) -> Any:
        row = self._row()
        return serialization.loads(row["args"]) if row else None

    @property
    def kwargs(self) -> Any:
        row = self._row()
        return serialization.loads(row["kwargs"]) if row else None

    @property
    def retries(self) -> int | None:
        return self._field("retries")  # type: ignore[no-any-return]

    @property
    def worker(self) -> str | None:
        return self._field("worker")  # type: ignore[no-any-return]

    @property
    def queue(self) -> str | None:
        return self._field("queue")  # type: ignore[no-any-return]

    @property
    def date_created(self) -> datetime.datetime | None:
        return self._field("date_created")  # type: ignore[no-any-return]

    @property
    def date_started(self) -> datetime.datetime | None:
        return self._field("date_started")  # type: ignore[no-any-return]

    @property
    def date_done(self) -> datetime.datetime | None:
        return self._field("date_done")  # type: ignore[no-any-return]

    @property
    def parent(self) -> AsyncResult | None:
        parent_id = self._field("parent_id")
        return AsyncResult(parent_id, using=self.using) if parent_id else None

    @property
    def children(self) -> list[AsyncResult]:
        return [AsyncResult(i, using=self.using) for i in broker.children(self.id, self.using)]

    def ready(self) -> bool:
        return self.state in states.READY_STATES

    def successful(self) -> bool:
        return self.state == states.SUCCESS

    def failed(self) -> bool:
        return self.state == states.FAILURE

    # -- waiting -------------------------------------------------------------------------
    def get(self, timeout: float | None = None, propagate: bool = True,
            interval: float = 0.5, disable_sync_subtasks: bool = True,
            **kwargs: Any) -> Any:
        """Wait until the task is ready and return its result.

        Waits on LISTEN/NOTIFY: each finished task wakes its readers, so this does not
        poll; ``interval`` only bounds how long one wait lasts before the row is read
        again. Raises :class:`djq.exceptions.TimeoutError` after ``timeout`` seconds, and
        the task's own exception when it failed and ``propagate`` is true.
        """
        from .db import drop_result_listener, result_listener
        from .trace import current_request

        if disable_sync_subtasks and current_request() is not None:
            raise RuntimeError(
                "Never call result.get() within a task: it can deadlock the worker "
                "(pass disable_sync_subtasks=False if you must)"
            )
        deadline = None if timeout is None else time.monotonic() + timeout
        listener = None
        while True:
            if listener is None:
                try:
                    listener = result_listener(self.using)
                except psycopg.Error:
                    listener = None  # fall back to reading every ``interval``
            row = self._row()
            if row is not None and row["state"] in states.READY_STATES:
                return self._finish(row, propagate)
            wait = interval if interval and interval > 0 else 0.5
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("The operation timed out.")
                wait = min(wait, remaining)
            if listener is None:
                time.sleep(wait)
                continue
            try:
                self._wait_for(listener, wait)
            except psycopg.Error:
                drop_result_listener(self.using)
                listener = None

    def _wait_for(self, listener: Any, wait: float) -> None:
        end = time.monotonic() + wait
        while True:
            for _, payload in listener.wait(max(0.0, end - time.monotonic())):
                if self.id in payload.split(","):
                    return
            if time.monotonic() >= end:
                return

    wait = get

    def _finish(self, row: dict[str, Any], propagate: bool) -> Any:
        value = self._decoded_result(row)
        if propagate and row["state"] in states.PROPAGATE_STATES:
            if isinstance(value, BaseException):
                raise value
            raise TaskError(value)
        return value

    # -- acting ---------------------------------------------------------------------------
    def forget(self) -> None:
        """Delete the stored result; the id then reads PENDING."""
        broker.forget(self.id, using=self.using)
        self._cache = None

    def revoke(self, terminate: bool = False, signal: str = "SIGTERM", **kwargs: Any) -> None:
        """Revoke the task: a task not yet started never runs."""
        from . import control

        control.revoke(self.id, terminate=terminate, signal=signal, using=self.using)
        self._cache = None

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AsyncResult):
            return other.id == self.id
        if isinstance(other, str):
            return other == self.id
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.id}>"

    def __str__(self) -> str:
        return self.id


class EagerResult(AsyncResult):
    """The result of a task run inline (``apply()`` or ``task_always_eager``)."""

    def __init__(self, id: str, ret_value: Any, state: str, traceback: str | None = None,
                 name: str | None = None) -> None:
        super().__init__(id, task_name=name)
        self._result = ret_value
        self._state = state
        self._traceback = traceback

    @property
    def state(self) -> str:
        return self._state

    status = state

    @property
    def result(self) -> Any:
        return self._result

    info = result

    @property
    def traceback(self) -> str | None:
        return self._traceback

    def get(self, timeout: float | None = None, propagate: bool = True,
            interval: float = 0.5, disable_sync_subtasks: bool = True,
            **kwargs: Any) -> Any:
        if propagate and self._state in states.PROPAGATE_STATES and isinstance(
                self._result, BaseException):
            raise self._result
        return self._result

    wait = get

    def forget(self) -> None:
        pass

    def revoke(self, *args: Any, **kwargs: Any) -> None:
        self._state = states.REVOKED


__all__ = ["AsyncResult", "EagerResult", "exception_from_dict"]
