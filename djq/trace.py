"""Running one task as a worker does: signals, retries, callbacks, and its outcome.

The outcome is not written here. djq's own receivers of ``task_success``,
``task_failure``, ``task_retry``, ``task_revoked`` and ``task_unknown``
(:mod:`djq.receivers`) turn each signal into a :class:`~djq.broker.Outcome` in a
per-thread outbox; the worker writes the outbox in batches. A user's receiver of the
same signal therefore sees exactly what is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import inspect
import logging
import sys
import threading
import time
import traceback as tb_module
import uuid
from typing import Any

from django.utils import timezone

from . import broker, interrupts, serialization, signals, states
from .canvas import Signature
from .exceptions import DecodeError, EncodeError, NotRegistered, Retry, TaskRevokedError
from .task import Context, Task, exponential_backoff, registry

logger = logging.getLogger("djq.worker")

_local = threading.local()

# Set by the threads and solo pools: task bodies then run where another thread can end
# them (djq.interrupts).
interrupts_enabled = False


def current_request() -> Context | None:
    """The request of the task running in this thread, if any (parents of new tasks)."""
    return getattr(_local, "request", None)


def record(outcome: broker.Outcome) -> None:
    """Keep ``outcome`` for the worker to write (only while a worker runs a task here)."""
    box: list[broker.Outcome] | None = getattr(_local, "outbox", None)
    if box is not None:
        box.append(outcome)


def take_outbox() -> list[broker.Outcome]:
    box: list[broker.Outcome] = getattr(_local, "outbox", None) or []
    _local.outbox = None
    return box


class ExceptionInfo:
    """An exception with its formatted traceback (Celery's ``einfo``)."""

    def __init__(self, exc: BaseException, tb: Any = None) -> None:
        self.exception = exc
        self.type = type(exc)
        self.tb = tb if tb is not None else exc.__traceback__
        # PostgreSQL text cannot hold NUL characters; show them escaped.
        self.traceback = "".join(
            tb_module.format_exception(type(exc), exc, self.tb)).replace("\x00", "\\x00")

    def __str__(self) -> str:
        return self.traceback


def exception_to_dict(exc: BaseException) -> dict[str, Any]:
    """Celery's JSON form of an exception: type, message args and module."""
    args: Any = list(exc.args)
    try:
        serialization.dumps(args)
    except EncodeError:
        args = [str(exc)]
    return {"exc_type": type(exc).__name__, "exc_message": args,
            "exc_module": type(exc).__module__}


def request_from_row(row: dict[str, Any], hostname: str | None) -> Context:
    """The ``task.request`` of a claimed row (as :func:`claimed_to_dict` gives it)."""
    options = serialization.loads_options(row["options"])
    args = serialization.loads(row["args"])
    kwargs = serialization.loads(row["kwargs"])
    if not isinstance(args, list):
        raise DecodeError(f"Task args must be a JSON list, got {type(args).__name__}")
    if not isinstance(kwargs, dict):
        raise DecodeError(f"Task kwargs must be a JSON object, got {type(kwargs).__name__}")
    if not isinstance(options.get("headers") or {}, dict):
        raise DecodeError("Task option headers must be a JSON object")
    for key in ("link", "link_error"):
        links = options.get(key) or []
        if not isinstance(links, list) or not all(isinstance(s, dict) for s in links):
            raise DecodeError(f"Task option {key} must be a list of signatures")
    return Context(
        id=row["id"], task=row["name"], args=args, kwargs=kwargs, retries=row["retries"],
        eta=row.get("eta"), expires=row.get("expires"), hostname=hostname,
        delivery_info={"exchange": "", "routing_key": row["queue"], "priority":
                       row["priority"], "redelivered": False},
        root_id=row.get("root_id"), parent_id=row.get("parent_id"), group=row.get("group_id"),
        is_eager=False, called_directly=False,
        ignore_result=bool(options.get("ignore_result", False)),
        callbacks=options.get("link") or None, errbacks=options.get("link_error") or None,
        headers=options.get("headers") or {}, priority=row["priority"],
        timelimit=(options.get("time_limit"), options.get("soft_time_limit")),
        chord=options.get("chord"), shadow=options.get("shadow"), queue=row["queue"],
        options=options,
    )


def claimed_to_dict(c: broker.Claimed) -> dict[str, Any]:
    """A claimed row as plain JSON-able values, to hand to a pool process."""
    return {
        "id": str(c.id), "name": c.name, "queue": c.queue, "priority": c.priority,
        "args": c.args, "kwargs": c.kwargs, "options": c.options, "retries": c.retries,
        "eta": c.eta.isoformat() if c.eta else None,
        "expires": c.expires.isoformat() if c.expires else None,
        "parent_id": str(c.parent_id) if c.parent_id else None,
        "root_id": str(c.root_id) if c.root_id else None,
        "group_id": str(c.group_id) if c.group_id else None,
    }


def execute(row: dict[str, Any], hostname: str | None) -> list[broker.Outcome]:
    """Run a claimed row in this process; return the outcomes to write.

    Never raises for anything the task or its data does: an unknown name, a payload that
    does not decode or a task that raises (even SystemExit) ends as a stored FAILURE.
    """
    _local.outbox = []
    name = row["name"]
    try:
        task = registry[name]
    except NotRegistered as exc:
        logger.error("Received unregistered task of type %r. id=%s", name, row["id"])
        signals.send(signals.task_unknown, sender=None, name=name, id=row["id"],
                     message=row, exc=exc)
        return ensure_outcome(row, exc)
    try:
        request = request_from_row(row, hostname)
    except DecodeError as exc:
        logger.error("Task %s[%s] has a payload that cannot be decoded: %s",
                     name, row["id"], exc)
        request = Context(id=row["id"], task=name, args=[], kwargs={}, retries=row["retries"],
                          called_directly=False, hostname=hostname)
        _record_failure(task, request, exc)
        return ensure_outcome(row, exc)
    expires = row.get("expires")
    if expires and datetime.datetime.fromisoformat(expires) <= timezone.now():
        logger.info("Discarding expired task %s[%s] (expired at %s)", name, row["id"], expires)
        _push(task, request)
        try:
            signals.send(signals.task_revoked, sender=task, request=request, terminated=False,
                         signum=None, expired=True)
        finally:
            _pop(task)
        return ensure_outcome(row, TaskRevokedError("expired"), state=states.REVOKED)
    trace_task(task, request)
    return ensure_outcome(row, None)


def ensure_outcome(row: dict[str, Any], exc: BaseException | None,
                   state: str = states.FAILURE) -> list[broker.Outcome]:
    """The outcomes recorded for ``row``, or one that ends it with ``exc``."""
    # Safety net: if a receiver was disconnected or failed, the row must still end.
    box = take_outbox()
    if box:
        return box
    error = exc or RuntimeError("The task ended without an outcome being recorded")
    return [broker.Outcome(
        id=uuid.UUID(row["id"]), state=state,
        result=serialization.dumps(exception_to_dict(error)),
        traceback=ExceptionInfo(error).traceback, date_done=timezone.now(),
    )]


def _push(task: Task, request: Context) -> None:
    task.push_request(**request.__dict__)
    _local.request = task.request


def _pop(task: Task) -> None:
    task.pop_request()
    _local.request = None


def trace_task(task: Task, request: Context) -> tuple[str, Any, str | None]:
    """Run ``task`` under ``request``; send its signals and call its handlers, in
    Celery's order; return (state, value, traceback)."""
    _push(task, request)
    started = time.monotonic()
    task_id = request.id
    args, kwargs = request.args, request.kwargs
    state, retval, tb = states.SUCCESS, None, None
    einfo: ExceptionInfo | None = None
    try:
        signals.send(signals.task_prerun, sender=task, task_id=task_id, task=task, args=args,
                     kwargs=kwargs)
        try:
            with _interruptible(request):
                # Celery: a raising before_start fails the task; the body never runs.
                task.before_start(task_id, args, kwargs)  # type: ignore[arg-type]
                retval = _run_with_autoretry(task, args, kwargs)
        except Retry as exc:
            state, retval, tb = _on_retry(task, request, exc)
        except interrupts.Terminated as exc:
            state, retval, tb = _on_terminated(task, request, exc)
        except BaseException as exc:  # noqa: BLE001 - a task's exception is data
            einfo = _record_failure(task, request, exc)
            state, retval, tb = states.FAILURE, exc, einfo.traceback
        else:
            try:
                request.result_json = (None if request.is_eager
                                        else serialization.dumps(retval))
            except EncodeError as exc:
                einfo = _record_failure(task, request, exc)
                state, retval, tb = states.FAILURE, exc, einfo.traceback
            else:
                _apply_callbacks(request, retval)
                runtime = time.monotonic() - started
                _handler(task, "on_success", retval, task_id, args, kwargs)
                if not request.is_eager:
                    logger.info("Task %s[%s] succeeded in %.6fs: %r", _shown(task, request), task_id,
                                runtime, retval)
                signals.send(signals.task_success, sender=task, result=retval)
        if state != states.RETRY:  # as in Celery: not for an attempt that retries
            _handler(task, "after_return", state, retval, task_id, args, kwargs, einfo)
        signals.send(signals.task_postrun, sender=task, task_id=task_id, task=task,
                     args=args, kwargs=kwargs, retval=retval, state=state)
    finally:
        _pop(task)
    return state, retval, tb


def _interruptible(request: Context) -> Any:
    """Where the threads and solo pools can raise time limits and terminations."""
    if interrupts_enabled and not request.is_eager and request.id:
        return interrupts.interruptible(str(request.id))
    return contextlib.nullcontext()


def _on_terminated(task: Task, request: Context,
                   exc: interrupts.Terminated) -> tuple[str, Any, str | None]:
    """``revoke(terminate=True)`` reached the task in its thread: it ends REVOKED."""
    logger.warning("Task %s[%s] terminated (signal %s)", _shown(task, request), request.id,
                   exc.signum)
    signals.send(signals.task_revoked, sender=task, request=request, terminated=True,
                 signum=exc.signum, expired=False)
    return states.REVOKED, exc, None


def _shown(task: Task, request: Context) -> str:
    """The name logs show: Celery's ``shadow`` option, else the task's."""
    return str(getattr(request, "shadow", None) or task.name)


def _handler(task: Task, name: str, *args: Any) -> None:
    """Call one of the task's handlers; one that raises is logged and changes nothing."""
    try:
        getattr(task, name)(*args)
    except Exception:  # noqa: BLE001 - a handler's error never changes the outcome
        logger.exception("Task %s[%s]: handler %s raised", task.name, task.request.id, name)


def _body(task: Task, args: Any, kwargs: dict[str, Any]) -> Any:
    # A base class that overrides __call__ (a Celery pattern: wrap every run of its
    # tasks) is called as Celery calls it; otherwise run() directly.
    if type(task).__call__ is not Task.__call__:
        value = task(*args, **kwargs)
    else:
        value = task._call_run(args, kwargs)
    if inspect.iscoroutine(value):  # an ``async def`` task
        return run_coroutine(value)
    return value


def run_coroutine(coro: Any) -> Any:
    """Run an ``async def`` task's coroutine to its end on this thread's event loop
    (one per pool process or thread, kept from task to task)."""
    loop: asyncio.AbstractEventLoop | None = getattr(_local, "loop", None)
    if loop is None or loop.is_closed():
        loop = _local.loop = asyncio.new_event_loop()
    future = asyncio.ensure_future(coro, loop=loop)
    try:
        return loop.run_until_complete(future)
    except BaseException:
        if not future.done():
            # Interrupted outside the coroutine (a time limit or a termination raised
            # into this thread): end it, and start the next task on a fresh loop.
            future.cancel()
            try:
                loop.run_until_complete(future)
            except BaseException:  # noqa: BLE001 - it is being abandoned
                pass
            loop.close()
        raise


def _run_with_autoretry(task: Task, args: Any, kwargs: dict[str, Any]) -> Any:
    if not task.autoretry_for:
        return _body(task, args, kwargs)
    try:
        return _body(task, args, kwargs)
    except Retry:
        raise
    except task.dont_autoretry_for:
        raise
    except task.autoretry_for as exc:
        retry_kwargs = dict(task.retry_kwargs or {})
        if task.retry_backoff:
            retry_kwargs["countdown"] = exponential_backoff(
                factor=float(task.retry_backoff), retries=task.request.retries,
                maximum=float(task.retry_backoff_max), full_jitter=bool(task.retry_jitter),
            )
        raise task.retry(exc=exc, **retry_kwargs) from exc


def _on_retry(task: Task, request: Context, exc: Retry) -> tuple[str, Any, str | None]:
    eager = getattr(exc, "eager_result", None)
    if eager is not None:
        return eager.state, eager.result, eager.traceback
    einfo = ExceptionInfo(exc)
    _handler(task, "on_retry", exc.exc, request.id, request.args, request.kwargs, einfo)
    logger.info("Task %s[%s] retry: %s", _shown(task, request), request.id, exc)
    signals.send(signals.task_retry, sender=task, request=request, reason=exc, einfo=einfo)
    return states.RETRY, exc, einfo.traceback


def _record_failure(task: Task, request: Context, exc: BaseException) -> ExceptionInfo:
    einfo = ExceptionInfo(exc, sys.exc_info()[2] if sys.exc_info()[1] is exc else None)
    if request.is_eager:
        pass
    elif task.throws and isinstance(exc, task.throws):
        # Celery's ``throws``: an expected error, logged at INFO without its traceback.
        logger.info("Task %s[%s] raised expected: %r", _shown(task, request), request.id, exc)
    else:
        logger.error("Task %s[%s] raised unexpected: %r", _shown(task, request), request.id, exc,
                     exc_info=(type(exc), exc, einfo.tb))
    _handler(task, "on_failure", exc, request.id, request.args, request.kwargs, einfo)
    signals.send(signals.task_failure, sender=task, task_id=request.id, exception=exc,
                 args=request.args, kwargs=request.kwargs, traceback=einfo.tb, einfo=einfo)
    call_errbacks(request, exc, einfo.traceback)
    return einfo


def _apply_callbacks(request: Context, retval: Any) -> None:
    for callback in request.callbacks or ():
        try:
            Signature.from_dict(callback).apply_async(
                (retval,), parent_id=request.id, root_id=request.root_id or request.id,
            )
        except Exception:  # noqa: BLE001 - a bad callback must not change the parent's fate
            logger.exception("Task id=%s: could not apply link callback %r", request.id,
                             callback)


def call_errbacks(request: Context, exc: BaseException, traceback: str | None) -> None:
    """Call ``request``'s errbacks as Celery does: ``errback(request, exc, traceback)``
    here, or sent with the failed task's id if it takes one argument."""
    for errback in request.errbacks or ():
        sig = Signature.from_dict(errback)
        try:
            task = sig.type
            if _positional_arity(task) > 1:
                # Celery: an errback taking more than one argument is called here, in the
                # worker, with (request, exc, traceback).
                sig(request, exc, traceback)
            else:
                sig.apply_async((request.id,), parent_id=request.id,
                                root_id=request.root_id or request.id)
        except Exception:  # noqa: BLE001
            logger.exception("Task id=%s: errback %r raised", request.id, errback)


def _positional_arity(task: Task) -> int:
    try:
        params = list(inspect.signature(task.run).parameters.values())
    except (TypeError, ValueError):
        return 1
    if task.bind:
        params = params[1:]
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return 3
    return sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


def trace_eager(task: Task, request: Context, throw: bool) -> tuple[str, Any, str | None]:
    """Run ``task`` inline (``apply()``/``task_always_eager``)."""
    state, value, tb = trace_task(task, request)
    if throw and state == states.FAILURE and isinstance(value, BaseException):
        raise value
    return state, value, tb
