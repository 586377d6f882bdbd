"""API fixtures: clients for a staff user, a plain user, another plain user and nobody,
and a way to change DJQ settings for one test."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.rows import ALL_DJQ_PERMISSIONS, grant

API = "/api/djq/"


@pytest.fixture
def djq_settings(settings: Any) -> Callable[..., None]:
    """``djq_settings(api_owner_scoped=True, ...)``: merge keys into ``settings.DJQ``."""

    def update(**values: Any) -> None:
        settings.DJQ = {**settings.DJQ, **values}

    return update


@pytest.fixture
def allow(djq_settings: Callable[..., None]) -> Callable[..., None]:
    """``allow("tests.testapp.tasks.add", ...)`` sets api_enqueue_allowlist."""

    def allow(*names: str) -> None:
        djq_settings(api_enqueue_allowlist=list(names))

    return allow


def _client(user: Any) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    client.user = user  # type: ignore[attr-defined]
    return client


@pytest.fixture
def staff_api(django_user_model: Any) -> APIClient:
    """A staff user with every djq permission (tests/test_permissions.py tries fewer)."""
    user = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    return _client(grant(user, *ALL_DJQ_PERMISSIONS))


@pytest.fixture
def user_api(django_user_model: Any) -> APIClient:
    return _client(django_user_model.objects.create_user("alice", password="pw"))


@pytest.fixture
def other_api(django_user_model: Any) -> APIClient:
    return _client(django_user_model.objects.create_user("bob", password="pw"))


@pytest.fixture
def anon_api() -> APIClient:
    return APIClient()
