"""System checks: unknown DJQ keys, values of the wrong type or out of range, a database
that is not PostgreSQL, pool/limit clashes."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Warning, register
from django.db import connections

from .conf import DEFAULTS, conf
from .conf import problems as conf_problems


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    problems: list[Any] = []
    unknown = sorted(conf.user_keys() - set(DEFAULTS))
    if unknown:
        problems.append(Warning(
            f"Unknown DJQ setting(s): {', '.join(unknown)}",
            hint=f"Known settings: {', '.join(sorted(DEFAULTS))}", id="djq.W001",
        ))
    alias = conf.database
    if alias not in settings.DATABASES:
        problems.append(Error(f"DJQ['database'] names an unknown database alias {alias!r}",
                              id="djq.E001"))
    elif connections[alias].vendor != "postgresql":
        problems.append(Error(
            f"djq needs PostgreSQL; database {alias!r} is {connections[alias].vendor}",
            id="djq.E002",
        ))
    return problems


@register()
def check_beat_schedule(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """A bad ``beat_schedule`` entry is an error; a task name nothing registers, a
    warning (another process may know it)."""
    from .beat.sync import check_entry
    from .exceptions import ImproperlyConfigured
    from .task import registry

    setting = conf.beat_schedule or {}
    if not isinstance(setting, dict):
        return [Error("DJQ['beat_schedule'] must be a dict of entries", id="djq.E010")]
    problems: list[Any] = []
    for name, value in setting.items():
        try:
            entry = check_entry(name, value)
        except ImproperlyConfigured as exc:
            problems.append(Error(str(exc), id="djq.E010"))
            continue
        if entry.task not in registry:
            problems.append(Warning(
                f"DJQ['beat_schedule'][{name!r}]: no task named {entry.task!r} is registered",
                hint="Check the name, or that its app's tasks module is imported",
                id="djq.W010"))
    return problems


#: The id of a bad value of these keys; any other key's is djq.E023.
_ERROR_IDS = {"task_max_deliveries": "djq.E020", "imports": "djq.E021",
              "include": "djq.E021", "task_routes": "djq.E022",
              "api_permission_classes": "djq.E022"}


@register()
def check_task_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Every DJQ value of the wrong type or out of range (:func:`djq.conf.problems`), and
    routes that cannot work: refused at start-up rather than when a worker or a request
    first reads them."""
    from . import routes
    from .exceptions import ImproperlyConfigured

    problems = [Error(message, id=_ERROR_IDS.get(key, "djq.E023"))
                for key, message in conf_problems()]
    if not any(p.id == "djq.E022" for p in problems):
        try:
            list(routes.routers(conf.task_routes or ()))
        except ImproperlyConfigured as exc:
            problems.append(Error(str(exc), id="djq.E022"))
    return problems


@register()
def check_pooler(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Behind a transaction pooler LISTEN cannot work: warn when no ``listen_database``
    alias reaches PostgreSQL directly (workers then poll)."""
    from .db import pooled

    direct = conf.listen_database
    if direct:
        if direct not in settings.DATABASES:
            return [Error(f"DJQ['listen_database'] names an unknown database alias "
                          f"{direct!r}", id="djq.E003")]
        return []
    alias = conf.database
    if alias not in settings.DATABASES or connections[alias].vendor != "postgresql":
        return []
    try:
        behind = pooled(alias)
    except Exception:  # noqa: BLE001 - unreachable now: commands that need it will say so
        return []
    if not behind:
        return []
    return [Warning(
        f"Database {alias!r} goes through a connection pooler (such as PgBouncer) and "
        f"DJQ['listen_database'] is not set: NOTIFY cannot reach workers or "
        f"AsyncResult.get(), so they poll (workers every "
        f"{conf.worker_pooled_poll_interval}s)",
        hint="Add a DATABASES alias that reaches PostgreSQL directly (not through the "
             "pooler) and name it in DJQ['listen_database']; it is used for LISTEN only",
        id="djq.W002")]
