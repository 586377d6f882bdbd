"""Who may use the API: ``api_permission_classes`` (dotted paths, staff only by default)
is the outer gate; behind it, :class:`ModelPermissions` asks :func:`djq.permissions.allowed`
for the view's action (Django's model permissions); ``api_owner_scoped`` keeps non-staff
users to the tasks they enqueued, which they may act on without model permissions."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from .. import permissions
from ..conf import conf


def configured_permissions() -> list[BasePermission]:
    """Instances of the ``api_permission_classes`` setting, read at request time (so
    ``override_settings`` applies). Entries may be dotted paths or classes; ``conf``
    imports the paths."""
    classes: list[Any] = list(conf.api_permission_classes)
    return [cls() for cls in classes]


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


class ModelPermissions(BasePermission):
    """:func:`djq.permissions.allowed` for the action the view takes: the view's
    ``djq_action(request)`` names it (None: nothing beyond the outer gate)."""

    message = "You do not have permission to perform this action."

    def has_permission(self, request: Request, view: Any) -> bool:
        action = view.djq_action(request) if hasattr(view, "djq_action") else None
        if action is None:
            return True
        if permissions.allowed(request.user, action, own=scope_owner(request) is not None):
            return True
        self.message = f"You need the {permissions.needed(action)} permission."
        return False


def check(request: Request, view: Any, action: str) -> None:
    """Refuse the request (403, JSON) unless its user may take ``action``; for a choice
    made in the payload, such as ``terminate``."""
    if not permissions.allowed(request.user, action, own=scope_owner(request) is not None):
        view.permission_denied(request, message=f"You need the {permissions.needed(action)} "
                                                "permission.")


__all__ = ["configured_permissions", "owner_of", "scope_owner", "ModelPermissions", "check"]
