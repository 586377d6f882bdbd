"""``periodic-tasks/``: CRUD with inline schedules, "run now", the allowlist, and the
permissions every endpoint has."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from djq.beat.models import PeriodicRun, PeriodicTask
from djq.models import Task

from .conftest import API

URL = f"{API}periodic-tasks/"
RECORD = "tests.testapp.tasks.record"


@pytest.fixture(autouse=True)
def _allow(db: Any, allow: Callable[..., None]) -> None:
    allow(RECORD)


def test_create_read_update_delete(staff_api: APIClient) -> None:
    response = staff_api.post(URL, {
        "name": "report", "task": RECORD, "args": ["r"],
        "crontab": {"minute": "*/15", "day_of_week": "mon-fri", "timezone": "Europe/Paris"},
        "queue": "low", "priority": 2, "expires": 60}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["schedule"] == "every 15 minutes, Monday to Friday (Europe/Paris)"
    assert body["crontab"]["minute"] == "*/15" and body["interval"] is None
    assert len(body["upcoming"]) == 5 and body["next_run_at"] == body["upcoming"][0]
    assert (body["queue"], body["priority"], body["expires"], body["enabled"]) == (
        "low", 2, 60.0, True)
    pk = body["id"]

    listed = staff_api.get(URL).json()["results"]
    assert [p["name"] for p in listed] == ["report"]

    response = staff_api.patch(f"{URL}{pk}/", {"interval": {"every": 10, "period": "seconds"}},
                               format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["schedule"] == "every 10 seconds"
    assert response.json()["crontab"] is None
    pt = PeriodicTask.objects.get()
    assert pt.interval is not None and pt.crontab is None

    response = staff_api.patch(f"{URL}{pk}/", {"enabled": False}, format="json")
    assert response.json()["next_run_at"] is None and response.json()["upcoming"] == []
    assert staff_api.delete(f"{URL}{pk}/").status_code == 204
    assert not PeriodicTask.objects.exists()


@pytest.mark.parametrize("payload,field", [
    ({"task": "tests.testapp.tasks.add", "interval": {"every": 1, "period": "seconds"}},
     "task"),
    ({"task": RECORD}, "non_field_errors"),
    ({"task": RECORD, "interval": {"every": 1, "period": "seconds"},
      "clocked": {"clocked_time": "2030-01-01T00:00:00Z"}}, "non_field_errors"),
    ({"task": RECORD, "crontab": {"minute": "61"}}, "crontab"),
    ({"task": RECORD, "crontab": {"timezone": "Mars/Olympus"}}, "crontab"),
    ({"task": RECORD, "interval": {"every": 2**31 - 1, "period": "days"}}, "interval"),
    ({"task": RECORD, "interval": {"every": 0, "period": "seconds"}}, "interval"),
    ({"task": RECORD, "interval": {"every": 1, "period": "seconds"}, "args": ["a\u0000"]},
     "args"),
])
def test_bad_payloads_are_400_naming_the_field(staff_api: APIClient, payload: dict[str, Any],
                                               field: str) -> None:
    response = staff_api.post(URL, {"name": "p", **payload}, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not PeriodicTask.objects.exists()


def test_duplicate_name_is_400(staff_api: APIClient) -> None:
    payload = {"name": "p", "task": RECORD, "interval": {"every": 5, "period": "minutes"}}
    assert staff_api.post(URL, payload, format="json").status_code == 201
    response = staff_api.post(URL, payload, format="json")
    assert response.status_code == 400 and "name" in response.json()


def test_run_now(staff_api: APIClient, djq_settings: Callable[..., None]) -> None:
    pk = staff_api.post(URL, {"name": "p", "task": RECORD, "args": ["x"],
                              "interval": {"every": 1, "period": "hours"}},
                        format="json").json()["id"]
    response = staff_api.post(f"{URL}{pk}/run/")
    assert response.status_code == 202
    task = Task.objects.get()
    assert response.json() == {"id": str(task.id)}
    assert PeriodicRun.objects.get().task_id == task.id
    djq_settings(api_enqueue_allowlist=[])
    assert staff_api.post(f"{URL}{pk}/run/").status_code == 400
    assert Task.objects.count() == 1


def test_staff_only_by_default(user_api: APIClient, anon_api: APIClient) -> None:
    assert user_api.get(URL).status_code == 403
    assert anon_api.get(URL).status_code in (401, 403)
    assert user_api.post(URL, {"name": "p", "task": RECORD,
                               "interval": {"every": 1, "period": "hours"}},
                         format="json").status_code == 403
    assert not PeriodicTask.objects.exists()


def test_in_the_openapi_schema(staff_api: APIClient) -> None:
    schema = staff_api.get(f"{API}schema/?format=json").json()
    assert "/api/djq/periodic-tasks/" in schema["paths"]
    assert "/api/djq/periodic-tasks/{id}/run/" in schema["paths"]


def test_django_permissions_decide_who_may_do_what(django_user_model: Any) -> None:
    from tests.rows import grant

    staff = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    client = APIClient()
    client.force_authenticate(staff)
    assert client.get(URL).status_code == 403  # staff, but no djq permission
    viewer = grant(staff, "view_periodictask")
    client.force_authenticate(viewer)
    assert client.get(URL).status_code == 200
    body = {"name": "p", "task": RECORD, "interval": {"every": 10, "period": "seconds"}}
    response = client.post(URL, body, format="json")
    assert response.status_code == 403 and "add_periodictask" in response.json()["detail"]
    assert PeriodicTask.objects.count() == 0
    editor = grant(viewer, "add_periodictask")
    client.force_authenticate(editor)
    pk = client.post(URL, body, format="json").json()["id"]
    assert client.post(f"{URL}{pk}/run/").status_code == 403  # run now sends a task
    assert client.delete(f"{URL}{pk}/").status_code == 403
    assert Task.objects.count() == 0 and PeriodicTask.objects.count() == 1
