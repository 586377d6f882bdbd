"""Who may do what: staff only by default, ``api_permission_classes`` to open the API up,
``api_owner_scoped`` to keep non-staff users to their own tasks (404 for the rest)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from djq import broker, states
from djq.models import Task
from tests.api.conftest import API
from tests.rows import grant, make_task

pytestmark = pytest.mark.django_db

ADD = "tests.testapp.tasks.add"


def endpoints(task_id: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [
        ("get", f"{API}", None),
        ("get", f"{API}tasks/", None),
        ("post", f"{API}tasks/", {"name": ADD, "args": [1, 2]}),
        ("get", f"{API}tasks/{task_id}/", None),
        ("post", f"{API}tasks/{task_id}/retry/", None),
        ("post", f"{API}tasks/{task_id}/revoke/", {"terminate": True}),
        ("get", f"{API}workers/", None),
        ("get", f"{API}queues/", None),
        ("get", f"{API}stats/", None),
        ("get", f"{API}schema/", None),
    ]


def call(client: APIClient, method: str, url: str, data: dict[str, Any] | None) -> Any:
    if method == "get":
        return client.get(url)
    return client.post(url, data or {}, format="json")


def test_anonymous_is_refused_everywhere(anon_api: APIClient,
                                         allow: Callable[..., None]) -> None:
    allow(ADD)
    task = make_task(states.FAILURE)
    for method, url, data in endpoints(str(task.id)):
        response = call(anon_api, method, url, data)
        # DRF answers 403 when the first authentication class (here the session) has no
        # WWW-Authenticate challenge to offer, 401 when it has (Basic, tokens).
        assert response.status_code == 403, (url, response.status_code)
        if not url.endswith("schema/"):  # the schema view renders errors as OpenAPI
            assert response.json() == {
                "detail": "Authentication credentials were not provided."}
    task.refresh_from_db()
    assert task.state == states.FAILURE and Task.objects.count() == 1


def test_non_staff_is_refused_by_default(user_api: APIClient,
                                         allow: Callable[..., None]) -> None:
    allow(ADD)
    task = make_task(states.PENDING)
    for method, url, data in endpoints(str(task.id)):
        response = call(user_api, method, url, data)
        assert response.status_code == 403, (url, response.status_code)
        if not url.endswith("schema/"):
            assert response.json() == {
                "detail": "You do not have permission to perform this action."}
    task.refresh_from_db()
    assert task.state == states.PENDING and Task.objects.count() == 1


def test_staff_may_use_every_endpoint(staff_api: APIClient,
                                      allow: Callable[..., None]) -> None:
    allow(ADD)
    task = make_task(states.FAILURE)
    for method, url, data in endpoints(str(task.id)):
        response = call(staff_api, method, url, data)
        assert response.status_code in (200, 201), (url, response.status_code)


def test_anonymous_gets_401_with_basic_authentication_first(
        anon_api: APIClient, monkeypatch: pytest.MonkeyPatch) -> None:
    # As in a project whose DEFAULT_AUTHENTICATION_CLASSES starts with Basic (DRF reads
    # that setting once, when its views are imported).
    from rest_framework.authentication import BasicAuthentication, SessionAuthentication

    from djq.api.views import TaskViewSet

    monkeypatch.setattr(TaskViewSet, "authentication_classes",
                        [BasicAuthentication, SessionAuthentication])
    response = anon_api.get(f"{API}tasks/")
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Basic")
    anon_api.credentials(HTTP_AUTHORIZATION="Basic " + __import__("base64").b64encode(
        b"nobody:wrong").decode())
    assert anon_api.get(f"{API}tasks/").status_code == 401


def test_permission_classes_setting(user_api: APIClient, anon_api: APIClient,
                                    djq_settings: Callable[..., None]) -> None:
    """The setting is the outer gate; behind it, Django's permissions (djq.permissions)."""
    make_task()
    djq_settings(api_permission_classes=["rest_framework.permissions.IsAuthenticated"])
    assert user_api.get(f"{API}tasks/").json() == {
        "detail": "You need the djq.view_task permission."}
    user_api.force_authenticate(grant(user_api.user, "view_task"))  # type: ignore[attr-defined]
    assert user_api.get(f"{API}tasks/").status_code == 200
    assert anon_api.get(f"{API}tasks/").status_code == 403
    djq_settings(api_permission_classes=["rest_framework.permissions.IsAuthenticated",
                                         "rest_framework.permissions.IsAdminUser"])
    assert user_api.get(f"{API}tasks/").status_code == 403
    # Open to anyone: still no task is shown to a user without the permission.
    djq_settings(api_permission_classes=[])
    assert user_api.get(f"{API}tasks/").status_code == 200
    assert anon_api.get(f"{API}tasks/").status_code == 403


@pytest.fixture
def scoped(djq_settings: Callable[..., None]) -> None:
    djq_settings(api_permission_classes=["rest_framework.permissions.IsAuthenticated"],
                 api_owner_scoped=True, api_enqueue_allowlist=[ADD])


def enqueue(client: APIClient) -> str:
    response = client.post(f"{API}tasks/", {"name": ADD, "args": [1, 2]}, format="json")
    assert response.status_code == 201, response.content
    return str(response.json()["id"])


@pytest.mark.usefixtures("scoped")
def test_owner_scoping_lists_and_details(user_api: APIClient, other_api: APIClient,
                                         staff_api: APIClient) -> None:
    alices = enqueue(user_api)
    bobs = enqueue(other_api)
    nobodys = str(make_task().id)  # sent from code, not through the API: no owner
    assert Task.objects.get(pk=alices).owner == str(user_api.user.pk)  # type: ignore[attr-defined]
    mine = [t["id"] for t in user_api.get(f"{API}tasks/").json()["results"]]
    assert mine == [alices]
    assert [t["id"] for t in other_api.get(f"{API}tasks/").json()["results"]] == [bobs]
    staff_sees = {t["id"] for t in staff_api.get(f"{API}tasks/").json()["results"]}
    assert staff_sees == {alices, bobs, nobodys}
    assert user_api.get(f"{API}tasks/{alices}/").status_code == 200
    assert user_api.get(f"{API}tasks/{bobs}/").status_code == 404
    assert user_api.get(f"{API}tasks/{nobodys}/").status_code == 404
    assert user_api.get(f"{API}tasks/", {"search": bobs}).json()["results"] == []
    assert staff_api.get(f"{API}tasks/{bobs}/").status_code == 200
    stats = user_api.get(f"{API}stats/").json()
    assert stats["tasks"]["waiting"] == 1 and stats["tasks"]["total_estimate"] is None


@pytest.mark.usefixtures("scoped")
def test_owner_scoping_actions(user_api: APIClient, other_api: APIClient,
                               staff_api: APIClient) -> None:
    bobs = enqueue(other_api)
    for action, payload in (("revoke", {"terminate": True}), ("retry", {})):
        response = user_api.post(f"{API}tasks/{bobs}/{action}/", payload, format="json")
        assert response.status_code == 404
    row = Task.objects.get(pk=bobs)
    assert (row.state, row.status) == (states.PENDING, broker.WAITING)
    assert other_api.post(f"{API}tasks/{bobs}/revoke/", {}, format="json").json()[
        "outcome"] == "revoked"
    assert other_api.post(f"{API}tasks/{bobs}/retry/", {}, format="json").status_code == 200
    assert staff_api.post(f"{API}tasks/{bobs}/revoke/", {}, format="json").status_code == 200


def test_owner_scoping_with_anonymous_access(anon_api: APIClient,
                                             djq_settings: Callable[..., None]) -> None:
    djq_settings(api_permission_classes=[], api_owner_scoped=True,
                 api_enqueue_allowlist=[ADD])
    make_task()
    assert anon_api.get(f"{API}tasks/").json()["results"] == []
    sent = anon_api.post(f"{API}tasks/", {"name": ADD, "args": [1, 2]}, format="json")
    assert sent.status_code == 201
    assert Task.objects.get(pk=sent.json()["id"]).owner is None
    assert anon_api.get(f"{API}tasks/{sent.json()['id']}/").status_code == 404
    assert anon_api.get(f"{API}tasks/{uuid.uuid4()}/").status_code == 404
