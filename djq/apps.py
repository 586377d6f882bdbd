from __future__ import annotations

from django.apps import AppConfig


class DjqConfig(AppConfig):
    name = "djq"
    verbose_name = "djq task queue"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.utils.module_loading import autodiscover_modules

        from . import checks, receivers  # noqa: F401 - checks register on import

        receivers.connect()
        autodiscover_modules("tasks")
