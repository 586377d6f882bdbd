"""Rows of periodic tasks, in django-celery-beat's shape: interval, crontab and clocked
schedules, the periodic task that uses one of them, and one row per fire time enqueued.

A periodic task's ``next_run_at`` is the next fire time; schedulers read the due rows
through the partial index ``djq_periodic_due``, so an idle round costs one index probe
however many schedules are stored. Saving a task or a schedule recomputes ``next_run_at``
when its timing changed and wakes the schedulers (NOTIFY) when the transaction commits.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from .. import schedules
from ..conf import conf
from ..exceptions import ScheduleError


MAX_EXPIRES = 10 * 365 * 86400.0


def json_problem(value: Any) -> str | None:
    """Why ``value`` cannot be stored in a jsonb column, or None."""
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return f"not plain JSON ({exc})"
    if "\\u0000" in text:
        return "PostgreSQL cannot store the NUL character (\\u0000) in JSON"
    return None


def _notify_schedulers(using: str) -> None:
    from . import sql

    transaction.on_commit(lambda: sql.wake_schedulers(using), using=using)


class IntervalSchedule(models.Model):
    """Every ``every`` ``period``s (django-celery-beat's fields)."""

    DAYS, HOURS, MINUTES, SECONDS, MICROSECONDS = (
        "days", "hours", "minutes", "seconds", "microseconds")
    PERIOD_CHOICES = [(DAYS, "Days"), (HOURS, "Hours"), (MINUTES, "Minutes"),
                      (SECONDS, "Seconds"), (MICROSECONDS, "Microseconds")]

    every = models.PositiveIntegerField()
    period = models.CharField(max_length=24, choices=PERIOD_CHOICES, default=SECONDS)

    class Meta:
        db_table = "djq_interval_schedule"
        ordering = ["period", "every"]
        constraints = [models.CheckConstraint(condition=Q(every__gt=0),
                                              name="djq_interval_positive")]

    @property
    def schedule(self) -> schedules.schedule:
        return schedules.schedule(datetime.timedelta(**{self.period: self.every}))

    def clean(self) -> None:
        try:
            self.schedule.first_fire(timezone.now())
        except (OverflowError, ValueError, TypeError) as exc:
            raise ValidationError({"every": f"too long an interval ({exc})"}) from exc

    @classmethod
    def from_schedule(cls, value: schedules.schedule) -> tuple[int, str]:
        """(every, period) of an interval: whole seconds, else microseconds."""
        micro = value.run_every // datetime.timedelta(microseconds=1)
        if micro % 1_000_000 == 0:
            return micro // 1_000_000, cls.SECONDS
        return micro, cls.MICROSECONDS

    def __str__(self) -> str:
        return self.schedule.human()

    def save(self, *args: Any, **kwargs: Any) -> None:
        super().save(*args, **kwargs)
        reschedule(PeriodicTask.objects.using(self._state.db).filter(interval=self))


class CrontabSchedule(models.Model):
    """Celery's crontab fields as text, read in ``timezone`` (blank: beat_timezone)."""

    minute = models.CharField(max_length=240, default="*")
    hour = models.CharField(max_length=96, default="*")
    day_of_week = models.CharField(max_length=64, default="*")
    day_of_month = models.CharField(max_length=124, default="*")
    month_of_year = models.CharField(max_length=64, default="*")
    timezone = models.CharField(max_length=63, blank=True, default="",
                                help_text="Blank: DJQ['beat_timezone'] (or TIME_ZONE)")

    class Meta:
        db_table = "djq_crontab_schedule"
        ordering = ["month_of_year", "day_of_month", "day_of_week", "hour", "minute"]

    @property
    def schedule(self) -> schedules.crontab:
        return schedules.crontab(self.minute, self.hour, self.day_of_week, self.day_of_month,
                                 self.month_of_year, tz=self.timezone or None)

    def clean(self) -> None:
        try:
            self.schedule.first_fire(timezone.now())  # parses every field, and the zone
        except ScheduleError as exc:
            text = str(exc)
            field = next((f for f in ("day_of_month", "month_of_year", "day_of_week",
                                      "minute", "hour") if f"crontab {f}:" in text), None)
            if "tz:" in text:
                field = "timezone"
            raise ValidationError({field: text} if field else text) from exc

    def __str__(self) -> str:
        return f"{self.minute} {self.hour} {self.day_of_month} {self.month_of_year} " \
               f"{self.day_of_week} ({self.schedule.human()})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        super().save(*args, **kwargs)
        reschedule(PeriodicTask.objects.using(self._state.db).filter(crontab=self))


class ClockedSchedule(models.Model):
    """Once, at ``clocked_time``."""

    clocked_time = models.DateTimeField()

    class Meta:
        db_table = "djq_clocked_schedule"
        ordering = ["clocked_time"]

    @property
    def schedule(self) -> schedules.clocked:
        return schedules.clocked(self.clocked_time)

    def __str__(self) -> str:
        return self.schedule.human()

    def save(self, *args: Any, **kwargs: Any) -> None:
        super().save(*args, **kwargs)
        reschedule(PeriodicTask.objects.using(self._state.db).filter(clocked=self))


class PeriodicTask(models.Model):
    """A task sent on a schedule (exactly one of interval, crontab, clocked)."""

    name = models.CharField(max_length=200, unique=True)
    task = models.CharField(max_length=255, help_text="Registered task name")
    interval = models.ForeignKey(IntervalSchedule, on_delete=models.CASCADE, null=True,
                                 blank=True)
    crontab = models.ForeignKey(CrontabSchedule, on_delete=models.CASCADE, null=True,
                                blank=True)
    clocked = models.ForeignKey(ClockedSchedule, on_delete=models.CASCADE, null=True,
                                blank=True)
    args = models.JSONField(default=list, blank=True, help_text="JSON list")
    kwargs = models.JSONField(default=dict, blank=True, help_text="JSON object")
    queue = models.CharField(max_length=200, null=True, blank=True,
                             help_text="Blank: the task's queue")
    priority = models.IntegerField(null=True, blank=True, help_text="Blank: the task's")
    expires = models.FloatField(null=True, blank=True,
                                help_text="Seconds after its fire time a run expires")
    enabled = models.BooleanField(default=True)
    one_off = models.BooleanField(default=False, help_text="Fire once, then disable")
    description = models.TextField(blank=True, default="")
    from_settings = models.BooleanField(
        default=False, editable=False,
        help_text="Declared in DJQ['beat_schedule']: removed when it leaves the settings")
    last_run_at = models.DateTimeField(null=True, blank=True, editable=False)
    total_run_count = models.PositiveIntegerField(default=0, editable=False)
    next_run_at = models.DateTimeField(null=True, blank=True, editable=False)
    date_changed = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "djq_periodic_task"
        ordering = ["name"]
        indexes = [
            # The scheduler's only read on an idle round: the due rows, and the next one.
            models.Index(fields=["next_run_at"], name="djq_periodic_due",
                         condition=Q(enabled=True)),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(Q(interval__isnull=False, crontab__isnull=True, clocked__isnull=True)
                           | Q(interval__isnull=True, crontab__isnull=False,
                               clocked__isnull=True)
                           | Q(interval__isnull=True, crontab__isnull=True,
                               clocked__isnull=False)),
                name="djq_periodic_one_schedule",
                violation_error_message="Choose exactly one of interval, crontab and clocked.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name}: {self.schedule_words()}"

    @property
    def schedule(self) -> schedules.BaseSchedule:
        if self.interval_id is not None and self.interval is not None:
            return self.interval.schedule
        if self.crontab_id is not None and self.crontab is not None:
            return self.crontab.schedule
        if self.clocked_id is not None and self.clocked is not None:
            return self.clocked.schedule
        raise ScheduleError(f"Periodic task {self.name!r} has no schedule")

    def schedule_words(self) -> str:
        try:
            return self.schedule.human()
        except ScheduleError as exc:
            return str(exc)

    def clean(self) -> None:
        chosen = [f for f in ("interval", "crontab", "clocked")
                  if getattr(self, f"{f}_id") is not None]
        if len(chosen) != 1:
            raise ValidationError("Choose exactly one of interval, crontab and clocked.")
        if not isinstance(self.args, list):
            raise ValidationError({"args": "args must be a JSON list"})
        if not isinstance(self.kwargs, dict):
            raise ValidationError({"kwargs": "kwargs must be a JSON object"})
        for key in ("args", "kwargs"):
            problem = json_problem(getattr(self, key))
            if problem:
                raise ValidationError({key: problem})
        if self.expires is not None and not 0 < self.expires <= MAX_EXPIRES:
            raise ValidationError({"expires": "expires must be positive seconds, at most "
                                              f"{MAX_EXPIRES:.0f} (ten years)"})

    def first_run_at(self, now: datetime.datetime | None = None) -> datetime.datetime | None:
        """When a schedule that starts now first fires (a clocked one that already ran:
        never)."""
        if self.clocked_id is not None and self.total_run_count:
            return None
        return self.schedule.first_fire(now or timezone.now())

    def save(self, *args: Any, **kwargs: Any) -> None:
        using = kwargs.get("using") or self._state.db or conf.database
        timing = (self.interval_id, self.crontab_id, self.clocked_id, self.enabled)
        before = None
        if self.pk is not None:
            before = (PeriodicTask.objects.using(using).filter(pk=self.pk)
                      .values_list("interval_id", "crontab_id", "clocked_id", "enabled")
                      .first())
        # A new schedule, or one whose timing changed, starts again from now; other edits
        # (arguments, queue...) keep the next fire time.
        if not self.enabled:
            self.next_run_at = None
        elif before != timing or self.next_run_at is None:
            self.next_run_at = self.first_run_at()
        if "update_fields" in kwargs and kwargs["update_fields"] is not None:
            kwargs["update_fields"] = {*kwargs["update_fields"], "next_run_at"}
        super().save(*args, **kwargs)
        _notify_schedulers(using)


def reschedule(tasks: models.QuerySet[PeriodicTask]) -> int:
    """Recompute the next fire time of ``tasks`` (their schedule changed) from now."""
    count = 0
    for task in tasks.select_related("interval", "crontab", "clocked"):
        task.next_run_at = None
        task.save(update_fields=["next_run_at"])
        count += 1
    return count


class PeriodicRun(models.Model):
    """One fire time of a periodic task, enqueued as ``task_id``. The unique pair
    (periodic task, fire time) is what makes each fire time enqueued once, whichever
    scheduler gets there first."""

    id = models.BigAutoField(primary_key=True)
    periodic_task = models.ForeignKey(PeriodicTask, on_delete=models.CASCADE,
                                      related_name="runs", db_constraint=True)
    fire_time = models.DateTimeField()
    task_id = models.UUIDField()
    date_enqueued = models.DateTimeField()
    manual = models.BooleanField(default=False, help_text="Sent with 'run now'")

    class Meta:
        db_table = "djq_periodic_run"
        ordering = ["-fire_time"]
        constraints = [
            models.UniqueConstraint(fields=["periodic_task", "fire_time"],
                                    name="djq_periodic_run_once"),
        ]
        indexes = [models.Index(fields=["fire_time"], name="djq_periodic_run_fired")]

    def __str__(self) -> str:
        return f"{self.periodic_task_id} @ {self.fire_time.isoformat()} -> {self.task_id}"
