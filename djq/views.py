"""The live monitor (``djq.urls``): server-rendered pages for staff, refreshed by a little
JavaScript that polls the JSON endpoints under ``data/``.

The JSON endpoints are the REST API's own viewsets, mounted again with fixed rules: staff
only and session authentication, whatever ``api_permission_classes`` says, so the monitor
works the same whether or not a project exposes the API. Behind that, every page and
endpoint asks :func:`djq.permissions.allowed`, as the admin and the API do. The chart data sits behind one
small view (:class:`ChartsView`) over :func:`djq.cluster.throughput`.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from rest_framework.authentication import BaseAuthentication, SessionAuthentication
from rest_framework.permissions import BasePermission, IsAdminUser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.schemas.inspectors import ViewInspector
from rest_framework.views import APIView

from . import cluster, permissions
from .api.permissions import ModelPermissions
from .api.views import QueueViewSet, StatsView, TaskViewSet, WorkerViewSet
from .conf import conf
from .models import Task
from .task import registry


def _login_url() -> str:
    try:
        return reverse("admin:login")
    except NoReverseMatch:
        return str(settings.LOGIN_URL)


def _refuse(request: HttpRequest, reason: str) -> HttpResponse:
    return render(request, "djq/forbidden.html",
                  {"login_url": _login_url(), "next": request.get_full_path(),
                   "reason": reason, "links": _links(),
                   "time_zone": timezone.get_current_timezone_name()}, status=403)


def staff_only(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Anonymous users go to the login page; signed-in users who are not staff, or who may
    not view tasks (:func:`djq.permissions.allowed`), get 403."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = request.user
        if not user.is_authenticated:
            return redirect_to_login(request.get_full_path(), _login_url())
        if not user.is_staff:
            return _refuse(request, "staff")
        if not permissions.allowed(user, permissions.VIEW_TASKS):
            return _refuse(request, permissions.needed(permissions.VIEW_TASKS))
        return view(request, *args, **kwargs)

    return wrapper


def _links() -> dict[str, str | None]:
    links: dict[str, str | None] = {}
    for key, name in (("admin", "admin:djq_task_changelist"), ("api", "djq-api:api-root")):
        try:
            links[key] = reverse(name)
        except NoReverseMatch:
            links[key] = None
    return links


def _page(request: HttpRequest, template: str, context: dict[str, Any]) -> HttpResponse:
    return render(request, template, {
        "links": _links(), "time_zone": timezone.get_current_timezone_name(),
        "can": permissions.allowed_actions(request.user), **context})


@staff_only
def monitor(request: HttpRequest) -> HttpResponse:
    """Workers, queues, charts and a live task table."""
    allowed = [name for name in conf.api_enqueue_allowlist if name in registry]
    may_send = permissions.allowed(request.user, permissions.ENQUEUE)
    choices = cluster.filter_choices(conf.database)  # the admin's filters offer the same
    return _page(request, "djq/monitor.html", {
        "task_names": choices["name"],
        "queue_names": choices["queue"],
        "states": choices["state"],
        "enqueue_names": allowed if may_send else [],
    })


@staff_only
def task_detail(request: HttpRequest, task_id: uuid.UUID) -> HttpResponse:
    """One task, refreshed live, with retry and revoke buttons."""
    task = get_object_or_404(Task.objects.using(conf.database).only("pk", "name", "state"),
                             pk=task_id)
    try:
        admin_url: str | None = reverse("admin:djq_task_change", args=[task.pk])
    except NoReverseMatch:
        admin_url = None
    return _page(request, "djq/task.html", {"task": task, "admin_url": admin_url})


class MonitorMixin:
    """Staff only, then the API's model permissions; session authentication, JSON only,
    left out of the API schema."""

    authentication_classes: Sequence[type[BaseAuthentication]] = [SessionAuthentication]
    renderer_classes: Sequence[type[BaseRenderer]] = [JSONRenderer]
    schema: ViewInspector | None = None

    def get_permissions(self) -> list[BasePermission]:
        return [IsAdminUser(), ModelPermissions()]


class MonitorTaskViewSet(MonitorMixin, TaskViewSet):
    pass


class MonitorWorkerViewSet(MonitorMixin, WorkerViewSet):
    pass


class MonitorQueueViewSet(MonitorMixin, QueueViewSet):
    pass


class MonitorStatsView(MonitorMixin, StatsView):
    pass


class ChartsView(MonitorMixin, APIView):
    """Throughput and failure rate by minute: ``?minutes=60`` (1 to 1440)."""

    def djq_action(self, request: Request) -> str | None:
        return permissions.VIEW_TASKS

    def get(self, request: Request) -> Response:
        try:
            minutes = int(request.query_params.get("minutes", 60))
        except ValueError:
            minutes = 60
        minutes = max(1, min(minutes, 24 * 60))
        return Response({"minutes": minutes, "series": cluster.throughput(minutes, conf.database)})


__all__ = ["monitor", "task_detail", "ChartsView", "staff_only"]
