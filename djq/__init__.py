"""djq: a task queue for Django whose broker and result store is PostgreSQL.

Importing djq imports no models, so it is safe from settings and app loading.
"""

from __future__ import annotations

from . import states
from .canvas import Signature, chain, chord, group, maybe_signature, signature, subtask
from .result import AsyncResult, EagerResult, GroupResult, ResultSet
from .task import Task, register_task, shared_task, task

__version__ = "0.1.0"

__all__ = [
    "task", "shared_task", "Task", "register_task", "AsyncResult", "EagerResult", "signature", "subtask",
    "maybe_signature", "Signature", "chain", "group", "chord", "GroupResult", "ResultSet",
    "states", "__version__",
]
