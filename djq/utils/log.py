"""``get_task_logger``: a logger whose records carry the running task's name and id."""

from __future__ import annotations

import logging
from typing import Any


class TaskLoggerAdapter(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Adds ``task_name`` and ``task_id`` to each record (``???`` outside a task)."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        from ..trace import current_request

        request = current_request()
        extra = dict(kwargs.get("extra") or {})
        extra.setdefault("task_name", getattr(request, "task", None) or "???")
        extra.setdefault("task_id", getattr(request, "id", None) or "???")
        kwargs["extra"] = extra
        return msg, kwargs


def get_task_logger(name: str) -> TaskLoggerAdapter:
    """A logger for task modules, a child of ``djq.task``."""
    return TaskLoggerAdapter(logging.getLogger(f"djq.task.{name}"), {})


TASK_FORMAT = "[%(asctime)s: %(levelname)s/%(processName)s] %(task_name)s[%(task_id)s]: %(message)s"
WORKER_FORMAT = "[%(asctime)s: %(levelname)s/%(processName)s] %(message)s"


class TaskFormatter(logging.Formatter):
    """Formats task records with their task name and id, others plainly."""

    def __init__(self) -> None:
        super().__init__(WORKER_FORMAT)
        self.task_formatter = logging.Formatter(TASK_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        if hasattr(record, "task_id"):
            return self.task_formatter.format(record)
        return super().format(record)
