"""What the options of a call or a task may be. Checked where they are given
(``apply_async``, ``signature``, ``@task``), so a bad one raises there, naming itself,
before anything is stored, and never reaches a worker."""

from __future__ import annotations

import datetime
import math
import uuid
from typing import Any

from django.conf import settings

# The columns they are stored in.
QUEUE_MAX_LENGTH = 200
PRIORITY_RANGE = (-(2 ** 31), 2 ** 31 - 1)


def seconds(value: Any, name: str, positive: bool = False) -> float | None:
    """A number of seconds (None passes): finite, and above zero if ``positive``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number of seconds, not {value!r}")
    if positive and number <= 0:
        raise ValueError(f"{name} must be more than 0 seconds, not {value!r}")
    return number


def _text(value: Any, name: str) -> None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name} must be a string, not {type(value).__name__}")


def _task_id(value: Any, name: str) -> None:
    if value is None or isinstance(value, uuid.UUID):
        return
    try:
        uuid.UUID(str(value))
    except ValueError as exc:
        raise ValueError(f"{name} must be a UUID, not {value!r}") from exc


def check_queue(queue: Any) -> None:
    if not isinstance(queue, str) or not queue:
        raise ValueError(f"queue must be a non-empty string, not {queue!r}")
    if len(queue) > QUEUE_MAX_LENGTH:
        raise ValueError(f"queue names are at most {QUEUE_MAX_LENGTH} characters")


def check_priority(priority: Any) -> None:
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise TypeError(f"priority must be an integer, not {type(priority).__name__}")
    low, high = PRIORITY_RANGE
    if not low <= priority <= high:
        raise ValueError(f"priority must be between {low} and {high}, not {priority}")


# Options of Celery's apply_async about AMQP publishing. A value that asks for what djq
# does anyway is accepted (a Celery project passes them); any other is refused, naming
# the option and why, so nothing is accepted and ignored.
_NO_BROKER = "djq's broker is a PostgreSQL table: there is no {what}"
_REFUSED: dict[str, str] = {
    "exchange": _NO_BROKER.format(what="exchange; route with queue="),
    "exchange_type": _NO_BROKER.format(what="exchange; route with queue="),
    "routing_key": _NO_BROKER.format(what="routing key; route with queue="),
    "producer": _NO_BROKER.format(what="kombu producer; give using= for another database"),
    "connection": _NO_BROKER.format(what="kombu connection; give using= for another "
                                         "database"),
    "publisher": _NO_BROKER.format(what="kombu publisher; give using= for another database"),
    "reply_to": _NO_BROKER.format(what="reply queue; results are rows, read by id"),
    "correlation_id": "the task id is the only correlation id djq knows; give task_id=",
    "compression": "djq stores arguments as JSON text and does not compress them",
    "retry_policy": "djq does not retry a failed send: the INSERT commits or raises",
}
# name -> the values that ask for nothing djq does not do
_HARMLESS: dict[str, tuple[tuple[Any, ...], str]] = {
    "serializer": (("json",), "djq sends JSON only; serializer must be 'json'"),
    "retry": ((False,), "djq does not retry a failed send: the INSERT commits or raises; "
                        "give retry=False or leave it out"),
    "add_to_parent": ((True,), "a task sent from a task is always its parent's child"),
    "delivery_mode": ((2, "persistent"), "every task is a durable row: delivery_mode must "
                                         "be 2 ('persistent')"),
    "mandatory": ((False,), "there is no unroutable message: every task is stored"),
    "immediate": ((False,), "there is no unroutable message: every task is stored"),
}
PUBLISH_OPTIONS = frozenset(_REFUSED) | frozenset(_HARMLESS)


def check_publish_options(options: dict[str, Any]) -> None:
    """Refuse, naming it, a Celery publishing option djq cannot honour."""
    for key in sorted(PUBLISH_OPTIONS.intersection(options)):
        value = options[key]
        if value is None:
            continue
        if key in _REFUSED:
            raise ValueError(f"Option {key}={value!r} is not supported: {_REFUSED[key]}")
        allowed, why = _HARMLESS[key]
        if value not in allowed or isinstance(value, bool) != isinstance(allowed[0], bool):
            raise ValueError(f"Option {key}={value!r} is not supported: {why}")


def check_call_options(options: dict[str, Any]) -> None:
    """Check the types and ranges of the options of one call that are given (None means
    "not given" for each)."""
    check_publish_options(options)
    for key in ("countdown", "expires"):
        value = options.get(key)
        if not isinstance(value, datetime.datetime):
            seconds(value, key)
    for key in ("time_limit", "soft_time_limit"):
        seconds(options.get(key), key, positive=True)
    for key in ("eta",):
        value = options.get(key)
        if value is not None and not isinstance(value, datetime.datetime):
            raise TypeError(f"{key} must be a datetime, not {type(value).__name__}")
    if options.get("queue") is not None:
        check_queue(options["queue"])
    if options.get("priority") is not None:
        check_priority(options["priority"])
    for key in ("task_id", "parent_id", "root_id", "group_id"):
        _task_id(options.get(key), key)
    for key in ("shadow", "argsrepr", "kwargsrepr"):
        _text(options.get(key), key)
    retries = options.get("retries")
    if retries is not None and (isinstance(retries, bool) or not isinstance(retries, int)
                                or retries < 0):
        raise ValueError(f"retries must be a non-negative integer, not {retries!r}")
    headers = options.get("headers")
    if headers is not None and not isinstance(headers, dict):
        raise TypeError(f"headers must be a dict, not {type(headers).__name__}")
    using = options.get("using")
    if using is not None and using not in settings.DATABASES:
        raise ValueError(f"using={using!r} names no database in settings.DATABASES")


# Task options of Celery's, accepted with the value that asks for what djq does anyway.
_TASK_HARMLESS: dict[str, tuple[Any, str]] = {
    "serializer": ("json", "djq sends JSON only; serializer must be 'json'"),
    "trail": (True, "a task sent from a task is always its parent's child"),
    "send_events": (True, "events are sent by workers started with -E, for every task"),
    "acks_on_failure_or_timeout": (True, "a task that fails or times out is acknowledged"),
    "store_eager_result": (False, "eager results (apply(), task_always_eager) are not "
                                  "stored"),
}


def check_task_options(task: Any) -> None:
    """Check a task's own options when it is defined."""
    label = task.name or "task"
    if task.rate_limit is not None:
        # Delivered by the flow-control work; until then it is refused, not ignored.
        raise NotImplementedError(
            f"{label}: rate_limit={task.rate_limit!r} is not supported by djq yet")
    for key, (allowed, why) in _TASK_HARMLESS.items():
        value = getattr(task, key, None)
        if value is not None and (value != allowed or type(value) is not type(allowed)):
            raise ValueError(f"{label}: task option {key}={value!r} is not supported: {why}")
    for key in ("throws", "autoretry_for", "dont_autoretry_for"):
        for item in getattr(task, key, ()) or ():
            if not (isinstance(item, type) and issubclass(item, BaseException)):
                raise TypeError(f"{label}: {key} must be exception classes, not {item!r}")
    limit = getattr(task, "max_deliveries", None)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                              or limit < 1):
        raise ValueError(f"{label}: max_deliveries must be a positive integer, not {limit!r}")
    expires = getattr(task, "expires", None)
    if expires is not None and not isinstance(expires, datetime.datetime):
        seconds(expires, f"{label}: expires")
    for key in ("time_limit", "soft_time_limit"):
        seconds(getattr(task, key, None), f"{task.name or 'task'}: {key}", positive=True)
    if task.queue is not None:
        check_queue(task.queue)
    if task.priority is not None:
        check_priority(task.priority)
    max_retries = task.max_retries
    if max_retries is not None and max_retries is not task._SENTINEL and (
            isinstance(max_retries, bool) or not isinstance(max_retries, int)
            or max_retries < 0):
        raise ValueError(f"{task.name}: max_retries must be a non-negative integer or None, "
                         f"not {max_retries!r}")
    delay = task.default_retry_delay
    if delay is not task._SENTINEL:
        seconds(delay, f"{task.name}: default_retry_delay")
