"""Acting on tasks: revoke, retry, forget, purge. Shared by AsyncResult, admin, API and CLI."""

from __future__ import annotations

import json
import signal as signal_module
import uuid
from typing import Any

from django.db import connections

from . import broker, serialization, signals
from ._state import Context
from .conf import conf
from .exceptions import TaskNotFinished, TaskNotFound, TaskRevokedError
from .registry import registry
from .serialization import exception_to_dict


def _signum(sig: str | int) -> int:
    if isinstance(sig, int):
        return sig
    name = sig.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(getattr(signal_module, name))
    except AttributeError as exc:
        raise ValueError(f"Unknown signal {sig!r}") from exc


def revoke(task_id: str | uuid.UUID, terminate: bool = False, signal: str | int = "SIGTERM",
           using: str | None = None) -> str:
    """Revoke a task. Returns what happened: ``"revoked"`` (it will never run),
    ``"terminating"`` (its worker was told to kill it), ``"running"`` (started, left to
    finish), ``"finished"`` or ``"unknown"``."""
    tid = uuid.UUID(str(task_id))
    signum = _signum(signal) if terminate else None
    result = serialization.dumps(exception_to_dict(TaskRevokedError("revoked")))
    using = using or conf.database
    with connections[using].cursor() as cursor:
        cursor.execute(broker.REVOKE_WAITING, [result, tid])
        row = cursor.fetchone()
        if row is not None:
            _send_revoked(row[0], str(tid), terminated=False, signum=None)
            return "revoked"
        cursor.execute("SELECT status FROM djq_task WHERE id = %s", [tid])
        found = cursor.fetchone()
        if found is None:
            return "unknown"
        if found[0] == broker.DONE:
            return "finished"
        if not terminate:
            return "running"
        cursor.execute(broker.REQUEST_TERMINATE,
                       [signum, tid, json.dumps({"revoke": str(tid), "signal": signum})])
        if cursor.fetchone() is None:
            return "finished"
    return "terminating"


def retry(task_id: str | uuid.UUID, using: str | None = None) -> None:
    """Re-queue a finished task under the same id (its result is cleared).

    Raises :class:`TaskNotFound` for an unknown id and :class:`TaskNotFinished` for a
    task still waiting or running."""
    tid = uuid.UUID(str(task_id))
    with connections[using or conf.database].cursor() as cursor:
        cursor.execute(broker.RETRY, [tid])
        if cursor.fetchone() is not None:
            return
        cursor.execute("SELECT 1 FROM djq_task WHERE id = %s", [tid])
        if cursor.fetchone() is None:
            raise TaskNotFound(f"No task with id {tid}")
    raise TaskNotFinished(f"Task {tid} has not finished; only finished tasks can be retried")


def purge(queues: list[str] | None = None, using: str | None = None) -> int:
    """Delete waiting tasks (of ``queues``, or of every queue); returns how many.
    Running tasks and stored results are never touched."""
    with connections[using or conf.database].cursor() as cursor:
        cursor.execute(broker.PURGE, [queues, queues])
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def forget(task_id: str | uuid.UUID, using: str | None = None) -> bool:
    """Delete a finished task's stored result; True if there was one."""
    return broker.forget(task_id, using=using) > 0


def _send_revoked(name: str, task_id: str, terminated: bool, signum: Any) -> None:
    task = registry.get(name)
    signals.send(signals.task_revoked, sender=task,
                 request=Context(id=task_id, task=name, called_directly=False),
                 terminated=terminated, signum=signum, expired=False)


def revoke_many(task_ids: list[str] | list[uuid.UUID], terminate: bool = False,
                signal: str | int = "SIGTERM", using: str | None = None) -> list[str]:
    """Revoke many tasks (a group's): those not started yet, deferred canvas steps
    included, in one statement; with ``terminate``, running ones one by one as
    :func:`revoke` does. Returns the ids revoked before they ran."""
    ids = [uuid.UUID(str(t)) for t in task_ids]
    if not ids:
        return []
    result = serialization.dumps(exception_to_dict(TaskRevokedError("revoked")))
    with connections[using or conf.database].cursor() as cursor:
        cursor.execute(broker.REVOKE_WAITING_MANY, [result, ids])
        rows = cursor.fetchall()
    revoked = [str(row[0]) for row in rows]
    for row in rows:
        _send_revoked(row[1], str(row[0]), terminated=False, signum=None)
    if terminate:
        done = set(revoked)
        for tid in ids:
            if str(tid) not in done:
                revoke(tid, terminate=True, signal=signal, using=using)
    return revoked


__all__ = ["revoke", "revoke_many", "retry", "purge", "forget"]
