from __future__ import annotations

from django.apps import AppConfig


class DjqConfig(AppConfig):
    name = "djq"
    verbose_name = "djq task queue"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.utils.module_loading import autodiscover_modules

        # djq's state receivers are connected by djq.signals as it is imported, not here.
        from . import builtins, checks  # noqa: F401 - register on import
        from .events import receivers as event_receivers

        event_receivers.connect_sent()  # task-sent events, with task_send_sent_event
        autodiscover_modules("tasks")
        from importlib import import_module

        from .conf import conf

        # Celery's imports/include: task modules other than <app>.tasks, imported in
        # every process (a worker then knows their tasks).
        for module in [*(conf.imports or ()), *(conf.include or ())]:
            import_module(module)
        from importlib.util import find_spec

        if find_spec("django.tasks") or find_spec("django_tasks"):
            # Workers run tasks of Django's Tasks framework (DjqBackend) by module path.
            from .backends import resolve_django_task
            from .registry import registry

            if resolve_django_task not in registry.resolvers:
                registry.resolvers.append(resolve_django_task)
