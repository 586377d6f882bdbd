"""The monitor's pages and JSON endpoints without a browser (tests/test_monitor.py drives
them in Chromium): who may see them, and the chart data."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from djq import states
from tests.rows import ALL_DJQ_PERMISSIONS, grant, make_task

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client: Client, django_user_model: Any) -> Client:
    user = django_user_model.objects.create_user("s", password="pw", is_staff=True)
    client.force_login(grant(user, *ALL_DJQ_PERMISSIONS))
    return client


def test_anonymous_users_are_sent_to_sign_in(client: Client) -> None:
    response = client.get("/djq/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/djq/"
    assert client.get("/djq/data/tasks/").status_code == 403


def test_non_staff_users_are_refused(client: Client, django_user_model: Any,
                                     settings: Any) -> None:
    # Not staff, though allowed to view tasks: the monitor stays staff-only.
    client.force_login(grant(django_user_model.objects.create_user("u", password="pw"),
                             "view_task", "view_worker"))
    task = make_task()
    for url in ("/djq/", f"/djq/tasks/{task.id}/"):
        response = client.get(url)
        assert response.status_code == 403 and b"Staff only" in response.content
    # The monitor's data stays staff-only even when the public API is opened up.
    settings.DJQ = {**settings.DJQ, "api_permission_classes": []}
    for url in ("/djq/data/tasks/", "/djq/data/workers/", "/djq/data/queues/",
                "/djq/data/stats/", "/djq/data/charts/", f"/djq/data/tasks/{task.id}/"):
        assert client.get(url).status_code == 403, url
    assert client.get("/api/djq/tasks/").status_code == 200


def test_staff_pages(staff: Client, settings: Any) -> None:
    settings.DJQ = {**settings.DJQ, "api_enqueue_allowlist": ["tests.testapp.tasks.add",
                                                              "not.registered"]}
    html = staff.get("/djq/").content.decode()
    assert 'data-tasks-url="/djq/data/tasks/"' in html
    assert '<option>tests.testapp.tasks.add</option>' in html
    assert "not.registered" not in html  # only allow-listed names that exist are offered
    assert '/static/djq/monitor.js' in html and '/static/djq/monitor.css' in html
    assert "cdn" not in html.lower() and "https://" not in html
    task = make_task("PROGRESS", result={"progress": 30})
    html = staff.get(f"/djq/tasks/{task.id}/").content.decode()
    assert f'data-revoke-url="/djq/data/tasks/{task.id}/revoke/"' in html
    assert staff.get(f"/djq/tasks/{task.id.hex[:8]}/").status_code == 404
    import uuid
    assert staff.get(f"/djq/tasks/{uuid.uuid4()}/").status_code == 404


def test_chart_data(staff: Client) -> None:
    now = timezone.now()
    for minutes_ago, state in ((1, states.SUCCESS), (1, states.FAILURE), (3, states.SUCCESS),
                               (90, states.SUCCESS)):
        when = now - datetime.timedelta(minutes=minutes_ago)
        make_task(state, created=when - datetime.timedelta(seconds=1), date_done=when)
    body = staff.get("/djq/data/charts/?minutes=10").json()
    assert body["minutes"] == 10 and len(body["series"]) == 10
    series = body["series"]
    assert sum(p["processed"] for p in series) == 3
    assert sum(p["failed"] for p in series) == 1
    assert max(p["failure_rate"] or 0 for p in series) == 0.5
    # A minute in which nothing finished has no failure rate (a gap), not 0%.
    assert [p["failure_rate"] for p in series].count(None) == 8
    assert all(set(p) == {"minute", "enqueued", "processed", "succeeded", "failed",
                          "failure_rate"} for p in series)
    assert staff.get("/djq/data/charts/?minutes=banana").json()["minutes"] == 60
    assert staff.get("/djq/data/charts/?minutes=999999").json()["minutes"] == 1440
