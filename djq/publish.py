"""The one way a call becomes a stored row: ``before_task_publish``, the INSERT, then
``after_task_publish`` (Celery's order), for ``apply_async``, ``delay_many``, the canvas
and Django's Tasks backend alike."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from django.dispatch import Signal

from . import broker, signals, tracing
from .exceptions import DuplicateTaskError


@dataclasses.dataclass(frozen=True, slots=True)
class Prepared:
    """One call, checked and encoded (:meth:`djq.Task.prepare`): its row, and the body
    and protocol-2 headers the publish signals carry. ``headers`` is None for a row that
    is not published yet (a canvas step that waits on another)."""

    message: broker.Message
    body: tuple[list[Any], dict[str, Any], dict[str, Any]]
    headers: dict[str, Any] | None


def publish(calls: Sequence[Prepared],
            insert: Callable[[Sequence[broker.Message]], object],
            messages: Sequence[broker.Message] | None = None) -> None:
    """Send ``before_task_publish`` for each published call, run ``insert`` on the rows
    (``messages``, or the calls' own), then send ``after_task_publish``. A signal is
    asked once per task name whether anyone listens, not once per row. With tracing on,
    this is the publish span, and the rows and headers carry its context."""
    rows = [c.message for c in calls] if messages is None else messages
    if not rows:
        return
    if not tracing.enabled():
        _publish(calls, insert, rows)
        return
    with tracing.publishing(rows) as carrier:
        rows = tracing.carry(rows, carrier)
        by_id = {m.id: m for m in rows}
        calls = [dataclasses.replace(
            c, message=by_id[c.message.id],
            headers=None if c.headers is None else {**c.headers, **carrier}) for c in calls]
        _publish(calls, insert, rows)


def _publish(calls: Sequence[Prepared], insert: Callable[[Sequence[broker.Message]], object],
             rows: Sequence[broker.Message]) -> None:
    published = [c for c in calls if c.headers is not None]
    for call in _listened(signals.before_task_publish, published):
        signals.send(signals.before_task_publish, sender=call.message.name, body=call.body,
                     exchange="", routing_key=call.message.queue, headers=call.headers,
                     properties={"priority": call.message.priority}, declare=[],
                     retry_policy=None)
    insert(rows)
    for call in _listened(signals.after_task_publish, published):
        signals.send(signals.after_task_publish, sender=call.message.name, body=call.body,
                     exchange="", routing_key=call.message.queue, headers=call.headers)


def publish_one(call: Prepared, using: str | None = None) -> None:
    """Publish one call (``apply_async``); DuplicateTaskError if its id is already
    waiting or running."""

    def insert(rows: Sequence[broker.Message]) -> None:
        if broker.enqueue(rows, using=using) == 0:
            raise DuplicateTaskError(
                f"Task id={call.message.id} is already waiting or running; not sent again")

    publish([call], insert)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Preparing many calls at once (a canvas, ``delay_many``) allocates a few
    containers per task that all live until they are sent: the cyclic garbage collector would scan them over and over and find nothing
    (a fifth of the time of a 20,000-task group). It is paused for that while only, and
    turned back on only if it was on, as timeit does."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def publish_listened(name: str) -> bool:
    """Whether anyone hears the publish signals of task ``name`` (its headers are worth
    working out)."""
    return (signals.before_task_publish.has_listeners(name)
            or signals.after_task_publish.has_listeners(name))


def _listened(signal: Signal, calls: list[Prepared]) -> list[Prepared]:
    names = {c.message.name for c in calls}
    listened = {name for name in names if signal.has_listeners(name)}
    return [c for c in calls if c.message.name in listened] if listened else []
