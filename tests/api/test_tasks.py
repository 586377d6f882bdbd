"""``tasks/``: list (filters, search, cursor pagination), detail (cheap polling), enqueue
(allow-list, validation, nothing stored on refusal), retry and revoke."""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from djq import broker, signals, states
from djq.models import Task
from tests.api.conftest import API
from tests.rows import ALL_DJQ_PERMISSIONS, grant, make_task

pytestmark = pytest.mark.django_db

ADD = "tests.testapp.tasks.add"
ECHO = "tests.testapp.tasks.echo"
SLEEP = "tests.testapp.tasks.sleep"


def ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return [t["id"] for t in response.json()["results"]]


# -- list ---------------------------------------------------------------------------------

def test_list_newest_first_with_fields(staff_api: APIClient) -> None:
    base = timezone.now() - datetime.timedelta(minutes=5)
    older = make_task(states.SUCCESS, created=base)
    newer = make_task(states.FAILURE, created=base + datetime.timedelta(seconds=1))
    body = staff_api.get(f"{API}tasks/").json()
    assert [t["id"] for t in body["results"]] == [str(newer.id), str(older.id)]
    assert set(body) == {"next", "previous", "results"}
    first, second = body["results"]
    assert first["state"] == "FAILURE" and first["status"] == "done"
    assert first["result"] == {"exc_type": "ValueError", "exc_message": ["boom"],
                               "exc_module": "builtins"}
    assert first["traceback"].endswith("ValueError: boom\n")
    assert second["args"] == [2, 3] and second["kwargs"] == {} and second["result"] == 5
    assert second["runtime"] == pytest.approx(0.24)
    assert second["progress"] is None


def test_cursor_pagination_walks_every_row_once(staff_api: APIClient) -> None:
    base = timezone.now() - datetime.timedelta(hours=1)
    made = [make_task(created=base + datetime.timedelta(seconds=i // 2)) for i in range(7)]
    seen: list[str] = []
    url: str | None = f"{API}tasks/?page_size=3"
    pages = 0
    while url:
        body = staff_api.get(url).json()
        seen += [t["id"] for t in body["results"]]
        url = body["next"]
        pages += 1
        assert pages < 10
    assert pages == 3
    assert sorted(seen) == sorted(str(t.id) for t in made) and len(set(seen)) == 7
    assert staff_api.get(f"{API}tasks/?cursor=bm9wZQ").status_code == 404
    # A well-formed cursor with a position that is not a date is refused the same way.
    import base64
    forged = base64.b64encode(b"o=0&r=0&p=not-a-date").decode()
    response = staff_api.get(f"{API}tasks/?cursor={forged}")
    assert response.status_code == 404 and response.json() == {"detail": "Invalid cursor"}


def test_filters(staff_api: APIClient) -> None:
    now = timezone.now()
    old = make_task(states.SUCCESS, created=now - datetime.timedelta(days=2))
    failed = make_task(states.FAILURE, name="tests.testapp.tasks.fail")
    special = make_task(states.SUCCESS, queue="special", worker="w9@test")
    assert ids(staff_api.get(f"{API}tasks/", {"state": "FAILURE"})) == [str(failed.id)]
    assert ids(staff_api.get(f"{API}tasks/", {"name": "tests.testapp.tasks.fail"})) == [
        str(failed.id)]
    assert ids(staff_api.get(f"{API}tasks/", {"queue": "special"})) == [str(special.id)]
    assert ids(staff_api.get(f"{API}tasks/", {"worker": "w9@test"})) == [str(special.id)]
    day_ago = (now - datetime.timedelta(days=1)).isoformat()
    assert str(old.id) not in ids(staff_api.get(f"{API}tasks/", {"created_after": day_ago}))
    assert ids(staff_api.get(f"{API}tasks/", {"created_before": day_ago})) == [str(old.id)]
    response = staff_api.get(f"{API}tasks/", {"created_after": "yesterday-ish"})
    assert response.status_code == 400
    assert "created_after" in response.json()
    # Offsets PostgreSQL would refuse, and times that leave the range in UTC.
    assert staff_api.get(f"{API}tasks/", {"created_after": "0747-11-14T02:52:06+22:59"}
                         ).status_code == 200
    response = staff_api.get(f"{API}tasks/", {"created_before": "0001-01-01T00:00:00+05:00"})
    assert response.status_code == 400 and "created_before" in response.json()


def test_search_by_id_or_name(staff_api: APIClient) -> None:
    a = make_task(name="tests.testapp.tasks.echo")
    b = make_task(name="tests.testapp.tasks.add")
    assert ids(staff_api.get(f"{API}tasks/", {"search": str(b.id)})) == [str(b.id)]
    assert ids(staff_api.get(f"{API}tasks/", {"search": "tasks.ech"})) == [str(a.id)]
    assert ids(staff_api.get(f"{API}tasks/", {"search": "nothing-like-it"})) == []


# -- detail ---------------------------------------------------------------------------------

def test_detail_progress_and_etag(staff_api: APIClient) -> None:
    task = make_task("PROGRESS", name="tests.testapp.tasks.progress", result={"progress": 42})
    url = f"{API}tasks/{task.id}/"
    with CaptureQueriesContext(connection) as queries:
        response = staff_api.get(url)
    assert response.status_code == 200
    assert len([q for q in queries if "djq_task" in q["sql"]]) == 1  # one lookup by id
    body = response.json()
    assert (body["state"], body["status"], body["progress"]) == ("PROGRESS", "started", 42.0)
    assert body["result"] == {"progress": 42}
    etag = response["ETag"]
    again = staff_api.get(url, HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304 and again["ETag"] == etag
    Task.objects.filter(pk=task.pk).update(result=json.dumps({"current": 3, "total": 4}))
    changed = staff_api.get(url, HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200 and changed.json()["progress"] == 75.0
    assert changed["ETag"] != etag


def test_detail_unknown_or_malformed_id(staff_api: APIClient) -> None:
    assert staff_api.get(f"{API}tasks/{uuid.uuid4()}/").status_code == 404
    assert staff_api.get(f"{API}tasks/not-a-uuid/").status_code == 404
    response = staff_api.get(f"{API}tasks/{'a' * 36}/")
    assert response.status_code == 404 and "detail" in response.json()


def test_detail_decodes_special_types(staff_api: APIClient) -> None:
    task = make_task(result={"__type__": "decimal", "__value__": "1.50"},
                     args=[{"__type__": "bytes", "__value__": "aGk="}])
    body = staff_api.get(f"{API}tasks/{task.id}/").json()
    assert body["result"] == "1.50" and body["args"] == ["aGk="]


# -- enqueue --------------------------------------------------------------------------------

def test_enqueue_allowed_task(staff_api: APIClient, allow: Callable[..., None]) -> None:
    allow(ADD)
    response = staff_api.post(f"{API}tasks/", {"name": ADD, "args": [2, 3]}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    row = Task.objects.get(pk=body["id"])
    assert (row.name, row.state, row.status, row.queue) == (ADD, "PENDING", broker.WAITING,
                                                            "default")
    assert json.loads(row.args) == [2, 3]
    assert row.owner == str(staff_api.user.pk)  # type: ignore[attr-defined]
    assert body["state"] == "PENDING" and response["Location"] == f"{body['id']}/"


def test_enqueue_options(staff_api: APIClient, allow: Callable[..., None]) -> None:
    allow(ECHO)
    before = timezone.now()
    response = staff_api.post(f"{API}tasks/", {
        "name": ECHO, "args": [1], "kwargs": {"x": {"deep": [1, 2]}}, "countdown": 60,
        "queue": "special", "priority": 7}, format="json")
    assert response.status_code == 201, response.content
    row = Task.objects.get(pk=response.json()["id"])
    assert row.queue == "special" and row.priority == 7
    assert row.run_at >= before + datetime.timedelta(seconds=59)
    assert json.loads(row.kwargs) == {"x": {"deep": [1, 2]}}
    eta = (timezone.now() + datetime.timedelta(hours=2)).replace(microsecond=0)
    response = staff_api.post(f"{API}tasks/", {"name": ECHO, "eta": eta.isoformat()},
                              format="json")
    assert response.status_code == 201
    assert Task.objects.get(pk=response.json()["id"]).eta == eta


@pytest.mark.parametrize(("payload", "field"), [
    ({"name": "tests.testapp.tasks.fail"}, "name"),  # registered, not allow-listed
    ({"name": "no.such.task"}, "name"),
    ({"name": "tests.testapp.tasks.ghost_allowed"}, "name"),  # allow-listed, not registered
    ({}, "name"),
    ({"name": ADD, "args": "2, 3"}, "args"),
    ({"name": ADD, "args": [1, 2, 3]}, "args"),  # does not fit add(x, y)
    ({"name": ADD, "args": [1], "kwargs": {"z": 1}}, "args"),
    ({"name": ADD, "args": [1, 2], "kwargs": [1]}, "kwargs"),
    ({"name": ADD, "args": [1, 2], "countdown": -1}, "countdown"),
    ({"name": ADD, "args": [1, 2], "countdown": 1e12}, "countdown"),
    ({"name": ADD, "args": [1, 2], "countdown": 5, "eta": "2030-01-01T00:00:00Z"}, "eta"),
    ({"name": ADD, "args": [1, 2], "eta": "soon"}, "eta"),
    ({"name": ADD, "args": [1, 2], "priority": 2**40}, "priority"),
    ({"name": ADD, "args": [1, 2], "priority": "high"}, "priority"),
    ({"name": ADD, "args": [1, 2], "queue": ""}, "queue"),
    ({"name": ADD, "args": [1, 2], "queue": "   "}, "queue"),
    ({"name": ADD, "args": [1, 2], "queue": "q\x00"}, "queue"),
    ({"name": ADD, "args": ["\ud800", 2]}, "args"),  # not storable as UTF-8
])
def test_enqueue_refused_changes_nothing(staff_api: APIClient, allow: Callable[..., None],
                                         payload: dict[str, Any], field: str) -> None:
    allow(ADD, ECHO, "tests.testapp.tasks.ghost_allowed")
    make_task()
    before = list(Task.objects.values_list("pk", "state").order_by("pk"))
    response = staff_api.post(f"{API}tasks/", json.dumps(payload),
                              content_type="application/json")
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/json"
    errors = response.json()
    assert field in errors and all(isinstance(m, str) for m in errors[field]), errors
    assert list(Task.objects.values_list("pk", "state").order_by("pk")) == before


def test_enqueue_refuses_bad_json_and_other_content_types(staff_api: APIClient,
                                                          allow: Callable[..., None]) -> None:
    allow(ADD)
    response = staff_api.post(f"{API}tasks/", "{not json", content_type="application/json")
    assert response.status_code == 400 and "detail" in response.json()
    response = staff_api.post(f"{API}tasks/", '{"name": "%s", "args": [NaN, 1]}' % ADD,
                              content_type="application/json")
    assert response.status_code == 400
    response = staff_api.post(f"{API}tasks/", {"name": ADD}, format="multipart")
    assert response.status_code == 415
    assert Task.objects.count() == 0


@pytest.mark.parametrize("nesting", [150, 50_000])
def test_enqueue_refuses_deep_nesting_with_json_400(staff_api: APIClient,
                                                   allow: Callable[..., None],
                                                   nesting: int) -> None:
    allow(ECHO)
    body = '{"name": "%s", "args": [%s1%s]}' % (ECHO, "[" * nesting, "]" * nesting)
    response = staff_api.post(f"{API}tasks/", body, content_type="application/json")
    assert response.status_code == 400, response.content[:200]
    assert response["Content-Type"] == "application/json"
    assert "nested deeper" in response.json()["detail"]
    assert Task.objects.count() == 0


def test_oversized_body_gets_json_413_and_changes_nothing(staff_api: APIClient,
                                                         allow: Callable[..., None],
                                                         settings: Any) -> None:
    allow(ECHO)
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = json.dumps({"name": ECHO, "args": ["x" * 5000]})
    response = staff_api.post(f"{API}tasks/", body, content_type="application/json")
    assert response.status_code == 413, response.content[:200]
    assert response["Content-Type"] == "application/json"
    assert "too large" in response.json()["detail"]
    assert Task.objects.count() == 0


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "x" * 80, "1.2", "%20", "..."])
def test_malformed_ids_get_json_404(staff_api: APIClient, bad_id: str) -> None:
    for url in (f"{API}tasks/{bad_id}/", f"{API}tasks/{bad_id}/retry/",
                f"{API}tasks/{bad_id}/revoke/"):
        response = (staff_api.get(url) if url.endswith(f"{bad_id}/")
                    else staff_api.post(url, {}, format="json"))
        assert response.status_code == 404, (url, response.status_code)
        assert response["Content-Type"] == "application/json", url
        assert "detail" in response.json()


def test_enqueue_with_an_empty_allowlist(staff_api: APIClient) -> None:
    response = staff_api.post(f"{API}tasks/", {"name": ADD, "args": [1, 2]}, format="json")
    assert response.status_code == 400
    assert "api_enqueue_allowlist" in response.json()["name"][0]
    assert Task.objects.count() == 0


# -- retry and revoke -------------------------------------------------------------------------

def test_retry_finished_task_keeps_its_id(staff_api: APIClient) -> None:
    failed = make_task(states.FAILURE)
    response = staff_api.post(f"{API}tasks/{failed.id}/retry/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["id"] == str(failed.id)
    assert (body["state"], body["status"], body["result"], body["traceback"]) == (
        "PENDING", "waiting", None, None)


def test_retry_unfinished_or_unknown(staff_api: APIClient) -> None:
    running = make_task(states.STARTED)
    response = staff_api.post(f"{API}tasks/{running.id}/retry/")
    assert response.status_code == 409 and "not finished" in response.json()["detail"]
    running.refresh_from_db()
    assert (running.state, running.status) == (states.STARTED, broker.STARTED)
    assert staff_api.post(f"{API}tasks/{uuid.uuid4()}/retry/").status_code == 404


def test_revoke(staff_api: APIClient) -> None:
    waiting = make_task(states.PENDING)
    running = make_task(states.STARTED)
    done = make_task(states.SUCCESS)
    response = staff_api.post(f"{API}tasks/{waiting.id}/revoke/", {}, format="json")
    assert response.status_code == 200
    assert response.json()["outcome"] == "revoked"
    assert response.json()["task"]["state"] == "REVOKED"
    response = staff_api.post(f"{API}tasks/{running.id}/revoke/", {"terminate": False},
                              format="json")
    assert response.json()["outcome"] == "running"
    running.refresh_from_db()
    assert running.terminate is None
    response = staff_api.post(f"{API}tasks/{running.id}/revoke/",
                              {"terminate": True, "signal": "SIGKILL"}, format="json")
    assert response.json()["outcome"] == "terminating"
    running.refresh_from_db()
    assert running.terminate == 9
    response = staff_api.post(f"{API}tasks/{done.id}/revoke/", {"terminate": True},
                              format="json")
    assert response.json()["outcome"] == "finished"
    assert staff_api.post(f"{API}tasks/{uuid.uuid4()}/revoke/", {},
                          format="json").status_code == 404


@pytest.mark.parametrize("payload", [{"terminate": "maybe"}, {"signal": "SIGNOPE"},
                                     {"terminate": True, "signal": 9}])
def test_revoke_bad_payload_changes_nothing(staff_api: APIClient,
                                            payload: dict[str, Any]) -> None:
    running = make_task(states.STARTED)
    waiting = make_task(states.PENDING)
    for task in (running, waiting):
        response = staff_api.post(f"{API}tasks/{task.id}/revoke/", payload, format="json")
        assert response.status_code == 400
        assert set(response.json()) <= {"terminate", "signal"}
    running.refresh_from_db()
    waiting.refresh_from_db()
    assert running.terminate is None and running.state == states.STARTED
    assert waiting.state == states.PENDING and waiting.status == broker.WAITING


# -- with a real worker ---------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(90)
def test_enqueue_then_follow_progress_to_the_end(start_worker: Callable[..., Any],
                                                 allow: Callable[..., None],
                                                 django_user_model: Any) -> None:
    from tests.conftest import wait_for

    allow(ADD, "tests.testapp.tasks.progress", SLEEP)
    staff = grant(django_user_model.objects.create_user("staff2", password="pw", is_staff=True),
                  *ALL_DJQ_PERMISSIONS)
    api = APIClient()
    api.force_authenticate(staff)
    start_worker()
    sent = api.post(f"{API}tasks/", {"name": "tests.testapp.tasks.progress",
                                     "args": [4, 0.3]}, format="json").json()
    url = f"{API}tasks/{sent['id']}/"
    seen: list[float] = []

    def finished() -> bool:
        body = api.get(url).json()
        if body["progress"] is not None:
            seen.append(body["progress"])
        return bool(body["state"] == "SUCCESS")

    wait_for(finished, timeout=30, interval=0.1, message="the task to succeed")
    assert seen and all(0 < p <= 100 for p in seen)
    assert api.get(url).json()["result"] == 4

    long = api.post(f"{API}tasks/", {"name": SLEEP, "args": [30]}, format="json").json()
    long_url = f"{API}tasks/{long['id']}/"
    wait_for(lambda: api.get(long_url).json()["status"] == "started", timeout=20,
             message="the long task to start")
    outcome = api.post(f"{long_url}revoke/", {"terminate": True}, format="json").json()
    assert outcome["outcome"] == "terminating"
    wait_for(lambda: api.get(long_url).json()["state"] == "REVOKED", timeout=20,
             message="the long task to be revoked")


def test_enqueue_writes_the_owner_in_the_insert(staff_api: APIClient,
                                                allow: Callable[..., None]) -> None:
    """The owner is in the row as soon as it exists (issue 13): a receiver of
    ``after_task_publish`` already reads it."""
    allow(ADD)
    seen: list[Any] = []

    def after(sender: Any = None, headers: Any = None, **kwargs: Any) -> None:
        seen.append(Task.objects.get(pk=headers["id"]).owner)

    signals.after_task_publish.connect(after, dispatch_uid="tests.api.owner", weak=False)
    try:
        response = staff_api.post(f"{API}tasks/", {"name": ADD, "args": [2, 3]},
                                  format="json")
    finally:
        signals.after_task_publish.disconnect(dispatch_uid="tests.api.owner")
    assert response.status_code == 201, response.content
    assert seen == [str(staff_api.user.pk)]  # type: ignore[attr-defined]
