"""djq's own signal receivers: each turns a task signal into the row it ends.

They are connected by :mod:`djq.signals` as it is imported, so they run before any
user's receiver. Each returns the :class:`~djq.broker.Outcome` it writes as its
response (None where nothing is stored: a task run inline); the tracer takes it from
``send()``'s results and the worker writes it (:func:`djq.trace.execute`).
"""

from __future__ import annotations

import datetime
import uuid
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from . import broker, serialization, states
from ._state import Context
from .conf import conf
from .exceptions import TaskRevokedError
from .serialization import ExceptionInfo, exception_to_dict

if TYPE_CHECKING:
    from .task import Task

DISPATCH_PREFIX = "djq.receivers."


def _uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _keeps_result(task: Task, request: Context) -> bool:
    canvas = (getattr(request, "options", None) or {}).get("canvas") or {}
    if canvas.get("keep_result"):
        return True  # a chain's next step or a chord takes it from the row (migration 0002)
    return not (request.ignore_result or task.option("ignore_result"))


def on_success(sender: Task, result: Any = None, **kwargs: Any) -> broker.Outcome | None:
    request = sender.request
    if request.is_eager or request.id is None:
        return None
    if not _keeps_result(sender, request):
        return broker.Outcome(id=_uuid(request.id), state=states.SUCCESS, result=None,
                              traceback=None, date_done=timezone.now(), delete=True)
    encoded = request.result_json
    if encoded is None:
        encoded = serialization.dumps(result)
    return broker.Outcome(id=_uuid(request.id), state=states.SUCCESS, result=encoded,
                          traceback=None, date_done=timezone.now())


def on_failure(sender: Task, task_id: Any = None, exception: BaseException | None = None,
               einfo: ExceptionInfo | None = None, **kwargs: Any) -> broker.Outcome | None:
    request = sender.request
    if request.is_eager or task_id is None:
        return None
    keep = _keeps_result(sender, request) or sender.option("store_errors_even_if_ignored")
    assert exception is not None
    return broker.Outcome(
        id=_uuid(task_id), state=states.FAILURE,
        result=serialization.dumps(exception_to_dict(exception)),
        traceback=einfo.traceback if einfo else None, date_done=timezone.now(),
        delete=not keep,
    )


def on_retry(sender: Task, request: Context | None = None, reason: Any = None,
             einfo: ExceptionInfo | None = None, **kwargs: Any) -> broker.Outcome | None:
    if request is None or request.is_eager:
        return None
    error = getattr(reason, "exc", None) or reason
    eta: datetime.datetime = getattr(reason, "eta", None) or timezone.now()
    return broker.Outcome(
        id=_uuid(request.id), state=states.RETRY,
        result=serialization.dumps(exception_to_dict(error)),
        traceback=einfo.traceback if einfo else None, date_done=timezone.now(),
        status=broker.WAITING, retries=int(request.retries) + 1, run_at=eta,
        args=_encoded(getattr(reason, "retry_args", None)),
        kwargs=_encoded(getattr(reason, "retry_kwargs", None)),
    )


def _encoded(value: Any) -> str | None:
    return None if value is None else serialization.dumps(value)


def on_revoked(sender: Task | None, request: Context | None = None,
               terminated: bool = False, signum: Any = None, expired: bool = False,
               **kwargs: Any) -> broker.Outcome | None:
    if request is None or request.is_eager or request.id is None:
        return None
    exc = TaskRevokedError("expired" if expired else ("terminated" if terminated else "revoked"))
    return broker.Outcome(
        id=_uuid(request.id), state=states.REVOKED,
        result=serialization.dumps(exception_to_dict(exc)), traceback=None,
        date_done=timezone.now(),
    )


def on_unknown(sender: Any = None, name: str | None = None, id: Any = None,
               exc: BaseException | None = None, **kwargs: Any) -> broker.Outcome | None:
    if id is None or exc is None:
        return None
    return broker.Outcome(
        id=_uuid(id), state=states.FAILURE, result=serialization.dumps(exception_to_dict(exc)),
        traceback=ExceptionInfo(exc).traceback, date_done=timezone.now(),
        delete=not (conf.task_store_errors_even_if_ignored or not conf.task_ignore_result),
    )


#: The receivers :mod:`djq.signals` connects, whose responses the tracer keeps.
STATE_RECEIVERS = frozenset({on_success, on_failure, on_retry, on_revoked, on_unknown})
