"""What becomes of a task whose process or worker was lost (Celery's ``acks_late``,
``reject_on_worker_lost``; djq's ``task_max_deliveries``), for the worker that sees its
process die and for the maintenance thread that recovers the rows of dead workers.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.utils import timezone

from .. import broker, serialization, states
from ..conf import conf
from ..exceptions import WorkerLostError
from ..task import registry
from ..trace import ExceptionInfo, exception_to_dict

logger = logging.getLogger("djq.worker")


def acks_late(name: str) -> bool:
    task = registry.get(name)
    if task is None:
        return bool(conf.task_acks_late)
    return bool(task.option("acks_late"))


def reject_on_worker_lost(name: str) -> bool:
    task = registry.get(name)
    if task is None:
        return bool(conf.task_reject_on_worker_lost)
    return bool(task.option("reject_on_worker_lost"))


def max_deliveries(name: str) -> int:
    """How many times a task may be delivered and lost before it ends FAILURE."""
    task = registry.get(name)
    value = conf.task_max_deliveries if task is None else task.option("max_deliveries")
    return max(1, int(value))


def lost_error() -> tuple[str, str]:
    """The stored result and traceback of a task lost once too often, with ``@N@`` and
    ``@MAX@`` for :func:`djq.broker.redeliver` to fill in."""
    exc = WorkerLostError("Task was delivered @N@ times and its process or worker was lost "
                          "each time (task_max_deliveries=@MAX@)")
    return serialization.dumps(exception_to_dict(exc)), ExceptionInfo(exc).traceback


def recover(conn: Any, lease: float) -> tuple[int, int]:
    """Declare workers past their lease dead and recover every in-flight row that no live
    worker holds, in one transaction.

    Unstarted rows go back to their queue; started ones too under ``acks_late`` (each
    such delivery counted: past ``task_max_deliveries`` the row ends FAILURE instead),
    and otherwise end FAILURE with WorkerLostError (Celery's semantics). Returns
    (requeued, failed).
    """
    with conn.transaction():
        for worker_id, hostname in broker.expire_workers(conn, lease):
            logger.warning("Worker %s (id=%d) missed its heartbeat for %.0fs: recovering "
                           "its tasks", hostname, worker_id, lease)
        rows = broker.orphans(conn)
        if not rows:
            return 0, 0
        requeue: list[uuid.UUID] = []
        again: list[tuple[uuid.UUID, int]] = []
        lost: list[uuid.UUID] = []
        for r in rows:
            if r.status == broker.CLAIMED:
                requeue.append(r.id)
            elif acks_late(r.name):
                again.append((r.id, max_deliveries(r.name)))
            else:
                lost.append(r.id)
        requeued = broker.requeue_orphans(conn, requeue)
        result, traceback = lost_error()
        redelivered = broker.redeliver(conn, again, result, traceback)
        for task_id, ended, count in redelivered:
            if ended:
                logger.error("Task id=%s was delivered %d times and lost each time: it "
                             "ends FAILURE (WorkerLostError)", task_id, count)
        requeued += sum(1 for _, ended, _ in redelivered if not ended)
        exc = WorkerLostError("Worker exited prematurely: its heartbeat lease expired.")
        failed = broker.fail_orphans(conn, lost, serialization.dumps(exception_to_dict(exc)),
                                     ExceptionInfo(exc).traceback)
        failed += sum(1 for _, ended, _ in redelivered if ended)
    if requeued or failed:
        logger.warning("Recovered tasks of lost workers: %d requeued, %d failed with "
                       "WorkerLostError", requeued, failed)
    return requeued, failed


def error_outcome(task_id: uuid.UUID, exc: BaseException, state: str = states.FAILURE,
                  with_traceback: bool = True) -> broker.Outcome:
    """An outcome that ends ``task_id`` with ``exc``, written by the worker itself."""
    return broker.Outcome(
        id=task_id, state=state, result=serialization.dumps(exception_to_dict(exc)),
        traceback=ExceptionInfo(exc).traceback if with_traceback else None,
        date_done=timezone.now(),
    )


__all__ = ["acks_late", "error_outcome", "lost_error", "max_deliveries", "recover",
           "reject_on_worker_lost"]
