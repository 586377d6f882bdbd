"""Signals with Celery's names and keyword arguments, as Django ``Signal`` objects.

djq sends every signal with :func:`send`, which is ``send_robust`` plus logging:
a receiver that raises is logged and never breaks the worker or the caller.
"""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import Signal

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


def send(signal: Signal, sender: Any, **kwargs: Any) -> None:
    """Send ``signal``; log, never raise, what a receiver raises."""
    if not signal.has_listeners(sender):
        return
    for receiver, response in signal.send_robust(sender=sender, **kwargs):
        if isinstance(response, Exception):
            logger.error(
                "Signal receiver %r raised: %r", receiver, response, exc_info=response
            )


__all__ = [
    "before_task_publish", "after_task_publish", "task_received", "task_prerun",
    "task_postrun", "task_success", "task_failure", "task_retry", "task_revoked",
    "task_unknown", "task_rejected", "worker_init", "worker_ready", "worker_shutdown",
    "worker_process_init", "worker_process_shutdown", "send",
]
