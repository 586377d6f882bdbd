"""Who may use the API: ``api_permission_classes`` (dotted paths, staff only by default),
and ``api_owner_scoped`` (non-staff users see and act only on tasks they enqueued)."""

from __future__ import annotations

from typing import Any

from django.utils.module_loading import import_string
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from ..conf import conf


def configured_permissions() -> list[BasePermission]:
    """Instances of the ``api_permission_classes`` setting, read at request time (so
    ``override_settings`` applies). Entries may be dotted paths or classes."""
    permissions = []
    for entry in conf.api_permission_classes:
        cls: Any = import_string(entry) if isinstance(entry, str) else entry
        permissions.append(cls())
    return permissions


def owner_of(request: Request) -> str | None:
    """The ``owner`` stored on tasks this request enqueues: the user's pk as text."""
    user = request.user
    if user is None or not user.is_authenticated:
        return None
    return str(user.pk)


def scope_owner(request: Request) -> str | None:
    """The owner a request is limited to, or None when it sees every task (scoping off,
    or a staff user). An anonymous user under scoping is limited to an owner no task has."""
    if not conf.api_owner_scoped:
        return None
    user = request.user
    if user is not None and user.is_authenticated and user.is_staff:
        return None
    return owner_of(request) or ""


__all__ = ["configured_permissions", "owner_of", "scope_owner"]
