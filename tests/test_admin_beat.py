"""The admin of periodic tasks: schedules in words with their next five fire times,
checked forms, enable/disable and "run now", and a task's recent runs."""

from __future__ import annotations

import json
import re
from typing import Any

from django.test import Client

from djq.beat.models import CrontabSchedule, IntervalSchedule, PeriodicRun, PeriodicTask
from djq.models import Task

RECORD = "tests.testapp.tasks.record"


def test_crontab_form_names_the_bad_field(admin_client: Client) -> None:
    response = admin_client.post("/admin/djq/crontabschedule/add/", {
        "minute": "61", "hour": "*", "day_of_week": "*", "day_of_month": "*",
        "month_of_year": "*", "timezone": ""})
    assert response.status_code == 200
    assert "crontab minute: 61 is out of range 0-59" in response.content.decode()
    assert not CrontabSchedule.objects.exists()


def test_crontab_change_page_shows_words_and_next_five(admin_client: Client) -> None:
    response = admin_client.post("/admin/djq/crontabschedule/add/", {
        "minute": "*/15", "hour": "*", "day_of_week": "mon-fri", "day_of_month": "*",
        "month_of_year": "*", "timezone": "Europe/Paris"})
    assert response.status_code == 302
    cron = CrontabSchedule.objects.get()
    html = admin_client.get(f"/admin/djq/crontabschedule/{cron.pk}/change/").content.decode()
    assert "every 15 minutes, Monday to Friday (Europe/Paris)" in html
    listed = re.search(r"<ol>(.*?)</ol>", html, re.S)
    assert listed is not None and listed.group(1).count("<li>") == 5


def test_periodic_task_form_checks_task_and_schedule(admin_client: Client) -> None:
    interval = IntervalSchedule.objects.create(every=10, period="seconds")
    cron = CrontabSchedule.objects.create(minute="0")
    base = {"name": "p", "task": RECORD, "args": '["x"]', "kwargs": "{}", "enabled": "on",
            "description": ""}
    response = admin_client.post("/admin/djq/periodictask/add/",
                                 {**base, "task": "no.such.task", "interval": interval.pk})
    assert "No task named &#x27;no.such.task&#x27; is registered." in response.content.decode()
    response = admin_client.post("/admin/djq/periodictask/add/",
                                 {**base, "interval": interval.pk, "crontab": cron.pk})
    assert "Choose exactly one of interval, crontab and clocked." in response.content.decode()
    response = admin_client.post("/admin/djq/periodictask/add/", {**base, "args": '{"a": 1}',
                                                                  "interval": interval.pk})
    assert "args must be a JSON list" in response.content.decode()
    assert not PeriodicTask.objects.exists()
    response = admin_client.post("/admin/djq/periodictask/add/", {**base, "crontab": cron.pk})
    assert response.status_code == 302
    pt = PeriodicTask.objects.get()
    assert pt.next_run_at is not None and pt.next_run_at.minute == 0
    html = admin_client.get("/admin/djq/periodictask/").content.decode()
    assert "every hour" in html


def test_run_now_enable_disable_and_recent_runs(admin_client: Client) -> None:
    interval = IntervalSchedule.objects.create(every=3600, period="seconds")
    pt = PeriodicTask.objects.create(name="hourly", task=RECORD, args=["h"],
                                     interval=interval)
    response = admin_client.post("/admin/djq/periodictask/", {
        "action": "run_tasks", "_selected_action": [pt.pk]}, follow=True)
    assert "Sent: hourly" in response.content.decode()
    task = Task.objects.get()
    assert json.loads(task.options)["headers"]["periodic_task_name"] == "hourly"
    run = PeriodicRun.objects.get()
    assert run.task_id == task.id and run.manual
    html = admin_client.get(f"/admin/djq/periodictask/{pt.pk}/change/").content.decode()
    assert f"/admin/djq/task/{task.id}/change/" in html and "PENDING" in html
    assert "every hour" in html and html.count("<li>") >= 5  # next five fire times

    admin_client.post("/admin/djq/periodictask/", {"action": "disable_tasks",
                                                   "_selected_action": [pt.pk]})
    pt.refresh_from_db()
    assert (pt.enabled, pt.next_run_at) == (False, None)
    admin_client.post("/admin/djq/periodictask/", {"action": "enable_tasks",
                                                   "_selected_action": [pt.pk]})
    pt.refresh_from_db()
    assert pt.enabled and pt.next_run_at is not None


def test_settings_rows_are_marked(admin_client: Client, settings: Any) -> None:
    from djq.beat.sync import sync_beat_schedule

    settings.DJQ = {"beat_schedule": {"s": {"task": RECORD, "schedule": 60}}}
    sync_beat_schedule()
    html = admin_client.get("/admin/djq/periodictask/?from_settings__exact=1").content.decode()
    assert ">s<" in html and "every minute" in html
