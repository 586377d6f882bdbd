"""Django's permissions, one rule for the admin, the monitor and the REST API
(djq.permissions): a staff user with no djq permission, one who may view, one who may
also retry (change), one who may also revoke and terminate; and superusers."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from djq import broker, permissions, states
from djq.models import Task
from tests.rows import grant, make_task, make_worker

pytestmark = pytest.mark.django_db

LEVELS: dict[str, tuple[str, ...]] = {
    "none": (),
    "view": ("view_task", "view_worker"),
    "change": ("view_task", "change_task", "view_worker"),
    "revoke": ("view_task", "change_task", "revoke_task", "view_worker"),
}


@pytest.fixture
def as_level(django_user_model: Any) -> Any:
    def login(level: str) -> Client:
        user = django_user_model.objects.create_user(f"staff-{level}", password="pw",
                                                     is_staff=True)
        user = grant(user, *LEVELS[level]) if LEVELS[level] else user
        client = Client()
        client.force_login(user)
        return client

    return login


def post_json(client: Client, url: str, body: dict[str, Any] | None = None) -> Any:
    return client.post(url, json.dumps(body or {}), content_type="application/json")


def test_the_rule(django_user_model: Any) -> None:
    staff = django_user_model.objects.create_user("s", password="pw", is_staff=True)
    assert not any(permissions.allowed(staff, action) for action in permissions.RULES)
    viewer = grant(staff, "view_task")
    assert permissions.allowed(viewer, permissions.VIEW_TASKS)
    assert not permissions.allowed(viewer, permissions.RETRY)
    assert not permissions.allowed(viewer, permissions.VIEW_WORKERS)
    changer = grant(staff, "change_task")
    assert permissions.allowed(changer, permissions.RETRY)
    assert not permissions.allowed(changer, permissions.REVOKE)
    assert not permissions.allowed(changer, permissions.TERMINATE)
    # Revoking a task needs seeing it too (djq.revoke_task alone is not enough).
    revoker = grant(django_user_model.objects.create_user("r", password="pw", is_staff=True),
                    "revoke_task")
    assert not permissions.allowed(revoker, permissions.REVOKE)
    assert permissions.allowed(grant(revoker, "view_task"), permissions.TERMINATE)
    root = django_user_model.objects.create_superuser("root", password="pw")
    assert all(permissions.allowed(root, action) for action in permissions.RULES)
    root.is_active = False
    assert not permissions.allowed(root, permissions.VIEW_TASKS)
    # Under an owner-scoped API, a user's own tasks need no model permission.
    plain = django_user_model.objects.create_user("p", password="pw")
    assert permissions.allowed(plain, permissions.TERMINATE, own=True)
    assert not permissions.allowed(plain, permissions.VIEW_WORKERS, own=True)
    with pytest.raises(ValueError):
        permissions.allowed(root, "fly")


@pytest.mark.parametrize("level", LEVELS)
def test_admin(level: str, as_level: Any) -> None:
    client = as_level(level)
    done = make_task(states.FAILURE)
    running = make_task(states.STARTED)
    make_worker()
    sees = level != "none"
    changelist = client.get(reverse("admin:djq_task_changelist"))
    assert changelist.status_code == (200 if sees else 403)
    detail = client.get(reverse("admin:djq_task_change", args=[done.id]))
    assert detail.status_code == (200 if sees else 403)
    workers = client.get(reverse("admin:djq_worker_changelist"))
    assert workers.status_code == (200 if sees else 403)
    if sees:
        html = detail.content.decode()
        assert ("djq-retry" in html) == (level in ("change", "revoke"))
        assert ("djq-terminate" in html) == (level == "revoke")
        actions = {a for a, _ in changelist.context["cl"].model_admin.get_action_choices(
            changelist.wsgi_request) if a}
        expected = {"view": set(), "change": {"retry_tasks"},
                    "revoke": {"retry_tasks", "revoke_tasks", "terminate_tasks"}}[level]
        assert actions == expected
    retry = client.post(reverse("admin:djq_task_retry", args=[done.id]))
    assert retry.status_code == (302 if level in ("change", "revoke") else 403)
    terminate = client.post(reverse("admin:djq_task_revoke", args=[running.id]),
                            {"terminate": "1"})
    assert terminate.status_code == (302 if level == "revoke" else 403)
    running.refresh_from_db()
    assert running.terminate == (15 if level == "revoke" else None)
    done.refresh_from_db()
    assert done.state == (states.PENDING if level in ("change", "revoke") else states.FAILURE)
    # A bulk action the user may not take is refused, and changes nothing.
    if level in ("view", "change"):
        response = client.post(reverse("admin:djq_task_changelist"), {
            "action": "terminate_tasks", "_selected_action": [str(running.id)], "post": "yes"})
        assert response.status_code in (200, 302)
        running.refresh_from_db()
        assert running.terminate is None and running.state == states.STARTED


@pytest.mark.parametrize("level", LEVELS)
def test_monitor(level: str, as_level: Any) -> None:
    client = as_level(level)
    done = make_task(states.FAILURE)
    running = make_task(states.STARTED)
    make_worker()
    sees = level != "none"
    page = client.get("/djq/")
    assert page.status_code == (200 if sees else 403)
    if not sees:
        assert b"djq.view_task" in page.content and b"Permission needed" in page.content
    task_page = client.get(f"/djq/tasks/{running.id}/")
    assert task_page.status_code == (200 if sees else 403)
    if sees:
        html = task_page.content.decode()
        assert ('id="btn-retry"' in html) == (level in ("change", "revoke"))
        assert ('id="btn-terminate"' in html) == (level == "revoke")
        assert ('id="read-only"' in html) == (level == "view")
    for url in ("/djq/data/tasks/", f"/djq/data/tasks/{done.id}/", "/djq/data/workers/",
                "/djq/data/queues/", "/djq/data/stats/", "/djq/data/charts/"):
        response = client.get(url)
        assert response.status_code == (200 if sees else 403), url
        if not sees:
            assert response.json() == {"detail": "You need the djq.view_task permission."} \
                or "djq.view_worker" in response.json()["detail"]
    retry = post_json(client, f"/djq/data/tasks/{done.id}/retry/")
    assert retry.status_code == (200 if level in ("change", "revoke") else 403)
    terminate = post_json(client, f"/djq/data/tasks/{running.id}/revoke/", {"terminate": True})
    assert terminate.status_code == (200 if level == "revoke" else 403)
    running.refresh_from_db()
    assert running.terminate == (15 if level == "revoke" else None)


def test_monitor_without_worker_permission(as_level: Any, django_user_model: Any) -> None:
    user = django_user_model.objects.create_user("tasks-only", password="pw", is_staff=True)
    client = Client()
    client.force_login(grant(user, "view_task"))
    make_worker()
    html = client.get("/djq/").content.decode()
    assert 'data-workers-url=""' in html and 'id="workers"' not in html
    assert client.get("/djq/data/workers/").json() == {
        "detail": "You need the djq.view_worker permission."}


@pytest.mark.parametrize("level", LEVELS)
def test_api(level: str, as_level: Any, settings: Any) -> None:
    settings.DJQ = {**settings.DJQ, "api_enqueue_allowlist": ["tests.testapp.tasks.add"]}
    client = as_level(level)
    done = make_task(states.FAILURE)
    waiting = make_task(states.PENDING)
    sees = level != "none"
    for url in ("/api/djq/tasks/", f"/api/djq/tasks/{done.id}/", "/api/djq/workers/",
                "/api/djq/queues/", "/api/djq/stats/"):
        response = client.get(url)
        assert response.status_code == (200 if sees else 403), url
        assert response["Content-Type"].startswith("application/json")
    # The root and the schema describe the API; they need no model permission.
    assert client.get("/api/djq/").status_code == 200
    assert client.get("/api/djq/schema/").status_code == 200
    # Enqueueing needs djq.add_task, which none of these users has.
    sent = post_json(client, "/api/djq/tasks/", {"name": "tests.testapp.tasks.add",
                                                 "args": [1, 2]})
    assert sent.status_code == 403 and sent.json() == {
        "detail": "You need the djq.add_task permission."}
    retry = post_json(client, f"/api/djq/tasks/{done.id}/retry/")
    assert retry.status_code == (200 if level in ("change", "revoke") else 403)
    revoke = post_json(client, f"/api/djq/tasks/{waiting.id}/revoke/", {"terminate": True})
    assert revoke.status_code == (200 if level == "revoke" else 403)
    if level != "revoke":
        assert revoke.json() == {"detail": "You need the djq.revoke_task permission."} \
            or level == "none"
    waiting.refresh_from_db()
    assert (waiting.state == states.REVOKED) == (level == "revoke")
    assert Task.objects.count() == 2 and Task.objects.filter(status=broker.DONE).count() == (
        {"none": 1, "view": 1, "change": 0, "revoke": 1}[level])


def test_api_enqueue_with_add_permission(as_level: Any, django_user_model: Any,
                                         settings: Any) -> None:
    settings.DJQ = {**settings.DJQ, "api_enqueue_allowlist": ["tests.testapp.tasks.add"]}
    user = django_user_model.objects.create_user("sender", password="pw", is_staff=True)
    client = Client()
    client.force_login(grant(user, "add_task"))
    sent = post_json(client, "/api/djq/tasks/", {"name": "tests.testapp.tasks.add",
                                                 "args": [1, 2]})
    assert sent.status_code == 201
    assert client.get("/api/djq/tasks/").status_code == 403  # sending is not seeing


def test_outer_gate_still_applies(django_user_model: Any) -> None:
    """A non-staff user with every djq permission is still refused by the default
    api_permission_classes (IsAdminUser), and by the staff-only monitor."""
    user = django_user_model.objects.create_user("plain", password="pw")
    client = Client()
    client.force_login(grant(user, "view_task", "view_worker"))
    assert client.get("/api/djq/tasks/").status_code == 403
    assert client.get("/djq/data/tasks/").status_code == 403
    assert client.get("/djq/").status_code == 403
