"""djq's settings: ``settings.DJQ`` over Celery-named defaults, read on access.

:data:`DEFAULTS` names every setting; :class:`Settings` declares each one's type, which
mypy checks at every use and :func:`problems` (run by ``manage.py check``) checks in the
user's ``DJQ``, with the ranges of :data:`MINIMUM`. Settings that may name an object by
dotted path (:data:`IMPORT_STRINGS`, as DRF's ``APISettings``) come back imported.
"""

from __future__ import annotations

import datetime
import importlib
import types
import typing
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils.module_loading import import_string

from .exceptions import ImproperlyConfigured

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
    "tracing": False,  # OpenTelemetry spans for publish and run (djq.tracing; djq[otel])
}


#: Settings whose strings (the value itself, or an item of a list) are dotted paths to
#: objects; reading them imports those (``task_routes``' dicts and their queue names are
#: left as they are).
IMPORT_STRINGS = ("api_permission_classes", "task_routes")

#: Lower bounds: ``(minimum, whether the minimum itself is allowed)``. None is always
#: allowed where the type allows it.
MINIMUM: dict[str, tuple[float, bool]] = {
    "task_max_deliveries": (1, True),
    "task_time_limit": (0, False),
    "task_soft_time_limit": (0, False),
    "task_default_retry_delay": (0, True),
    "task_max_retries": (0, True),
    "worker_concurrency": (1, True),
    "worker_prefetch_multiplier": (0, True),
    "result_expires": (0, True),  # 0 or None: kept for good
    "result_expires_failed": (0, True),
    "worker_heartbeat_interval": (0, False),
    "worker_lease": (0, False),
    "worker_poll_interval": (0, False),
    "worker_pooled_poll_interval": (0, False),
    "worker_prune_interval": (0, False),
    "worker_prune_batch": (1, True),
}


class Settings:
    """Typed attribute access to DJQ settings, read from ``settings.DJQ`` (or the default)
    at each access, so ``override_settings`` applies; unknown names raise AttributeError."""

    task_track_started: bool
    task_ignore_result: bool
    task_store_errors_even_if_ignored: bool
    task_acks_late: bool
    task_reject_on_worker_lost: bool
    task_max_deliveries: int
    task_time_limit: float | None
    task_soft_time_limit: float | None
    task_default_queue: str
    imports: Sequence[str]
    include: Sequence[str]
    task_routes: Any  # dict, router function, dotted path, or a list of these
    task_default_priority: int
    task_default_retry_delay: float
    task_max_retries: int | None
    task_always_eager: bool
    task_eager_propagates: bool
    worker_concurrency: int | None
    worker_prefetch_multiplier: int
    worker_send_task_events: bool
    task_send_sent_event: bool
    result_expires: float | None
    result_expires_failed: float | None
    database: str
    api_permission_classes: Sequence[str | type]
    api_enqueue_allowlist: Sequence[str]
    api_owner_scoped: bool
    beat_schedule: dict[str, Any]
    beat_timezone: str | datetime.tzinfo | None
    worker_heartbeat_interval: float
    worker_lease: float
    worker_poll_interval: float
    listen_database: str | None
    worker_pooled_poll_interval: float
    metrics_token: str | None
    worker_prune_interval: float
    worker_prune_batch: int
    tracing: bool

    if not TYPE_CHECKING:  # mypy sees the declarations above, and refuses other names

        def __getattr__(self, name: str) -> Any:
            value = self.raw(name)
            return _imported(name, value) if name in IMPORT_STRINGS and value else value

    def raw(self, name: str) -> Any:
        """The value of ``name`` as the user wrote it (dotted paths not imported)."""
        if name not in DEFAULTS:
            raise AttributeError(f"Unknown djq setting: {name!r}")
        user = getattr(settings, "DJQ", None) or {}
        return user.get(name, DEFAULTS[name])

    def user_keys(self) -> set[str]:
        return set((getattr(settings, "DJQ", None) or {}).keys())


def _imported(name: str, value: Any) -> Any:
    """``value`` with its dotted paths imported: one string, or the strings of a list."""
    def load(item: Any) -> Any:
        if not isinstance(item, str):
            return item
        try:
            return import_string(item)
        except ImportError as exc:
            raise ImproperlyConfigured(f"{name}: cannot import {item!r}") from exc

    if isinstance(value, (list, tuple)):
        return [load(item) for item in value]
    return load(value)


def _conforms(value: Any, hint: Any) -> bool:
    """Whether ``value`` is of the declared type ``hint`` (bool is not a number; an int
    is a float; a list or tuple is a Sequence, a string is not)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if hint in (int, float) and isinstance(value, bool):
        return False
    if hint is float:
        return isinstance(value, (int, float))
    if origin is Sequence:
        return isinstance(value, (list, tuple)) and all(_conforms(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    return isinstance(value, hint)


def _type_name(hint: Any) -> str:
    return str(hint).replace("collections.abc.", "").replace("typing.", "").replace(
        "datetime.", "").replace("<class '", "").replace("'>", "")


def problems() -> Iterator[tuple[str, str]]:
    """What is wrong with the user's ``DJQ``, as ``(key, message)``: a value of the wrong
    type, out of range, or a dotted path that cannot be imported. Unknown keys are
    :mod:`djq.checks`' warning."""
    hints = typing.get_type_hints(Settings)
    for key in sorted(conf.user_keys() & set(DEFAULTS)):
        value = conf.raw(key)
        if not _conforms(value, hints[key]):
            yield key, (f"DJQ[{key!r}] must be {_type_name(hints[key])}, "
                        f"not {type(value).__name__} {value!r}")
        elif key in MINIMUM and value is not None and (
                value < MINIMUM[key][0] or (value == MINIMUM[key][0] and not MINIMUM[key][1])):
            yield key, (f"DJQ[{key!r}] must be "
                        f"{'at least' if MINIMUM[key][1] else 'more than'} "
                        f"{MINIMUM[key][0]:g}, not {value!r}")
        elif key in IMPORT_STRINGS:
            try:
                getattr(conf, key)
            except ImproperlyConfigured as exc:
                yield key, str(exc)
    if conf.raw("tracing") is True and not _importable("opentelemetry.trace"):
        yield "tracing", ("DJQ['tracing'] is on but the OpenTelemetry API is not installed: "
                          "pip install 'djq[otel]' (or opentelemetry-api)")
    lease, beat = conf.raw("worker_lease"), conf.raw("worker_heartbeat_interval")
    if _conforms(lease, float) and _conforms(beat, float) and 0 < lease <= beat:
        yield "worker_lease", (
            f"DJQ['worker_lease'] ({lease!r}) must be longer than "
            f"DJQ['worker_heartbeat_interval'] ({beat!r}), or every worker is dead")


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


conf = Settings()
