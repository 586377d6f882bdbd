"""The monitor's periodic-tasks page: upcoming runs soonest first, each schedule's last
run with its state; staff only."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.test import Client
from django.utils import timezone

from djq.beat.models import IntervalSchedule, PeriodicTask
from djq.beat.scheduler import run_now
from djq.models import Task

RECORD = "tests.testapp.tasks.record"


def test_upcoming_runs_and_last_run_state(admin_client: Client, db: Any) -> None:
    interval = IntervalSchedule.objects.create(every=3600, period="seconds")
    later = PeriodicTask.objects.create(name="later", task=RECORD, args=["l"],
                                        interval=interval)
    sooner = PeriodicTask.objects.create(name="sooner", task=RECORD, args=["s"],
                                         interval=interval)
    PeriodicTask.objects.filter(pk=sooner.pk).update(
        next_run_at=timezone.now() + dt.timedelta(minutes=5))
    PeriodicTask.objects.create(name="off", task=RECORD, args=["o"], interval=interval,
                                enabled=False)
    result = run_now(later.pk)
    Task.objects.filter(id=result.id).update(state="SUCCESS")
    html = admin_client.get("/djq/periodic/").content.decode()
    assert html.index(">sooner<") < html.index(">later<")
    assert ">off<" not in html
    assert "2 enabled, 1 disabled" in html
    assert f"/djq/tasks/{result.id}/" in html and 'data-state="SUCCESS"' in html
    assert "every hour" in html
    assert '<meta http-equiv="refresh" content="5">' in html


def test_staff_only(client: Client, django_user_model: Any) -> None:
    assert client.get("/djq/periodic/").status_code == 302
    user = django_user_model.objects.create_user("alice", password="pw")
    client.force_login(user)
    assert client.get("/djq/periodic/").status_code == 403
