"""``DJQ["beat_schedule"]`` (Celery's format): checked entry by entry, and synchronised
into the database when a scheduler starts. Entries are added, changed, and removed when
they leave the settings; rows created in the database (the admin, the API) are left alone.

```python
DJQ = {"beat_schedule": {
    "report": {"task": "app.tasks.report", "schedule": crontab(minute="*/15"),
               "args": (1,), "kwargs": {}, "options": {"queue": "low", "expires": 600}},
}}
```
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from collections.abc import Mapping
from typing import Any

from django.db import transaction

from .. import schedules
from ..conf import conf
from ..exceptions import ImproperlyConfigured, ScheduleError

ENTRY_KEYS = {"task", "schedule", "args", "kwargs", "options", "relative", "description",
              "enabled", "one_off"}
OPTION_KEYS = {"queue", "priority", "expires"}


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    """One checked ``beat_schedule`` entry."""

    name: str
    task: str
    schedule: schedules.BaseSchedule
    args: list[Any]
    kwargs: dict[str, Any]
    queue: str | None
    priority: int | None
    expires: float | None
    description: str
    enabled: bool
    one_off: bool


def _bad(name: str, message: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"DJQ['beat_schedule'][{name!r}]: {message}")


def check_entry(name: Any, value: Any) -> Entry:
    """An entry as djq honours it, or :class:`ImproperlyConfigured` naming the entry and
    what is wrong with it."""
    if not isinstance(name, str) or not name or len(name) > 200:
        raise _bad(str(name), "the name must be a non-empty string of at most 200 characters")
    if not isinstance(value, Mapping):
        raise _bad(name, f"expected a dict, not {type(value).__name__}")
    unknown = sorted(set(value) - ENTRY_KEYS)
    if unknown:
        raise _bad(name, f"unknown key(s) {', '.join(unknown)}")
    task = value.get("task")
    if not isinstance(task, str) or not task:
        raise _bad(name, "'task' must be a task name")
    if "schedule" not in value:
        raise _bad(name, "'schedule' is missing")
    try:
        sched = schedules.maybe_schedule(value["schedule"])
    except ScheduleError as exc:
        raise _bad(name, str(exc)) from exc
    if value.get("relative"):
        raise _bad(name, "'relative' is not supported (intervals keep a fixed grid)")
    args = value.get("args") or ()
    kwargs = value.get("kwargs") or {}
    if not isinstance(args, (list, tuple)):
        raise _bad(name, "'args' must be a list or a tuple")
    if not isinstance(kwargs, Mapping):
        raise _bad(name, "'kwargs' must be a dict")
    try:  # stored as a JSON column: refused now, not at each tick
        args, kwargs = json.loads(json.dumps([list(args), dict(kwargs)]))
    except (TypeError, ValueError) as exc:
        raise _bad(name, f"args and kwargs must be plain JSON values ({exc})") from exc
    options = value.get("options") or {}
    if not isinstance(options, Mapping):
        raise _bad(name, "'options' must be a dict")
    unknown = sorted(set(options) - OPTION_KEYS)
    if unknown:
        raise _bad(name, f"option(s) {', '.join(unknown)} not supported for periodic tasks "
                         f"(supported: {', '.join(sorted(OPTION_KEYS))})")
    queue = options.get("queue")
    if queue is not None and (not isinstance(queue, str) or not queue):
        raise _bad(name, "option 'queue' must be a non-empty string")
    priority = options.get("priority")
    if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int)):
        raise _bad(name, "option 'priority' must be an integer")
    expires = options.get("expires")
    if isinstance(expires, datetime.timedelta):
        expires = expires.total_seconds()
    from .models import MAX_EXPIRES

    if expires is not None and (isinstance(expires, bool)
                                or not isinstance(expires, (int, float))
                                or not 0 < expires <= MAX_EXPIRES):
        raise _bad(name, "option 'expires' must be positive seconds (at most ten years) "
                         "or a timedelta")
    return Entry(name=name, task=task, schedule=sched, args=list(args), kwargs=dict(kwargs),
                 queue=queue, priority=priority,
                 expires=None if expires is None else float(expires),
                 description=str(value.get("description") or ""),
                 enabled=bool(value.get("enabled", True)), one_off=bool(value.get("one_off")))


def entries() -> list[Entry]:
    """Every entry of ``beat_schedule``, checked."""
    setting = conf.beat_schedule or {}
    if not isinstance(setting, Mapping):
        raise ImproperlyConfigured("DJQ['beat_schedule'] must be a dict of entries")
    return [check_entry(name, value) for name, value in setting.items()]


def _schedule_row(sched: schedules.BaseSchedule, using: str) -> dict[str, Any]:
    from .models import ClockedSchedule, CrontabSchedule, IntervalSchedule

    if isinstance(sched, schedules.crontab):
        fields = sched.fields()
        row_c = CrontabSchedule.objects.using(using).filter(
            **fields, timezone=sched.tz_name or "").first()
        if row_c is None:
            row_c = CrontabSchedule(**fields, timezone=sched.tz_name or "")
            row_c.save(using=using)
        return {"crontab": row_c, "interval": None, "clocked": None}
    if isinstance(sched, schedules.clocked):
        row_k, _ = ClockedSchedule.objects.using(using).get_or_create(
            clocked_time=sched.when)
        return {"crontab": None, "interval": None, "clocked": row_k}
    if isinstance(sched, schedules.schedule):
        every, period = IntervalSchedule.from_schedule(sched)
        row_i, _ = IntervalSchedule.objects.using(using).get_or_create(every=every,
                                                                       period=period)
        return {"crontab": None, "interval": row_i, "clocked": None}
    raise ScheduleError(f"unsupported schedule {sched!r}")


@dataclasses.dataclass
class SyncReport:
    added: list[str] = dataclasses.field(default_factory=list)
    changed: list[str] = dataclasses.field(default_factory=list)
    removed: list[str] = dataclasses.field(default_factory=list)


def sync_beat_schedule(using: str | None = None) -> SyncReport:
    """Make the settings-declared periodic tasks match ``beat_schedule``, in one
    transaction (schedulers starting together take turns)."""
    from . import sql
    from .models import PeriodicTask

    alias = using or conf.database
    wanted = {e.name: e for e in entries()}  # raises before anything is written
    report = SyncReport()
    with transaction.atomic(using=alias):
        sql.lock_for_sync(alias)
        existing = {pt.name: pt for pt in PeriodicTask.objects.using(alias).filter(
            name__in=list(wanted)).select_related("interval", "crontab", "clocked")}
        for name, entry in wanted.items():
            values: dict[str, Any] = {
                "task": entry.task, "args": entry.args, "kwargs": entry.kwargs,
                "queue": entry.queue, "priority": entry.priority, "expires": entry.expires,
                "description": entry.description, "enabled": entry.enabled,
                "one_off": entry.one_off, "from_settings": True,
            }
            pt = existing.get(name)
            if pt is None:
                pt = PeriodicTask(name=name, **values, **_schedule_row(entry.schedule, alias))
                pt.save(using=alias)
                report.added.append(name)
                continue
            if pt.total_run_count and (entry.one_off or isinstance(entry.schedule,
                                                                   schedules.clocked)):
                del values["enabled"]  # a spent one-off stays disabled across restarts
            same_schedule = _same_schedule(pt, entry.schedule)
            if same_schedule and all(getattr(pt, k) == v for k, v in values.items()):
                continue
            for key, value in values.items():
                setattr(pt, key, value)
            if not same_schedule:
                for key, row in _schedule_row(entry.schedule, alias).items():
                    setattr(pt, key, row)
            pt.save(using=alias)
            report.changed.append(name)
        gone = PeriodicTask.objects.using(alias).filter(from_settings=True).exclude(
            name__in=list(wanted))
        report.removed = sorted(gone.values_list("name", flat=True))
        if report.removed:
            gone.delete()
            sql.wake_schedulers(alias)
    return report


def _same_schedule(pt: Any, sched: schedules.BaseSchedule) -> bool:
    try:
        return bool(pt.schedule == sched)
    except ScheduleError:
        return False
