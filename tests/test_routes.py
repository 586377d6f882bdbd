"""Celery's task_routes (issue 14)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from djq import group
from djq.exceptions import ImproperlyConfigured
from djq.models import Task as TaskRow
from tests.testapp.tasks import add, echo, routed

pytestmark = pytest.mark.django_db(transaction=True)


def row(result: Any) -> TaskRow:
    return TaskRow.objects.get(id=result.id)


def by_args(name: str, args: Any, kwargs: Any, options: Any, task: Any = None,
            **kw: Any) -> Any:
    """A router function, as Celery calls it."""
    if name == echo.name and args and args[0] == "urgent":
        return {"queue": "urgent", "priority": 9}
    return None


class OldStyle:
    def route_for_task(self, task: str, args: Any = None, kwargs: Any = None) -> Any:
        return "old" if task == add.name else None


def test_a_dict_of_names_and_globs(settings):
    settings.DJQ = {"task_routes": {
        add.name: {"queue": "math", "priority": 3},
        "tests.testapp.tasks.e*": "letters",
        re.compile(r".*\.noop$"): {"queue": {"name": "nothing"}},
    }}
    assert (row(add.delay(1, 2)).queue, row(add.delay(1, 2)).priority) == ("math", 3)
    assert row(echo.delay()).queue == "letters"
    from tests.testapp.tasks import noop

    assert row(noop.delay()).queue == "nothing"


def test_the_call_and_the_task_win_over_routes(settings):
    settings.DJQ = {"task_routes": {"*": {"queue": "routed", "priority": 2}}}
    assert row(add.apply_async((1, 2), queue="mine")).queue == "mine"
    assert row(add.apply_async((1, 2), queue="mine")).priority == 2
    assert row(add.apply_async((1, 2), priority=7)).queue == "routed"
    assert (row(routed.delay()).queue, row(routed.delay()).priority) == ("special", 6)


def test_a_list_of_routers_first_answer_wins(settings):
    settings.DJQ = {"task_routes": [by_args, "tests.test_routes.by_args", OldStyle(),
                                    {"*": "rest"}]}
    assert (row(echo.delay("urgent")).queue, row(echo.delay("urgent")).priority) == (
        "urgent", 9)
    assert row(echo.delay("calm")).queue == "rest"
    assert row(add.delay(1, 1)).queue == "old"


def test_routes_apply_to_canvas_members(settings):
    settings.DJQ = {"task_routes": {add.name: "math"}}
    result = group(add.s(1, 1), add.s(2, 2)).apply_async()
    assert {TaskRow.objects.get(id=r.id).queue for r in result.results} == {"math"}


def test_route_options_djq_cannot_honour_are_refused(settings):
    settings.DJQ = {"task_routes": {add.name: {"queue": "q", "routing_key": "k"}}}
    with pytest.raises(ValueError, match="routing_key"):
        add.delay(1, 1)
    settings.DJQ = {"task_routes": {add.name: {"queue": "q", "colour": "red"}}}
    with pytest.raises(ValueError, match="colour"):
        add.delay(1, 1)
    settings.DJQ = {"task_routes": [42]}
    with pytest.raises(ImproperlyConfigured, match="42"):
        add.delay(1, 1)
    assert not TaskRow.objects.exists()


def test_a_worker_of_the_routed_queue_runs_it(start_worker, settings):
    routes = {"task_routes": {add.name: {"queue": "math"}}}
    settings.DJQ = routes
    start_worker("-Q", "math", djq=routes)
    result = add.delay(20, 22)
    assert row(result).queue == "math"
    assert result.get(timeout=20) == 42
