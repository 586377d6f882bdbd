"""Celery's ``task_routes``: which queue (and priority) a call goes to when neither the
call nor the task says.

The setting is a dict of task name or glob (or compiled regular expression) to options,
a router function ``(name, args, kwargs, options, task=None, **kw)``, a dotted path to
one, or a list of these, asked in order; the first that answers wins. An answer is a
dict of options or a queue name. djq honours ``queue`` and ``priority``; other
options of Celery's routes (``exchange``, ``routing_key``, …) are refused, naming
themselves, as in ``apply_async``.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterator
from typing import Any

from .conf import conf
from .exceptions import ImproperlyConfigured
from .options import check_priority, check_publish_options, check_queue

Router = Callable[..., Any]


def _map_router(routes: dict[Any, Any]) -> Router:
    """Celery's MapRoute: an exact name first, then globs and patterns in order."""

    def route(name: str, *args: Any, **kwargs: Any) -> Any:
        if name in routes:
            return routes[name]
        for key, value in routes.items():
            if isinstance(key, re.Pattern):
                if key.match(name):
                    return value
            elif isinstance(key, str) and any(c in key for c in "*?[") \
                    and fnmatch.fnmatchcase(name, key):
                return value
        return None

    return route


def _old_style(router: Any) -> Router:
    def route(name: str, args: Any, kwargs: Any, *rest: Any, **kw: Any) -> Any:
        return router.route_for_task(name, args, kwargs)

    return route


def routers(setting: Any) -> Iterator[Router]:
    """The router functions of a ``task_routes`` value (as ``conf`` gives it, its dotted
    paths imported), in the order they are asked."""
    items = setting if isinstance(setting, (list, tuple)) else [setting]
    for item in items:
        if isinstance(item, dict):
            yield _map_router(item)
        elif hasattr(item, "route_for_task"):  # Celery's pre-4.0 router classes
            yield _old_style(item)
        elif callable(item):
            yield item
        else:
            raise ImproperlyConfigured(
                f"task_routes: {item!r} is not a dict, a router function or a dotted path")


def route(name: str, args: Any, kwargs: Any, options: dict[str, Any],
          task: Any = None) -> dict[str, Any]:
    """The options ``task_routes`` gives a call of ``name``: ``queue`` and/or
    ``priority``, or nothing."""
    setting = conf.task_routes
    if not setting:
        return {}
    for router in routers(setting):
        found = router(name, args, kwargs, options, task=task)
        if found:
            return _expand(found, name)
    return {}


def _expand(found: Any, name: str) -> dict[str, Any]:
    if isinstance(found, str):
        found = {"queue": found}
    if not isinstance(found, dict):
        raise ImproperlyConfigured(
            f"task_routes gave {found!r} for {name!r}: a dict of options or a queue name")
    route = dict(found)
    queue = route.pop("queue", None)
    if isinstance(queue, dict):  # Celery's {"queue": {"name": ..., "exchange": ...}}
        queue_options = dict(queue)
        queue = queue_options.pop("name", None)
        route.update(queue_options)
    priority = route.pop("priority", None)
    check_publish_options(route)  # exchange, routing_key, …: refused, naming them
    unknown = sorted(set(route) - {"serializer", "retry", "add_to_parent",
                                   "delivery_mode", "mandatory", "immediate", "exchange",
                                   "routing_key", "exchange_type"})
    if unknown:
        raise ValueError(f"task_routes gave {name!r} options djq does not know: {unknown}")
    out: dict[str, Any] = {}
    if queue is not None:
        check_queue(queue)
        out["queue"] = queue
    if priority is not None:
        check_priority(priority)
        out["priority"] = priority
    return out
