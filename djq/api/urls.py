"""``path("api/djq/", include("djq.api.urls"))``: the REST API and its OpenAPI schema."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path
from rest_framework.routers import DefaultRouter

from .beat import PeriodicTaskViewSet
from .views import QueueViewSet, RootView, SchemaView, StatsView, TaskViewSet, WorkerViewSet

app_name = "djq-api"


class Router(DefaultRouter):
    APIRootView = RootView
    include_format_suffixes = False


router = Router()
router.register("tasks", TaskViewSet, basename="task")
router.register("workers", WorkerViewSet, basename="worker")
router.register("queues", QueueViewSet, basename="queue")
router.register("periodic-tasks", PeriodicTaskViewSet, basename="periodic-task")  # issue 15

urlpatterns: list[URLPattern | URLResolver] = [
    path("stats/", StatsView.as_view(), name="stats"),
    path("schema/", SchemaView.as_view(), name="schema"),
    *router.urls,
]
