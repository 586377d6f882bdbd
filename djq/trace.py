"""Running one task as a worker does: signals, retries, callbacks, and its outcome.

The outcome is not written here. djq's own receivers of ``task_success``,
``task_failure``, ``task_retry``, ``task_revoked`` and ``task_unknown``
(:mod:`djq.receivers`, connected first by :mod:`djq.signals`) each return the
:class:`~djq.broker.Outcome` of the row; the tracer takes it from what the signal's
``send()`` returns, and :func:`execute` hands it to the worker, which writes outcomes in
batches. A user's receiver of the same signal therefore sees exactly what is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import inspect
import logging
import random
import sys
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

from django.dispatch import Signal
from django.utils import timezone

from . import broker, interrupts, receivers, serialization, signals, states, tracing
from ._state import Context, set_current_request
from ._state import current_request as current_request  # re-exported
from .canvas import Signature
from .exceptions import (
    DecodeError,
    EncodeError,
    NotRegistered,
    OutcomeNotRecorded,
    Retry,
)
from .registry import registry
from .serialization import ExceptionInfo as ExceptionInfo  # re-exported
from .serialization import exception_to_dict as exception_to_dict  # re-exported

if TYPE_CHECKING:
    from .task import Task

logger = logging.getLogger("djq.worker")

_local = threading.local()  # this thread's event loop, for async def tasks

# Set by the threads and solo pools: task bodies then run where another thread can end
# them (djq.interrupts).
interrupts_enabled = False

#: What the tracer collects from djq's state receivers while it runs one task.
Outcomes = list[broker.Outcome]


def send_state(outcomes: Outcomes | None, signal: Signal, sender: Any, **kwargs: Any) -> None:
    """Send a signal that djq's state receivers answer; keep in ``outcomes`` the
    :class:`~djq.broker.Outcome` they return as their response."""
    for receiver, response in signals.send(signal, sender=sender, **kwargs):
        if outcomes is not None and receiver in receivers.STATE_RECEIVERS and isinstance(
                response, broker.Outcome):
            outcomes.append(response)


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
    return c.to_json()


def execute(row: dict[str, Any], hostname: str | None) -> Outcomes:
    """Run a claimed row in this process; return the outcomes to write.

    Never raises for anything the task or its data does: an unknown name, a payload that
    does not decode or a task that raises (even SystemExit) ends as a stored FAILURE.
    """
    outcomes: Outcomes = []
    name = row["name"]
    try:
        task = registry[name]
    except NotRegistered as exc:
        logger.error("Received unregistered task of type %r. id=%s", name, row["id"])
        send_state(outcomes, signals.task_unknown, sender=None, name=name, id=row["id"],
                   message=row, exc=exc)
        return answered(row, outcomes, "task_unknown")
    try:
        request = request_from_row(row, hostname)
    except DecodeError as exc:
        logger.error("Task %s[%s] has a payload that cannot be decoded: %s",
                     name, row["id"], exc)
        request = Context(id=row["id"], task=name, args=[], kwargs={}, retries=row["retries"],
                          called_directly=False, hostname=hostname)
        _record_failure(task, request, exc, outcomes)
        return answered(row, outcomes, "task_failure")
    expires = row.get("expires")
    if expires and datetime.datetime.fromisoformat(expires) <= timezone.now():
        logger.info("Discarding expired task %s[%s] (expired at %s)", name, row["id"], expires)
        _push(task, request)
        try:
            send_state(outcomes, signals.task_revoked, sender=task, request=request,
                       terminated=False, signum=None, expired=True)
        finally:
            _pop(task)
        return answered(row, outcomes, "task_revoked")
    state, _, _ = trace_task(task, request, outcomes)
    return answered(row, outcomes, _STATE_SIGNALS.get(state, "its state signal"))


_STATE_SIGNALS = {states.SUCCESS: "task_success", states.FAILURE: "task_failure",
                  states.RETRY: "task_retry", states.REVOKED: "task_revoked"}


def answered(row: dict[str, Any], outcomes: Outcomes, signal: str) -> Outcomes:
    """``outcomes``, which djq's state receivers filled; if none answered ``signal`` (one
    was disconnected, or raised), the row ends FAILURE with :class:`OutcomeNotRecorded`,
    logged as an error: a row is never left running."""
    if outcomes:
        return outcomes
    error = OutcomeNotRecorded(
        f"Task id={row['id']} name={row['name']}: no djq state receiver answered "
        f"{signal} (djq.receivers disconnected, or it raised)")
    logger.error("%s", error)
    return failed_outcome(row, error)


def failed_outcome(row: dict[str, Any], exc: BaseException,
                   state: str = states.FAILURE) -> Outcomes:
    """The outcome that ends ``row`` with ``exc`` (the pools use it for an interrupt
    that fired after the body ended)."""
    return [broker.Outcome(
        id=uuid.UUID(row["id"]), state=state,
        result=serialization.dumps(exception_to_dict(exc)),
        traceback=ExceptionInfo(exc).traceback, date_done=timezone.now(),
    )]


def _push(task: Task, request: Context) -> None:
    task.push_request(**request.__dict__)
    set_current_request(task.request)


def _pop(task: Task) -> None:
    task.pop_request()
    set_current_request(None)


def trace_task(task: Task, request: Context,
               outcomes: Outcomes | None = None) -> tuple[str, Any, str | None]:
    """Run ``task`` under ``request``; send its signals and call its handlers, in
    Celery's order; return (state, value, traceback). The outcome djq's state receivers
    return goes into ``outcomes``. With tracing on, the run is a span (djq.tracing)."""
    if not tracing.enabled():
        return _trace_task(task, request, outcomes)
    with tracing.running(task.name, request) as span:
        traced = _trace_task(task, request, outcomes)
        tracing.finished(span, traced[0], traced[1])
        return traced


def _trace_task(task: Task, request: Context,
                outcomes: Outcomes | None) -> tuple[str, Any, str | None]:
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
            state, retval, tb = _on_retry(task, request, exc, outcomes)
        except interrupts.Terminated as exc:
            state, retval, tb = _on_terminated(task, request, exc, outcomes)
        except BaseException as exc:  # noqa: BLE001 - a task's exception is data
            einfo = _record_failure(task, request, exc, outcomes)
            state, retval, tb = states.FAILURE, exc, einfo.traceback
        else:
            try:
                request.result_json = (None if request.is_eager
                                        else serialization.dumps(retval))
            except EncodeError as exc:
                einfo = _record_failure(task, request, exc, outcomes)
                state, retval, tb = states.FAILURE, exc, einfo.traceback
            else:
                _apply_callbacks(request, retval)
                runtime = time.monotonic() - started
                _handler(task, "on_success", retval, task_id, args, kwargs)
                if not request.is_eager:
                    logger.info("Task %s[%s] succeeded in %.6fs: %r", _shown(task, request), task_id,
                                runtime, retval)
                send_state(outcomes, signals.task_success, sender=task, result=retval)
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


def _on_terminated(task: Task, request: Context, exc: interrupts.Terminated,
                   outcomes: Outcomes | None) -> tuple[str, Any, str | None]:
    """``revoke(terminate=True)`` reached the task in its thread: it ends REVOKED."""
    logger.warning("Task %s[%s] terminated (signal %s)", _shown(task, request), request.id,
                   exc.signum)
    send_state(outcomes, signals.task_revoked, sender=task, request=request,
               terminated=True, signum=exc.signum, expired=False)
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
    value = task._call_body(args, kwargs)
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


def exponential_backoff(factor: float, retries: int, maximum: float, full_jitter: bool) -> int:
    """Celery's ``get_exponential_backoff_interval``: seconds before retry ``retries + 1``."""
    countdown = min(maximum, factor * (2 ** retries))
    if full_jitter:
        countdown = random.randrange(int(countdown) + 1)
    return max(0, int(countdown))



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


def _on_retry(task: Task, request: Context, exc: Retry,
              outcomes: Outcomes | None) -> tuple[str, Any, str | None]:
    eager = getattr(exc, "eager_result", None)
    if eager is not None:
        return eager.state, eager.result, eager.traceback
    einfo = ExceptionInfo(exc)
    _handler(task, "on_retry", exc.exc, request.id, request.args, request.kwargs, einfo)
    logger.info("Task %s[%s] retry: %s", _shown(task, request), request.id, exc)
    send_state(outcomes, signals.task_retry, sender=task, request=request, reason=exc,
               einfo=einfo)
    return states.RETRY, exc, einfo.traceback


def _record_failure(task: Task, request: Context, exc: BaseException,
                    outcomes: Outcomes | None) -> ExceptionInfo:
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
    send_state(outcomes, signals.task_failure, sender=task, task_id=request.id,
               exception=exc, args=request.args, kwargs=request.kwargs, traceback=einfo.tb,
               einfo=einfo)
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
