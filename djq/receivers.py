"""djq's own signal receivers: they turn task signals into the rows the worker writes."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from django.utils import timezone

from . import broker, serialization, signals, states
from .conf import conf
from .exceptions import TaskRevokedError
from .task import Context, Task
from .trace import ExceptionInfo, exception_to_dict, record

DISPATCH_PREFIX = "djq.receivers."


def _uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _keeps_result(task: Task, request: Context) -> bool:
    canvas = (getattr(request, "options", None) or {}).get("canvas") or {}
    if canvas.get("keep_result"):
        return True  # a chain's next step or a chord takes it from the row (migration 0002)
    return not (request.ignore_result or task.option("ignore_result"))


def on_success(sender: Task, result: Any = None, **kwargs: Any) -> None:
    request = sender.request
    if request.is_eager or request.id is None:
        return
    if not _keeps_result(sender, request):
        record(broker.Outcome(id=_uuid(request.id), state=states.SUCCESS, result=None,
                                       traceback=None, date_done=timezone.now(), delete=True))
        return
    encoded = request.result_json
    if encoded is None:
        encoded = serialization.dumps(result)
    record(broker.Outcome(id=_uuid(request.id), state=states.SUCCESS, result=encoded,
                                   traceback=None, date_done=timezone.now()))


def on_failure(sender: Task, task_id: Any = None, exception: BaseException | None = None,
               einfo: ExceptionInfo | None = None, **kwargs: Any) -> None:
    request = sender.request
    if request.is_eager or task_id is None:
        return
    keep = _keeps_result(sender, request) or sender.option("store_errors_even_if_ignored")
    assert exception is not None
    record(broker.Outcome(
        id=_uuid(task_id), state=states.FAILURE,
        result=serialization.dumps(exception_to_dict(exception)),
        traceback=einfo.traceback if einfo else None, date_done=timezone.now(),
        delete=not keep,
    ))


def on_retry(sender: Task, request: Context | None = None, reason: Any = None,
             einfo: ExceptionInfo | None = None, **kwargs: Any) -> None:
    if request is None or request.is_eager:
        return
    error = getattr(reason, "exc", None) or reason
    eta: datetime.datetime = getattr(reason, "eta", None) or timezone.now()
    record(broker.Outcome(
        id=_uuid(request.id), state=states.RETRY,
        result=serialization.dumps(exception_to_dict(error)),
        traceback=einfo.traceback if einfo else None, date_done=timezone.now(),
        status=broker.WAITING, retries=int(request.retries) + 1, run_at=eta,
        args=_encoded(getattr(reason, "retry_args", None)),
        kwargs=_encoded(getattr(reason, "retry_kwargs", None)),
    ))


def _encoded(value: Any) -> str | None:
    return None if value is None else serialization.dumps(value)


def on_revoked(sender: Task | None, request: Context | None = None, terminated: bool = False,
               signum: Any = None, expired: bool = False, **kwargs: Any) -> None:
    if request is None or request.is_eager or request.id is None:
        return
    exc = TaskRevokedError("expired" if expired else ("terminated" if terminated else "revoked"))
    record(broker.Outcome(
        id=_uuid(request.id), state=states.REVOKED,
        result=serialization.dumps(exception_to_dict(exc)), traceback=None,
        date_done=timezone.now(),
    ))


def on_unknown(sender: Any = None, name: str | None = None, id: Any = None,
               exc: BaseException | None = None, **kwargs: Any) -> None:
    if id is None or exc is None:
        return
    record(broker.Outcome(
        id=_uuid(id), state=states.FAILURE, result=serialization.dumps(exception_to_dict(exc)),
        traceback=ExceptionInfo(exc).traceback, date_done=timezone.now(),
        delete=not (conf.task_store_errors_even_if_ignored or not conf.task_ignore_result),
    ))


def connect() -> None:
    """Connect djq's receivers (called once from ``DjqConfig.ready``)."""
    for signal, receiver in (
        (signals.task_success, on_success), (signals.task_failure, on_failure),
        (signals.task_retry, on_retry), (signals.task_revoked, on_revoked),
        (signals.task_unknown, on_unknown),
    ):
        signal.connect(receiver, dispatch_uid=DISPATCH_PREFIX + receiver.__name__, weak=False)
