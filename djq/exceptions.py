"""Every error djq raises; each class's docstring is its default message."""

from __future__ import annotations

import builtins
from typing import Any


class DjqError(Exception):
    """A djq error."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*(args or (self.__doc__ or "",)))


class EncodeError(DjqError):
    """A value could not be encoded as JSON."""


class DecodeError(DjqError):
    """A stored payload could not be decoded."""


class NotRegistered(DjqError, KeyError):
    """No task is registered under this name."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else (self.__doc__ or "")


class DuplicateTaskError(DjqError):
    """A task with this id is already waiting or running."""


class TaskNotFound(DjqError, LookupError):
    """No task with this id is stored."""


class TaskNotFinished(DjqError):
    """The task has not finished yet."""


class ScheduleError(DjqError, ValueError):
    """A schedule or a periodic task is not valid."""


class ImproperlyConfigured(DjqError):
    """djq is configured in a way that cannot work."""


class Retry(DjqError):
    """The task is to be retried later."""

    def __init__(
        self,
        message: str | None = None,
        exc: BaseException | None = None,
        when: Any = None,
        **kwargs: Any,
    ) -> None:
        self.message = message
        self.exc = exc
        self.when = when
        super().__init__(message or self.humanize())

    def humanize(self) -> str:
        when = f"in {self.when}s" if isinstance(self.when, (int, float)) else f"at {self.when}"
        if self.exc is not None:
            return f"Retry {when}: {self.exc!r}"
        return f"Retry {when}"

    def __reduce__(self) -> Any:  # pragma: no cover - parity with Celery
        return self.__class__, (self.message, self.exc, self.when)


class MaxRetriesExceededError(DjqError):
    """The task's max retry limit has been exceeded."""

    def __init__(self, *args: Any, task_args: Any = None, task_kwargs: Any = None) -> None:
        self.task_args = task_args
        self.task_kwargs = task_kwargs
        super().__init__(*args)


class SoftTimeLimitExceeded(DjqError):
    """The soft time limit has been exceeded."""


class TimeLimitExceeded(DjqError):
    """The hard time limit has been exceeded."""


class TimeoutError(DjqError, builtins.TimeoutError):
    """The operation timed out."""


class TaskRevokedError(DjqError):
    """The task has been revoked, so no result is available."""


class WorkerLostError(DjqError):
    """The worker processing a job has exited prematurely."""


class LeaseLost(DjqError):
    """This worker was declared dead by the others, and its tasks were recovered."""


class OutcomeNotRecorded(DjqError):
    """No djq state receiver answered the task's signal, so its outcome was not recorded."""


class TaskError(DjqError):
    """The task raised an exception."""


class ChordError(DjqError):
    """A task part of the chord raised an exception."""


__all__ = [
    "DjqError", "EncodeError", "DecodeError", "NotRegistered", "DuplicateTaskError", "ScheduleError",
    "ImproperlyConfigured", "TaskNotFound", "TaskNotFinished", "Retry", "MaxRetriesExceededError", "SoftTimeLimitExceeded",
    "TimeLimitExceeded", "TimeoutError", "TaskRevokedError", "WorkerLostError", "OutcomeNotRecorded",
    "TaskError", "ChordError",
]
