"""Acting on tasks: revoke, retry, forget, purge. Shared by AsyncResult, admin, API and CLI."""

from __future__ import annotations

import json
import signal as signal_module
import uuid
from typing import Any

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
    name = broker.revoke_waiting(tid, result, using=using)
    if name is not None:
        _send_revoked(name, str(tid), terminated=False, signum=None)
        return "revoked"
    status = broker.task_status(tid, using=using)
    if status is None:
        return "unknown"
    if status == broker.DONE:
        return "finished"
    if signum is None:  # not terminate
        return "running"
    if not broker.request_terminate(tid, signum, json.dumps({"revoke": str(tid),
                                                             "signal": signum}), using=using):
        return "finished"
    return "terminating"


def retry(task_id: str | uuid.UUID, using: str | None = None) -> None:
    """Re-queue a finished task under the same id (its result is cleared).

    Raises :class:`TaskNotFound` for an unknown id and :class:`TaskNotFinished` for a
    task still waiting or running."""
    tid = uuid.UUID(str(task_id))
    if broker.retry(tid, using=using):
        return
    if broker.task_status(tid, using=using) is None:
        raise TaskNotFound(f"No task with id {tid}")
    raise TaskNotFinished(f"Task {tid} has not finished; only finished tasks can be retried")


def purge(queues: list[str] | None = None, using: str | None = None) -> int:
    """Delete waiting tasks (of ``queues``, or of every queue); returns how many.
    Running tasks and stored results are never touched."""
    return broker.purge(queues, using=using)


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
    rows = broker.revoke_waiting_many(ids, result, using=using)
    revoked = [str(tid) for tid, _ in rows]
    for tid, name in rows:
        _send_revoked(name, str(tid), terminated=False, signum=None)
    if terminate:
        done = set(revoked)
        for tid in ids:
            if str(tid) not in done:
                revoke(tid, terminate=True, signal=signal, using=using)
    return revoked


__all__ = ["revoke", "revoke_many", "retry", "purge", "forget"]
