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


def check_call_options(options: dict[str, Any]) -> None:
    """Check the types and ranges of the options of one call that are given (None means
    "not given" for each)."""
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


def check_task_options(task: Any) -> None:
    """Check a task's own options when it is defined."""
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
