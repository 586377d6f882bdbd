"""Time limits of running tasks (Celery's soft and hard limits; RQ's ``timeouts.py``):
which limits apply to a row, when each falls due, and how each reaches the task.

- The soft limit raises :class:`~djq.exceptions.SoftTimeLimitExceeded` inside the task,
  which may catch it: in its thread (``threads``, ``solo``) through
  :mod:`djq.interrupts`, in its prefork process by :data:`SOFT_SIGNAL`, whose handler
  the pool process installs.
- At the hard limit a thread gets :class:`~djq.exceptions.TimeLimitExceeded` and a
  process is killed (:data:`HARD_SIGNAL`); the worker then writes the FAILURE itself,
  with the limit :meth:`TimeLimits.finished` returns.

A task blocked in C code sees an exception raised in its thread only when it returns to
Python: a worker with a thread pool says so once at start (:func:`warn_time_limits`).

Only the worker's main thread uses a :class:`TimeLimits`.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import time
from collections.abc import Container
from typing import TYPE_CHECKING

from .. import broker, interrupts, serialization
from ..conf import conf
from ..exceptions import DecodeError
from ..task import registry

if TYPE_CHECKING:
    from .pools import Pool

logger = logging.getLogger("djq.worker")

#: Sent to a prefork pool process at its task's soft limit.
SOFT_SIGNAL = signal.SIGUSR1
#: Sent to a prefork pool process at its task's hard limit.
HARD_SIGNAL = signal.SIGKILL


@dataclasses.dataclass(slots=True)
class Deadline:
    """When a running task's limits fall due (monotonic seconds; None: no such limit,
    or the soft one was already raised)."""

    soft: float | None
    hard: float | None
    limit: float  # the hard limit in seconds, as the task's error states it


class TimeLimits:
    """The deadlines of the tasks a worker is running, and the hard limits tasks have
    exceeded (their FAILURE is written when their process is reported lost)."""

    def __init__(self) -> None:
        self.deadlines: dict[str, Deadline] = {}
        self._exceeded: dict[str, float] = {}  # task id -> hard limit it exceeded

    def arm(self, task_id: str, soft: float | None, hard: float | None) -> None:
        """Start the clock of a task handed to the pool now."""
        now = time.monotonic()
        self.deadlines[task_id] = Deadline(None if soft is None else now + soft,
                                           None if hard is None else now + hard,
                                           0.0 if hard is None else hard)

    def disarm(self, task_id: str) -> None:
        """Stop the clock of a task taken back from the pool."""
        self.deadlines.pop(task_id, None)

    def finished(self, task_id: str) -> float | None:
        """Forget a task the pool is done with; the hard limit it exceeded, if any."""
        self.deadlines.pop(task_id, None)
        return self._exceeded.pop(task_id, None)

    def wait(self, timeout: float, now: float) -> float:
        """``timeout``, shortened to the next deadline."""
        for deadline in self.deadlines.values():
            for due in (deadline.soft, deadline.hard):
                if due is not None:
                    timeout = min(timeout, due - now)
        return timeout

    def enforce(self, pool: Pool, running: Container[str]) -> None:
        """Raise the soft limit inside the tasks past it; at the hard limit, kill their
        process (prefork) or raise TimeLimitExceeded inside their thread (threads,
        solo). ``running``: the ids of the tasks still in the pool."""
        if not self.deadlines:
            return
        now = time.monotonic()
        for task_id, deadline in list(self.deadlines.items()):
            if task_id not in running:
                del self.deadlines[task_id]
                continue
            if deadline.soft is not None and now >= deadline.soft:
                logger.warning("Soft time limit exceeded for task id=%s", task_id)
                if not pool.interrupt(task_id, interrupts.soft_time_limit()):
                    pool.kill_task(task_id, SOFT_SIGNAL)
                deadline.soft = None
            if deadline.hard is not None and now >= deadline.hard:
                logger.error("Hard time limit (%ss) exceeded for task id=%s",
                             deadline.limit, task_id)
                self._exceeded[task_id] = deadline.limit
                if not pool.interrupt(task_id, interrupts.hard_time_limit(deadline.limit)):
                    pool.kill_task(task_id, HARD_SIGNAL)
                del self.deadlines[task_id]


def time_limits(row: broker.Claimed) -> tuple[float | None, float | None]:
    """(soft, hard) limits in seconds for a row: its call's options, else its task's,
    else the settings. Raises :class:`DecodeError` for options that do not decode or a
    limit that is not a positive number."""
    options = serialization.loads_options(row.options)
    for key in ("soft_time_limit", "time_limit"):
        value = options.get(key)
        if value is not None and (isinstance(value, bool)
                                  or not isinstance(value, (int, float)) or value <= 0):
            raise DecodeError(f"Task option {key}={value!r} is not a positive number")
    task = registry.get(row.name)
    soft = options.get("soft_time_limit")
    hard = options.get("time_limit")
    if soft is None:
        soft = task.soft_time_limit if task is not None else None
        soft = conf.task_soft_time_limit if soft is None else soft
    if hard is None:
        hard = task.time_limit if task is not None else None
        hard = conf.task_time_limit if hard is None else hard
    return (None if soft is None else float(soft), None if hard is None else float(hard))


def warn_time_limits(pool: str, queues: list[str]) -> None:
    """The threads and solo pools raise time limits inside the task's thread, which a
    task blocked in C code does not see: say so once, naming the limited tasks."""
    limited = sorted(
        t.name for t in registry.values()
        if (t.time_limit is not None or t.soft_time_limit is not None)
        and (t.queue or conf.task_default_queue) in queues
    )
    if conf.task_time_limit is not None or conf.task_soft_time_limit is not None:
        limited.insert(0, "every task (task_time_limit/task_soft_time_limit settings)")
    if limited:
        logger.warning(
            "-P %s enforces time limits and revoke(terminate=True) by raising "
            "SoftTimeLimitExceeded, TimeLimitExceeded or TaskRevokedError inside the "
            "task's thread: a task blocked in C code (a system call, a C extension) cannot "
            "be interrupted until it returns to Python. Tasks with time limits: %s",
            pool, ", ".join(limited))


__all__ = ["HARD_SIGNAL", "SOFT_SIGNAL", "Deadline", "TimeLimits", "time_limits",
           "warn_time_limits"]
