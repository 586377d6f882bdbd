"""Ending a running task from another thread, for the ``threads`` and ``solo`` pools:
time limits and ``revoke(terminate=True)`` raise an exception inside the task's thread
(CPython's ``PyThreadState_SetAsyncExc``).

The exception arrives between two Python bytecodes: a task blocked in C code (a system
call, a C extension) gets it only when it returns to Python. A thread is interruptible
only while it runs a task's body (:func:`interruptible`), so an interrupt never lands in
the pool's own code: the target is checked and the exception set under one lock, and a
thread leaving the body unregisters and drops any interrupt still pending under the same
lock.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from .exceptions import SoftTimeLimitExceeded, TaskRevokedError, TimeLimitExceeded


class Interrupt:
    """Marks the exception classes raised into a task's thread."""


class Terminated(TaskRevokedError):
    """The task has been terminated by a revoke."""

    signum: int | None = None


_lock = threading.Lock()
_running: dict[int, str] = {}  # thread ident -> id of the task whose body it runs


def _set_async_exc(ident: int, exc_type: type[BaseException] | None) -> int:
    return int(ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(ident), ctypes.py_object(exc_type) if exc_type else None))


def _carrying(base: type[BaseException], *args: object,
              **attrs: object) -> type[BaseException]:
    """A subclass of ``base`` (same name and module) whose instances are made with
    ``args``: an asynchronous exception is given as a class, and raised without any."""

    def __init__(self: BaseException) -> None:  # noqa: N807 - set on the class below
        base.__init__(self, *args)

    return type(base.__name__, (base, Interrupt), {
        "__init__": __init__, "__module__": base.__module__,
        "__qualname__": base.__qualname__, **attrs,
    })


def soft_time_limit() -> type[BaseException]:
    return _carrying(SoftTimeLimitExceeded)


def hard_time_limit(limit: float) -> type[BaseException]:
    return _carrying(TimeLimitExceeded, f"TimeLimitExceeded({limit:g})")


def terminated(signum: int) -> type[BaseException]:
    return _carrying(Terminated, "terminated", signum=signum)


def interrupt(task_id: str, exc_type: type[BaseException]) -> bool:
    """Raise ``exc_type`` in the thread running the body of ``task_id``; False if no
    thread is running it now."""
    with _lock:
        for ident, running in _running.items():
            if running == task_id:
                return _set_async_exc(ident, exc_type) == 1
    return False


@contextmanager
def interruptible(task_id: str) -> Iterator[None]:
    """Run a task's body where :func:`interrupt` can reach it."""
    ident = threading.get_ident()
    with _lock:
        _set_async_exc(ident, None)  # nothing left over from before
        _running[ident] = task_id
    try:
        yield
    finally:
        leave()


def leave() -> None:
    """Make this thread uninterruptible, dropping an interrupt still pending."""
    ident = threading.get_ident()
    # An interrupt set just as the body ended may fire here, before the lock is ours:
    # the body is over, so it is dropped, and leaving is tried again. Once unregistered
    # under the lock, with nothing pending, none can come. (The thread pool catches one
    # that fires even earlier, between the body's end and this loop.)
    while True:
        try:
            with _lock:
                _running.pop(ident, None)
                _set_async_exc(ident, None)
            return
        except BaseException as exc:  # noqa: BLE001 - only our own interrupts
            if not isinstance(exc, Interrupt):
                raise
