"""``path("api/djq/", include("djq.api.urls"))``: the REST API and its OpenAPI schema."""

from __future__ import annotations

from typing import Any

from django.urls import URLPattern, URLResolver, path
from rest_framework.routers import DefaultRouter

from .beat import PeriodicTaskViewSet
from .views import (
    DocsView,
    QueueViewSet,
    RootView,
    SchemaView,
    StatsView,
    TaskViewSet,
    WorkerViewSet,
    docs_asset,
)

app_name = "djq-api"


class Router(DefaultRouter):
    APIRootView = RootView
    include_format_suffixes = False

    def get_api_root_view(self, api_urls: Any = None) -> Any:
        """The root links every endpoint: the viewsets, stats, the schema and its docs."""
        links = {prefix: self.routes[0].name.format(basename=basename)
                 for prefix, _viewset, basename in self.registry}
        links.update({"stats": "stats", "schema": "schema", "docs": "docs"})
        return self.APIRootView.as_view(api_root_dict=links)


router = Router()
router.register("tasks", TaskViewSet, basename="task")
router.register("workers", WorkerViewSet, basename="worker")
router.register("queues", QueueViewSet, basename="queue")
router.register("periodic-tasks", PeriodicTaskViewSet, basename="periodic-task")

urlpatterns: list[URLPattern | URLResolver] = [
    path("stats/", StatsView.as_view(), name="stats"),
    path("schema/", SchemaView.as_view(), name="schema"),
    path("docs/", DocsView.as_view(), name="docs"),
    path("docs/assets/<str:name>", docs_asset, name="docs-asset"),
    *router.urls,
]
