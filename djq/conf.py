"""djq's settings: ``settings.DJQ`` over Celery-named defaults, read on access."""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    "task_track_started": False,
    "task_ignore_result": False,
    "task_store_errors_even_if_ignored": False,
    "task_acks_late": False,
    "task_reject_on_worker_lost": False,  # with acks_late: a lost process re-queues
    "task_max_deliveries": 5,  # djq's: a task lost this many times ends FAILURE
    "task_time_limit": None,
    "task_soft_time_limit": None,
    "task_default_queue": "default",
    "imports": (),  # Celery's: modules of tasks to import besides <app>.tasks
    "include": (),  # Celery's: the same, imported after imports
    "task_routes": None,  # Celery's: name/glob -> options, router functions (djq.routes)
    "task_default_priority": 0,
    "task_default_retry_delay": 180,
    "task_max_retries": 3,
    "task_always_eager": False,
    "task_eager_propagates": False,
    "worker_concurrency": None,
    "worker_prefetch_multiplier": 4,
    "worker_send_task_events": False,
    "task_send_sent_event": False,  # Celery's: the sender publishes task-sent events
    "result_expires": 86400,
    "result_expires_failed": None,  # djq's: FAILURE rows; None = result_expires, 0 = keep
    "database": "default",
    "api_permission_classes": ["rest_framework.permissions.IsAdminUser"],
    "api_enqueue_allowlist": [],
    "api_owner_scoped": False,
    "beat_schedule": {},  # Celery's: name -> {"task", "schedule", "args", "kwargs", "options"}
    "beat_timezone": None,  # zone crontabs are read in; None: Django's TIME_ZONE
    # djq's own (no Celery equivalent): how workers find each other's death.
    "worker_heartbeat_interval": 5.0,  # seconds between heartbeat writes
    "worker_lease": 20.0,  # a worker silent this long is dead; its tasks are recovered
    "worker_poll_interval": 5.0,  # fallback poll; NOTIFY wakes workers as work arrives
    # Behind a transaction pooler: an alias reaching PostgreSQL directly, for LISTEN
    # only; without one, workers poll every worker_pooled_poll_interval seconds.
    "listen_database": None,
    "worker_pooled_poll_interval": 0.05,
    "metrics_token": None,  # /djq/metrics also answers "Authorization: Bearer <token>"
    "worker_prune_interval": 30.0,  # how often a worker prunes expired results
    "worker_prune_batch": 1000,  # rows deleted per prune statement
}


class Settings:
    """Attribute access to DJQ settings; unknown names raise AttributeError."""

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Unknown djq setting: {name!r}")
        user = getattr(settings, "DJQ", None) or {}
        return user.get(name, DEFAULTS[name])

    def user_keys(self) -> set[str]:
        return set((getattr(settings, "DJQ", None) or {}).keys())


conf = Settings()
