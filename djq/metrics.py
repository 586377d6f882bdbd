"""``/djq/metrics``: Prometheus metrics, from the database, so every web process answers
the same figures.

Per queue: waiting, scheduled, reserved and running tasks, and the age of the oldest
waiting one; workers alive (in all and per queue). Per task name: tasks finished by
final state, retries, and a runtime histogram, summed from the counters each worker
writes with its heartbeat (``djq_worker.counters``; see :mod:`djq.worker.tally`) and
those of pruned worker rows (``djq_retired_counters``), so they never go backwards.
Counts of the last few seconds before a worker is killed are lost with it. A scrape
reads the waiting and in-flight partial indexes and the worker rows: its cost follows the
unfinished rows, not the history ``djq_task`` keeps, and past
:data:`djq.cluster.EXACT_UP_TO` waiting rows per queue and priority the waiting and
scheduled gauges are the planner's estimate (:func:`djq.cluster.queue_gauges`), so a
backlog of a million costs a scrape no more than one of ten thousand.

Access: a request with ``Authorization: Bearer <DJQ["metrics_token"]>`` (for Prometheus'
``authorization`` scrape setting), or a logged-in staff user allowed to see tasks.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Any

from django.db import connections
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector, CollectorRegistry

from . import broker, cluster, permissions
from .conf import conf
from .worker.tally import BUCKETS, merge


class DjqCollector(Collector):
    """Reads the figures from the database of ``using`` at each collect()."""

    def __init__(self, using: str | None = None) -> None:
        self.using = using or conf.database

    def collect(self) -> Iterator[Metric]:
        queues = cluster.queue_gauges(self.using)
        workers = cluster.metric_workers(self.using)
        with connections[self.using].cursor() as cursor:
            retired = broker.retired_counters(cursor)
        labels = ["queue"]
        families = {
            "waiting": GaugeMetricFamily(
                "djq_queue_waiting", "Tasks ready to run, not yet claimed (estimated past "
                f"{cluster.EXACT_UP_TO} per priority)", labels=labels),
            "scheduled": GaugeMetricFamily(
                "djq_queue_scheduled", "Tasks waiting for their eta, countdown or retry "
                f"delay (estimated past {cluster.EXACT_UP_TO} per priority)", labels=labels),
            "reserved": GaugeMetricFamily(
                "djq_queue_reserved", "Tasks claimed by a worker, not started",
                labels=labels),
            "running": GaugeMetricFamily(
                "djq_queue_running", "Tasks started and not finished", labels=labels),
            "oldest_waiting_age": GaugeMetricFamily(
                "djq_queue_oldest_waiting_age_seconds", "Seconds the oldest task ready to "
                "run has waited (0 when none waits)", labels=labels),
        }
        per_queue_workers: dict[str, int] = {q.queue: 0 for q in queues}
        alive = 0
        for _, _, worker_queues, is_alive, _ in workers:
            if is_alive:
                alive += 1
                for queue in str(worker_queues).split(","):
                    if queue:
                        per_queue_workers[queue] = per_queue_workers.get(queue, 0) + 1
        for q in queues:
            for key, family in families.items():
                family.add_metric([q.queue], float(getattr(q, key)))
        yield from families.values()
        yield GaugeMetricFamily("djq_workers_alive", "Workers with a current heartbeat",
                                value=alive)
        consumers = GaugeMetricFamily("djq_queue_workers_alive",
                                      "Live workers consuming the queue", labels=labels)
        for queue in sorted(per_queue_workers):
            consumers.add_metric([queue], per_queue_workers[queue])
        yield consumers
        yield from self._task_families(workers, retired)

    @staticmethod
    def _task_families(workers: list[tuple[int, str, str, bool, Any]],
                       retired: dict[str, Any]) -> Iterator[Metric]:
        tasks = merge(retired, *(counters for *_, counters in workers))["tasks"]
        finished = CounterMetricFamily(
            "djq_tasks_finished", "Tasks finished by workers, by final state",
            labels=["task", "state"])
        retried = CounterMetricFamily("djq_tasks_retried", "Task attempts that retried",
                                      labels=["task"])
        runtime = HistogramMetricFamily(
            "djq_task_runtime_seconds", "Seconds from hand-over to a pool process to the "
            "outcome", labels=["task"])
        bounds = [str(b) for b in BUCKETS] + ["+Inf"]
        for name in sorted(tasks):
            entry = tasks[name]
            for state in sorted(entry["states"]):
                finished.add_metric([name, state], entry["states"][state])
            retried.add_metric([name], entry["retried"])
            cumulative, total = [], 0
            for bound, count in zip(bounds, entry["buckets"], strict=True):
                total += count
                cumulative.append((bound, total))
            runtime.add_metric([name], cumulative, entry["sum"])
        yield finished
        yield retried
        yield runtime


def allowed(request: HttpRequest) -> bool:
    """The bearer token of ``DJQ["metrics_token"]``, or a staff user who may see tasks."""
    token = conf.metrics_token
    if token:
        given = request.headers.get("Authorization", "")
        if hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return True
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_active and user.is_staff
                and permissions.allowed(user, permissions.VIEW_TASKS))


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """The metrics in Prometheus' text format, or OpenMetrics when the scraper asks."""
    if not allowed(request):
        response = HttpResponse("Forbidden: a staff user or the metrics token is needed\n",
                                status=401 if conf.metrics_token else 403,
                                content_type="text/plain")
        if conf.metrics_token:
            response["WWW-Authenticate"] = 'Bearer realm="djq metrics"'
        return response
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DjqCollector())
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encoder(registry), content_type=content_type)
