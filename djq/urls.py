"""``path("djq/", include("djq.urls"))``: the live monitor (staff only)."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, include, path
from rest_framework.routers import SimpleRouter

from . import metrics, views, views_beat

app_name = "djq"

data = SimpleRouter()
data.register("tasks", views.MonitorTaskViewSet, basename="task")
data.register("workers", views.MonitorWorkerViewSet, basename="worker")
data.register("queues", views.MonitorQueueViewSet, basename="queue")

urlpatterns: list[URLPattern | URLResolver] = [
    path("", views.monitor, name="monitor"),
    path("tasks/<uuid:task_id>/", views.task_detail, name="task"),
    path("periodic/", views_beat.periodic, name="periodic"),  # issue 15
    path("metrics", metrics.metrics, name="metrics"),  # Prometheus (token or staff)
    path("data/stats/", views.MonitorStatsView.as_view(), name="stats"),
    path("data/charts/", views.ChartsView.as_view(), name="charts"),
    path("data/", include(data.urls)),
]
