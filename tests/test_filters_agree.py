"""The admin and the monitor (through the API it shares) search and filter alike: text
in names and arguments, running tasks whatever their state, custom states, and choices
of names and queues taken from the data without a DISTINCT over the table."""

from __future__ import annotations

import datetime
import re
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from djq import cluster, states
from tests.rows import make_task, make_worker

pytestmark = pytest.mark.django_db


def admin_ids(client: Client, **params: Any) -> set[str]:
    html = client.get(reverse("admin:djq_task_changelist"), params).content.decode()
    return set(re.findall(r"/admin/djq/task/([0-9a-f-]{36})/change/", html))


def monitor_ids(client: Client, **params: Any) -> set[str]:
    response = client.get("/djq/data/tasks/", params)
    assert response.status_code == 200, response.content
    return {t["id"] for t in response.json()["results"]}


def test_search_and_filters_agree(admin_client: Client) -> None:
    needle = make_task(args=["invoice-4711", 1])
    named = make_task(name="tests.testapp.tasks.echo", args=[1])
    progress = make_task("PROGRESS", name="tests.testapp.tasks.progress",
                         result={"progress": 10})
    claimed = make_task(states.RECEIVED)
    started = make_task(states.STARTED)
    make_task(states.PENDING)
    make_task(states.SUCCESS)
    for params, expected in (
            ({"q": "invoice-47"}, {needle}),
            ({"q": "tasks.echo"}, {named}),
            ({"state": "running"}, {progress, claimed, started}),
            ({"state": "PROGRESS"}, {progress})):
        ids = {str(t.id) for t in expected}
        assert admin_ids(admin_client, **params) == ids, params
        api = {("search" if k == "q" else k): v for k, v in params.items()}
        if api.get("state") == "running":
            api = {"running": "true"}
        assert monitor_ids(admin_client, **api) == ids, params
    assert str(needle.id) not in monitor_ids(admin_client, running="true")
    assert str(progress.id) not in monitor_ids(admin_client, running="false")


def test_choices_come_from_the_data(admin_client: Client) -> None:
    make_worker("w1@test", queues="default,reports")
    make_task(states.PENDING, queue="orphans", name="gone.from.the.code")  # stuck, unknown
    make_task("PROGRESS", name="tests.testapp.tasks.progress")
    with CaptureQueriesContext(connection) as queries:
        html = admin_client.get(reverse("admin:djq_task_changelist")).content.decode()
    assert "?queue=orphans" in html and "?queue=reports" in html
    assert "?name=gone.from.the.code" in html and "?name=tests.testapp.tasks.add" in html
    assert "?state=PROGRESS" in html and "?state=running" in html
    distinct = [q["sql"] for q in queries if "DISTINCT" in q["sql"].upper()]
    # Only over unfinished rows (the status indexes), never the whole table.
    assert distinct and all('"status" IN' in sql for sql in distinct), distinct
    monitor = admin_client.get("/djq/").content.decode()
    for option in ("<option>orphans</option>", "<option>gone.from.the.code</option>",
                   "<option>PROGRESS</option>", '<option value="running">'):
        assert option in monitor, option


def test_seen_values_reads_a_bounded_number_of_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(5):
        make_task(states.SUCCESS, queue=f"old-{i}")
    make_task(states.PENDING, queue="waiting-q")
    make_task("PROGRESS", queue="busy-q", created=timezone.now() - datetime.timedelta(days=9))
    monkeypatch.setattr(cluster, "RECENT_ROWS", 2)
    with CaptureQueriesContext(connection) as queries:
        seen = cluster.seen_values()
    assert len(queries) == 2
    # The unfinished ones (however old), and the two newest rows: not old-0.
    assert seen["queue"] == {"waiting-q", "busy-q", "old-4"}
    assert seen["state"] == {states.PENDING, "PROGRESS", states.SUCCESS}
