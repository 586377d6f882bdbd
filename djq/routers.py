"""A database router that keeps djq's tables on ``DJQ['database']``.

Only needed when that alias is not ``default``:
``DATABASE_ROUTERS = ["djq.routers.DjqRouter"]``.
"""

from __future__ import annotations

from typing import Any

from .conf import conf


class DjqRouter:
    def _ours(self, model: Any) -> bool:
        return bool(model._meta.app_label == "djq")

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return str(conf.database) if self._ours(model) else None

    db_for_write = db_for_read

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        if app_label == "djq":
            return bool(db == conf.database)
        return None
