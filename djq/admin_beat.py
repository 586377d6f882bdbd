"""The admin for periodic tasks (issue 15): schedules in words with their next five fire
times, periodic tasks with enable/disable/"run now", and each task's recent runs.

Imported by :mod:`djq.admin`. Saving goes through the models, which recompute the next
fire time and wake the schedulers (NOTIFY), so an edit takes effect within a second.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from .beat.models import (
    ClockedSchedule, CrontabSchedule, IntervalSchedule, PeriodicRun, PeriodicTask,
)
from .beat.scheduler import run_now
from .exceptions import ScheduleError
from .models import Task
from .task import registry

if TYPE_CHECKING:
    _PeriodicTaskAdminBase = admin.ModelAdmin[PeriodicTask]
    _IntervalAdminBase = admin.ModelAdmin[IntervalSchedule]
    _CrontabAdminBase = admin.ModelAdmin[CrontabSchedule]
    _ClockedAdminBase = admin.ModelAdmin[ClockedSchedule]
    _PeriodicTaskFormBase = forms.ModelForm[PeriodicTask]
else:  # ModelAdmin is generic for the type checker only
    _PeriodicTaskAdminBase = _IntervalAdminBase = admin.ModelAdmin
    _CrontabAdminBase = _ClockedAdminBase = admin.ModelAdmin
    _PeriodicTaskFormBase = forms.ModelForm

UPCOMING = 5
RECENT_RUNS = 10


def _upcoming(schedule_of: Any) -> SafeString | str:
    """The next fire times, as a list (local time of the site)."""
    try:
        times = schedule_of().upcoming(UPCOMING, timezone.now())
    except ScheduleError as exc:
        return str(exc)
    if not times:
        return "never"
    return format_html("<ol>{}</ol>", format_html_join(
        "", "<li>{}</li>", ((timezone.localtime(t).strftime("%Y-%m-%d %H:%M:%S %Z"),)
                            for t in times)))


class _ScheduleAdmin:
    """Words and next fire times for the three schedule admins."""

    @admin.display(description="In words")
    def words(self, obj: Any) -> str:
        try:
            return str(obj.schedule.human())
        except ScheduleError as exc:
            return str(exc)

    @admin.display(description=f"Next {UPCOMING} fire times")
    def next_fire_times(self, obj: Any) -> SafeString | str:
        if obj is None or obj.pk is None:
            return "-"
        return _upcoming(lambda: obj.schedule)


@admin.register(IntervalSchedule)
class IntervalScheduleAdmin(_ScheduleAdmin, _IntervalAdminBase):
    list_display = ("__str__", "every", "period")
    readonly_fields = ("words", "next_fire_times")


@admin.register(CrontabSchedule)
class CrontabScheduleAdmin(_ScheduleAdmin, _CrontabAdminBase):
    list_display = ("words", "minute", "hour", "day_of_week", "day_of_month",
                    "month_of_year", "timezone")
    readonly_fields = ("words", "next_fire_times")


@admin.register(ClockedSchedule)
class ClockedScheduleAdmin(_ScheduleAdmin, _ClockedAdminBase):
    list_display = ("clocked_time", "words")
    readonly_fields = ("words",)


class PeriodicTaskForm(_PeriodicTaskFormBase):
    class Meta:
        model = PeriodicTask
        fields = "__all__"

    def clean_task(self) -> str:
        name = str(self.cleaned_data["task"]).strip()
        if name not in registry:
            raise forms.ValidationError(f"No task named {name!r} is registered.")
        return name


@admin.register(PeriodicTask)
class PeriodicTaskAdmin(_PeriodicTaskAdminBase):
    form = PeriodicTaskForm
    list_display = ("name", "enabled", "task", "words", "next_run_at", "last_run_at",
                    "total_run_count", "from_settings")
    list_filter = ("enabled", "one_off", "from_settings")
    search_fields = ("name", "task", "description")
    actions = ("enable_tasks", "disable_tasks", "run_tasks")
    readonly_fields = ("words", "next_fire_times", "next_run_at", "last_run_at",
                       "total_run_count", "from_settings", "recent_runs")
    fieldsets = (
        (None, {"fields": ("name", "task", "enabled", "description")}),
        ("Schedule (choose one)", {"fields": ("interval", "crontab", "clocked", "one_off",
                                               "words", "next_fire_times")}),
        ("Arguments", {"fields": ("args", "kwargs")}),
        ("Options", {"fields": ("queue", "priority", "expires")}),
        ("Runs", {"fields": ("next_run_at", "last_run_at", "total_run_count",
                             "from_settings", "recent_runs")}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[PeriodicTask]:
        return super().get_queryset(request).select_related("interval", "crontab", "clocked")

    @admin.display(description="Schedule")
    def words(self, obj: PeriodicTask) -> str:
        return obj.schedule_words()

    @admin.display(description=f"Next {UPCOMING} fire times")
    def next_fire_times(self, obj: PeriodicTask | None) -> SafeString | str:
        if obj is None or obj.pk is None or not obj.enabled:
            return "-"
        schedule = obj.schedule
        after = timezone.now()
        if obj.next_run_at is not None:  # from the stored next fire time, as beat will
            first = obj.next_run_at
            try:
                rest = schedule.upcoming(UPCOMING - 1, max(first, after), first)
            except ScheduleError as exc:
                return str(exc)
            if obj.one_off or obj.clocked_id is not None:
                rest = []
            times = [first, *rest]
            return format_html("<ol>{}</ol>", format_html_join(
                "", "<li>{}</li>", ((timezone.localtime(t).strftime(
                    "%Y-%m-%d %H:%M:%S %Z"),) for t in times)))
        return _upcoming(lambda: schedule)

    @admin.display(description=f"Last {RECENT_RUNS} runs")
    def recent_runs(self, obj: PeriodicTask | None) -> SafeString | str:
        if obj is None or obj.pk is None:
            return "-"
        runs = list(PeriodicRun.objects.filter(periodic_task=obj)
                    .order_by("-fire_time")[:RECENT_RUNS])
        if not runs:
            return "none yet"
        states = dict(Task.objects.filter(id__in=[r.task_id for r in runs])
                      .values_list("id", "state"))
        rows = ((timezone.localtime(r.fire_time).strftime("%Y-%m-%d %H:%M:%S"),
                 reverse("admin:djq_task_change", args=[r.task_id]), str(r.task_id),
                 states.get(r.task_id, "(result pruned)"), " (run now)" if r.manual else "")
                for r in runs)
        return format_html("<table><tr><th>Fire time</th><th>Task</th><th>State</th></tr>"
                           "{}</table>", format_html_join(
                               "", '<tr><td>{}</td><td><a href="{}">{}</a></td><td>{}{}</td>'
                               "</tr>", rows))

    # -- actions -------------------------------------------------------------------------
    @admin.action(description="Enable selected periodic tasks")
    def enable_tasks(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        self._set_enabled(request, queryset, True)

    @admin.action(description="Disable selected periodic tasks")
    def disable_tasks(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        self._set_enabled(request, queryset, False)

    def _set_enabled(self, request: HttpRequest, queryset: QuerySet[PeriodicTask],
                     enabled: bool) -> None:
        changed = 0
        for pt in queryset.select_related("interval", "crontab", "clocked"):
            if pt.enabled != enabled:
                pt.enabled = enabled
                pt.save()  # recomputes the next fire time and wakes the schedulers
                changed += 1
        self.message_user(request, f"{changed} periodic task(s) {'en' if enabled else 'dis'}"
                                   "abled.", messages.SUCCESS)

    @admin.action(description="Run selected periodic tasks now")
    def run_tasks(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        sent = []
        for pt in queryset:
            try:
                result = run_now(pt.pk)
            except Exception as exc:  # noqa: BLE001 - shown to the user, per task
                self.message_user(request, f"{pt.name}: not sent ({exc})", messages.ERROR)
                continue
            sent.append(f"{pt.name} ({result.id})")
        if sent:
            self.message_user(request, f"Sent: {', '.join(sent)}", messages.SUCCESS)
