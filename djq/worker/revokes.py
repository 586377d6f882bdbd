"""``revoke(terminate=True)`` of the tasks a worker is running.

A NOTIFY on the control channel says so at once; the revoke is kept on the row too, and
one may be missed (during a reconnect, say), so the worker also looks at its rows now
and then. A task running in a thread (``threads``, ``solo``) gets
:class:`~djq.interrupts.Terminated` raised inside it; a prefork process gets the signal.
A process that dies of it is reported lost, and the worker writes the task REVOKED with
the signal :meth:`Terminations.finished` returns.

Only the worker's main thread uses a :class:`Terminations`.
"""

from __future__ import annotations

import json
import logging
import signal
import time
from typing import TYPE_CHECKING, Any

from .. import broker, interrupts
from ..conf import conf

if TYPE_CHECKING:
    from .pools import Pool

logger = logging.getLogger("djq.worker")


class Terminations:
    """The running tasks a worker was told to terminate, and the signal of each."""

    def __init__(self) -> None:
        self._signalled: dict[str, int] = {}  # task id -> signal it was ended with
        self.next_check = 0.0  # monotonic: when to look at the rows again

    def on_control(self, payload: str, pool: Pool) -> None:
        """A message on the control channel."""
        try:
            message = json.loads(payload)
        except ValueError:
            logger.warning("Ignoring malformed control message: %r", payload)
            return
        task_id = message.get("revoke")
        if task_id:
            self.terminate(str(task_id), int(message.get("signal") or signal.SIGTERM), pool)

    def terminate(self, task_id: str, signum: int, pool: Pool) -> None:
        """End ``task_id`` with ``signum`` if the pool is running it (once)."""
        if task_id in self._signalled:
            return
        if task_id in pool.running() and (
                pool.interrupt(task_id, interrupts.terminated(signum))
                or pool.kill_task(task_id, signum)):
            logger.info("Terminating task id=%s with signal %s", task_id, signum)
            self._signalled[task_id] = signum

    def check(self, conn: Any, worker_id: int, pool: Pool) -> None:
        """Look at the rows of worker ``worker_id`` for revokes a NOTIFY did not bring,
        at most once a poll interval."""
        now = time.monotonic()
        if now < self.next_check:
            return
        self.next_check = now + float(conf.worker_poll_interval)
        for task_id, signum in broker.terminations(conn, worker_id):
            self.terminate(str(task_id), signum, pool)

    def finished(self, task_id: str) -> int | None:
        """Forget a task the pool is done with; the signal it was ended with, if any."""
        return self._signalled.pop(task_id, None)


__all__ = ["Terminations"]
