"""The tasks behind ``Task.map``, ``Task.starmap`` and ``Task.chunks``, under Celery's
names (registered when Django starts, so every worker knows them)."""

from __future__ import annotations

from typing import Any

from .canvas import Signature
from .task import task


@task(name="celery.map")
def xmap(task: dict[str, Any], it: list[Any]) -> list[Any]:
    fun = Signature.from_dict(task).type
    return [fun(item) for item in it]


@task(name="celery.starmap")
def xstarmap(task: dict[str, Any], it: list[Any]) -> list[Any]:
    fun = Signature.from_dict(task).type
    return [fun(*item) for item in it]
