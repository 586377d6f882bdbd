"""OpenTelemetry spans for publishing and running tasks (``pip install djq[otel]``, then
``DJQ["tracing"] = True``).

* Publishing (``apply_async``, ``delay_many``, a canvas, the Tasks backend and the API,
  all through :func:`djq.publish.publish`) makes one PRODUCER span, ``publish <task>``,
  a child of whatever span is current (a web request's, or the task that sends). Its
  context travels in the task's headers (W3C ``traceparent``/``tracestate``), so the
  publish signals and the worker see it.
* Running makes one CONSUMER span, ``run <task>``, whose parent is that context. It is
  current while the task runs, so what the task sends or queries joins the same trace.
  A failure records the exception and sets the span's status to ERROR; a retry is
  recorded as an event.

djq uses only the OpenTelemetry API: the application configures the SDK (exporters,
sampling) as it does for its web requests. Without ``tracing`` on, nothing here runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from . import serialization
from .conf import conf
from .exceptions import ImproperlyConfigured
from .rows import Message

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from ._state import Context

SYSTEM = "djq"


def enabled() -> bool:
    """Whether ``DJQ["tracing"]`` is on; ImproperlyConfigured if it is and the
    OpenTelemetry API is not installed."""
    if not conf.tracing:
        return False
    try:
        import opentelemetry.trace  # noqa: F401
    except ImportError:
        raise ImproperlyConfigured(
            "DJQ['tracing'] is on but the OpenTelemetry API is not installed: "
            "pip install 'djq[otel]' (or opentelemetry-api)") from None
    return True


def _tracer() -> Any:
    from opentelemetry import trace

    return trace.get_tracer("djq")


@contextlib.contextmanager
def publishing(messages: Sequence[Message]) -> Iterator[dict[str, str]]:
    """A PRODUCER span around storing ``messages``; yields the carrier (the headers
    that hold its context) for the caller to write into the rows."""
    from opentelemetry import propagate, trace

    first = messages[0]
    many = len(messages) > 1
    attributes: dict[str, Any] = {
        "messaging.system": SYSTEM, "messaging.operation.type": "send",
        "messaging.destination.name": first.queue, "djq.task.name": first.name,
    }
    if many:
        attributes["messaging.batch.message_count"] = len(messages)
    else:
        attributes["messaging.message.id"] = str(first.id)
    with _tracer().start_as_current_span(
            f"publish {first.name}", kind=trace.SpanKind.PRODUCER,
            attributes=attributes) as span:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        try:
            yield carrier
        except BaseException as exc:
            _failed(span, exc)
            raise


def carry(messages: Sequence[Message], carrier: dict[str, str]) -> list[Message]:
    """``messages`` with ``carrier`` merged into the headers of their options. Rows of one
    call share their options' text, so each distinct text is rewritten once."""
    if not carrier:
        return list(messages)
    rewritten: dict[str, str] = {}

    def with_carrier(options: str) -> str:
        if options not in rewritten:
            opts = serialization.loads_options(options)
            opts["headers"] = {**(opts.get("headers") or {}), **carrier}
            rewritten[options] = serialization.dumps(opts)
        return rewritten[options]

    return [dataclasses.replace(m, options=with_carrier(m.options)) for m in messages]


@contextlib.contextmanager
def running(task_name: str, request: Context) -> Iterator[Span]:
    """A CONSUMER span around one run of a task, a child of the context its headers
    carry; current while the task runs."""
    from opentelemetry import propagate, trace

    parent = propagate.extract(request.headers or {})
    attributes = {
        "messaging.system": SYSTEM, "messaging.operation.type": "process",
        "messaging.message.id": str(request.id), "djq.task.name": task_name,
        "djq.task.retries": int(request.retries or 0),
    }
    if request.delivery_info and request.delivery_info.get("routing_key"):
        attributes["messaging.destination.name"] = request.delivery_info["routing_key"]
    with _tracer().start_as_current_span(
            f"run {task_name}", context=parent, kind=trace.SpanKind.CONSUMER,
            attributes=attributes, record_exception=False,
            set_status_on_exception=False) as span:
        yield span


def finished(span: Span, state: str, value: Any) -> None:
    """Mark a run span with the task's final state: ERROR with the exception if it
    failed, an event if it is retried."""
    from . import states

    span.set_attribute("djq.task.state", state)
    if state == states.FAILURE and isinstance(value, BaseException):
        _failed(span, value)
    elif state == states.RETRY:
        span.add_event("retry", {"exception.message": str(value)})


def _failed(span: Span, exc: BaseException) -> None:
    from opentelemetry.trace import Status, StatusCode

    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
