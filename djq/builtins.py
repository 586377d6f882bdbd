"""The tasks behind ``Task.map``, ``Task.starmap`` and ``Task.chunks``, under Celery's
names, and the one that calls a failed chord callback's errbacks (registered when Django
starts, so every worker knows them)."""

from __future__ import annotations

import logging
from typing import Any

from . import broker, serialization, states, trace
from .canvas import Signature
from .result import exception_from_dict
from .task import task

logger = logging.getLogger(__name__)


@task(name="celery.map")
def xmap(task: dict[str, Any], it: list[Any]) -> list[Any]:
    fun = Signature.from_dict(task).type
    return [fun(item) for item in it]


@task(name="celery.starmap")
def xstarmap(task: dict[str, Any], it: list[Any]) -> list[Any]:
    fun = Signature.from_dict(task).type
    return [fun(*item) for item in it]


@task(name="djq.chord_errbacks", ignore_result=True)
def chord_errbacks(task_id: str) -> None:
    """Call the errbacks of a chord callback that failed with ``ChordError`` without ever
    running, as Celery does: with the callback's request, the ``ChordError`` and no
    traceback (or, old style, with its id). The canvas writes this row beside such a
    callback, and the canvas trigger starts it only then (djq_canvas_v2.sql)."""
    row = broker.fetch(task_id)
    if row is None or row["state"] != states.FAILURE:
        logger.info("Task id=%s: no failed chord callback, no errbacks to call", task_id)
        return
    ids = {k: str(row[k]) if row[k] else None for k in ("id", "parent_id", "root_id",
                                                        "group_id")}
    request = trace.request_from_row({**row, **ids}, None)
    exc = exception_from_dict(serialization.loads(row["result"]))
    trace.call_errbacks(request, exc, None)


@task(name="celery.accumulate")
def accumulate(*args: Any, **kwargs: Any) -> Any:
    """Celery's ``celery.accumulate``: its arguments, or the one at ``index``. The canvas
    uses it to give a chord one result for a chain that ends in a group."""
    index = kwargs.get("index")
    return args[index] if index is not None else args
