"""Signals with Celery's names and keyword arguments, as Django ``Signal`` objects.

djq sends every signal with :func:`send`, which is ``send_robust`` plus logging:
a receiver that raises is logged and never breaks the worker or the caller.

djq's own state receivers (:mod:`djq.receivers`) are connected here, as this module is
imported: before any user's receiver can be, so they run first, and without waiting for
``AppConfig.ready()``. Each returns the :class:`~djq.broker.Outcome` of the row it ends;
the tracer takes it from what :func:`send` returns.
"""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import Signal

from . import receivers

logger = logging.getLogger(__name__)

before_task_publish = Signal()
after_task_publish = Signal()
task_received = Signal()
task_prerun = Signal()
task_postrun = Signal()
task_success = Signal()
task_failure = Signal()
task_retry = Signal()
task_revoked = Signal()
task_unknown = Signal()
task_rejected = Signal()
worker_init = Signal()
worker_ready = Signal()
worker_shutdown = Signal()
worker_process_init = Signal()
worker_process_shutdown = Signal()


# djq's state receivers, first of all (see the module's docstring).
for _signal, _receiver in (
    (task_success, receivers.on_success), (task_failure, receivers.on_failure),
    (task_retry, receivers.on_retry), (task_revoked, receivers.on_revoked),
    (task_unknown, receivers.on_unknown),
):
    _signal.connect(_receiver, dispatch_uid=receivers.DISPATCH_PREFIX + _receiver.__name__,
                    weak=False)


def send(signal: Signal, sender: Any, **kwargs: Any) -> list[tuple[Any, Any]]:
    """Send ``signal``; log, never raise, what a receiver raises. Returns Django's
    ``(receiver, response)`` pairs (a receiver that raised has its exception)."""
    if not signal.has_listeners(sender):
        return []
    responses = signal.send_robust(sender=sender, **kwargs)
    for receiver, response in responses:
        if isinstance(response, Exception):
            logger.error(
                "Signal receiver %r raised: %r", receiver, response, exc_info=response
            )
    return responses


__all__ = [
    "before_task_publish", "after_task_publish", "task_received", "task_prerun",
    "task_postrun", "task_success", "task_failure", "task_retry", "task_revoked",
    "task_unknown", "task_rejected", "worker_init", "worker_ready", "worker_shutdown",
    "worker_process_init", "worker_process_shutdown", "send",
]
