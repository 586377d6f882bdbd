"""The live monitor's periodic-tasks page (issue 15): the upcoming runs, soonest first,
and the last run of each schedule with its state. Server-rendered, refreshed every few
seconds; staff only like the rest of the monitor."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from .beat.models import PeriodicRun, PeriodicTask
from .conf import conf
from .models import Task
from . import permissions
from .views import _links, _refuse, staff_only

#: Rows on the page: the soonest upcoming runs (read through the djq_periodic_due index).
LIMIT = 50


def _admin_url(pk: int) -> str | None:
    try:
        return reverse("admin:djq_periodictask_change", args=[pk])
    except NoReverseMatch:
        return None


@staff_only
def periodic(request: HttpRequest) -> HttpResponse:
    if not permissions.allowed(request.user, permissions.VIEW_SCHEDULES):
        return _refuse(request, permissions.needed(permissions.VIEW_SCHEDULES))
    db = conf.database
    now = timezone.now()
    upcoming = list(PeriodicTask.objects.using(db).filter(enabled=True,
                                                          next_run_at__isnull=False)
                    .select_related("interval", "crontab", "clocked")
                    .order_by("next_run_at")[:LIMIT])
    ids = [pt.pk for pt in upcoming]
    last_runs = {r.periodic_task_id: r for r in PeriodicRun.objects.using(db)
                 .filter(periodic_task_id__in=ids)
                 .order_by("periodic_task_id", "-fire_time").distinct("periodic_task_id")}
    states = dict(Task.objects.using(db).filter(
        id__in=[r.task_id for r in last_runs.values()]).values_list("id", "state"))
    rows: list[dict[str, Any]] = []
    for pt in upcoming:
        run = last_runs.get(pt.pk)
        assert pt.next_run_at is not None
        rows.append({
            "pt": pt, "words": pt.schedule_words(),
            "in_seconds": max(0.0, (pt.next_run_at - now).total_seconds()),
            "run": run, "state": states.get(run.task_id) if run else None,
            "admin_url": _admin_url(pt.pk),
        })
    counts = {
        "enabled": PeriodicTask.objects.using(db).filter(enabled=True).count(),
        "disabled": PeriodicTask.objects.using(db).filter(enabled=False).count(),
    }
    return render(request, "djq/periodic.html", {"rows": rows, "counts": counts,
                                                 "limit": LIMIT, "links": _links()})
