"""Receivers of djq's signals that turn them into Celery's task events.

The worker-side receivers are connected by :func:`djq.events.dispatcher.enable` in a
worker started with ``-E`` (and so run in its pool processes too); they do nothing
unless that process has a dispatcher. ``task-sent`` comes from the process that sends
the task, when ``task_send_sent_event`` is on (Celery's setting): its receiver is
connected at start-up and published on Django's connection, inside the sender's
transaction, so a rolled-back enqueue sends no event either.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from .. import broker, signals
from ..conf import conf
from .dispatcher import EVENTS_CHANNEL, Clock, EventDispatcher, current, saferepr

DISPATCH_PREFIX = "djq.events."


def _live(sender: Any) -> EventDispatcher | None:
    """This process's dispatcher, unless the signal is about an eager (inline) call."""
    dispatcher = current()
    if dispatcher is None:
        return None
    request = getattr(sender, "request", None)
    if request is not None and getattr(request, "is_eager", False):
        return None
    return dispatcher


def on_task_received(sender: Any = None, request: Any = None, **kwargs: Any) -> None:
    dispatcher = current()
    if dispatcher is None or request is None:
        return
    delivery = getattr(request, "delivery_info", None) or {}
    dispatcher.send(
        "task-received", uuid=request.id, name=request.task,
        args=saferepr_json(getattr(request, "argsrepr", None)),
        kwargs=saferepr_json(getattr(request, "kwargsrepr", None)),
        root_id=getattr(request, "root_id", None), parent_id=getattr(request, "parent_id", None),
        retries=getattr(request, "retries", 0) or 0, eta=getattr(request, "eta", None),
        expires=getattr(request, "expires", None),
        routing_key=delivery.get("routing_key"),
    )


def saferepr_json(text: Any) -> str | None:
    """Arguments as the worker has them: their JSON text, cut as Celery cuts reprs."""
    if text is None:
        return None
    return str(text) if len(str(text)) <= 1024 else str(text)[:1021] + "..."


def on_task_prerun(sender: Any = None, task_id: Any = None, **kwargs: Any) -> None:
    dispatcher = _live(sender)
    if dispatcher is not None and task_id is not None:
        dispatcher.mark_start(str(task_id))


def on_task_success(sender: Any = None, result: Any = None, **kwargs: Any) -> None:
    dispatcher = _live(sender)
    if dispatcher is None:
        return
    task_id = sender.request.id
    dispatcher.send("task-succeeded", uuid=task_id, result=saferepr(result),
                    runtime=dispatcher.runtime(str(task_id)))


def on_task_failure(sender: Any = None, task_id: Any = None, exception: Any = None,
                    einfo: Any = None, **kwargs: Any) -> None:
    dispatcher = _live(sender)
    if dispatcher is None or task_id is None:
        return
    dispatcher.runtime(str(task_id))
    dispatcher.send("task-failed", uuid=str(task_id), exception=saferepr(exception),
                    traceback=getattr(einfo, "traceback", None))


def on_task_retry(sender: Any = None, request: Any = None, reason: Any = None,
                  einfo: Any = None, **kwargs: Any) -> None:
    dispatcher = current()
    if dispatcher is None or request is None or getattr(request, "is_eager", False):
        return
    dispatcher.runtime(str(request.id))
    exc = getattr(reason, "exc", None)
    dispatcher.send("task-retried", uuid=request.id,
                    exception=saferepr(exc if exc is not None else reason),
                    traceback=getattr(einfo, "traceback", None))


def on_task_revoked(sender: Any = None, request: Any = None, terminated: bool = False,
                    signum: Any = None, expired: bool = False, **kwargs: Any) -> None:
    dispatcher = current()
    if dispatcher is None or request is None or getattr(request, "is_eager", False):
        return
    dispatcher.runtime(str(request.id))
    dispatcher.send("task-revoked", uuid=request.id, terminated=bool(terminated),
                    signum=None if signum is None else int(signum), expired=bool(expired))


def on_task_unknown(sender: Any = None, name: Any = None, id: Any = None,
                    exc: Any = None, **kwargs: Any) -> None:
    dispatcher = current()
    if dispatcher is None or id is None:
        return
    dispatcher.send("task-failed", uuid=str(id), exception=f"NotRegistered({name!r})",
                    traceback=None)


_WORKER_RECEIVERS = (
    (signals.task_received, on_task_received), (signals.task_prerun, on_task_prerun),
    (signals.task_success, on_task_success), (signals.task_failure, on_task_failure),
    (signals.task_retry, on_task_retry), (signals.task_revoked, on_task_revoked),
    (signals.task_unknown, on_task_unknown),
)


def connect() -> None:
    """Connect the worker-side receivers (idempotent)."""
    for signal, receiver in _WORKER_RECEIVERS:
        signal.connect(receiver, dispatch_uid=DISPATCH_PREFIX + receiver.__name__, weak=False)


def disconnect() -> None:
    for signal, receiver in _WORKER_RECEIVERS:
        signal.disconnect(receiver, dispatch_uid=DISPATCH_PREFIX + receiver.__name__)


# --- task-sent, from the sending process ----------------------------------------------

_sent_clock = Clock()


def on_after_task_publish(sender: Any = None, headers: dict[str, Any] | None = None,
                          routing_key: str | None = None, **kwargs: Any) -> None:
    if not conf.task_send_sent_event or not headers:
        return
    ev = EventDispatcher.encode(sent_event(sender, headers, routing_key))
    broker.announce(EVENTS_CHANNEL, f"[{ev}]")


def sent_event(sender: Any, headers: dict[str, Any], routing_key: str | None) -> dict[str, Any]:
    """Celery's ``task-sent`` for a message with these protocol-2 ``headers``."""
    from .dispatcher import event, utcoffset

    return event(
        "task-sent", uuid=headers.get("id"), name=headers.get("task") or sender,
        args=headers.get("argsrepr"), kwargs=headers.get("kwargsrepr"),
        retries=headers.get("retries") or 0, eta=headers.get("eta"),
        expires=headers.get("expires"), queue=routing_key, exchange="",
        routing_key=routing_key, root_id=headers.get("root_id"),
        parent_id=headers.get("parent_id"),
        hostname=headers.get("origin") or f"gen{os.getpid()}@{socket.gethostname()}",
        utcoffset=utcoffset(), pid=os.getpid(), clock=_sent_clock.forward(),
    )


def on_revoked_elsewhere(sender: Any = None, request: Any = None, terminated: bool = False,
                         signum: Any = None, expired: bool = False, **kwargs: Any) -> None:
    """``task-revoked`` for a revoke made outside a worker (``AsyncResult.revoke()``, the
    CLI, the API, the admin): the row is revoked in the database there, so no worker
    would ever say so. Published on Django's connection, so it goes out with the revoke."""
    if current() is not None or request is None or getattr(request, "is_eager", False):
        return  # inside a worker its own dispatcher reports it (with -E)
    from .dispatcher import event, utcoffset

    ev = EventDispatcher.encode(event(
        "task-revoked", uuid=request.id, terminated=bool(terminated), signum=signum,
        expired=bool(expired), hostname=f"gen{os.getpid()}@{socket.gethostname()}",
        utcoffset=utcoffset(), pid=os.getpid(), clock=_sent_clock.forward(),
    ))
    broker.announce(EVENTS_CHANNEL, f"[{ev}]")


def connect_sent() -> None:
    """Connect the receivers that publish from any process (from ``DjqConfig.ready``):
    ``task-sent`` and ``task-revoked`` of revokes made outside workers."""
    signals.after_task_publish.connect(on_after_task_publish,
                                       dispatch_uid=DISPATCH_PREFIX + "task_sent", weak=False)
    signals.task_revoked.connect(on_revoked_elsewhere,
                                 dispatch_uid=DISPATCH_PREFIX + "task_revoked_elsewhere",
                                 weak=False)
