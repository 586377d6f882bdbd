"""Read-only figures for the admin, the API and the monitor: queue depths and rates,
task counts, throughput by minute, worker liveness and a cheap estimate of the table size.

Each query is shaped to be answered from one of ``djq_task``'s indexes, so its cost
follows the number of unfinished or recent rows, never the history the table keeps:
waiting rows come from the ready index, running rows from the in-flight index, recent
results from the done index (``date_done``) and recent enqueues from the created index.
The charts read finished rows by minute for now; :func:`throughput` is the one place to
change if they move to snapshot tables.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from django.db import connections
from django.db.models import Count, Min, Q
from django.db.models.functions import TruncMinute
from django.utils import timezone

from . import broker, states
from .conf import conf
from .models import Task, Worker

#: Rates are averaged over this many seconds.
RATE_WINDOW = 300.0


def estimated_task_count(using: str | None = None) -> int | None:
    """The planner's estimate of ``djq_task``'s row count (``pg_class.reltuples``), kept
    up to date by autovacuum/ANALYZE; None if the table was never analyzed."""
    with connections[using or conf.database].cursor() as cursor:
        # A catalog read, not queue SQL: it reads no row of djq_task.
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = 'djq_task'::regclass")
        row = cursor.fetchone()
    if row is None or row[0] is None or row[0] < 0:
        return None
    return int(row[0])


def alive_since(now: datetime.datetime | None = None) -> datetime.datetime:
    """Workers whose last heartbeat is older than this are dead (``worker_lease``)."""
    return (now or timezone.now()) - datetime.timedelta(seconds=float(conf.worker_lease))


def is_alive(worker: Worker, now: datetime.datetime | None = None) -> bool:
    """A worker is alive while it has not stopped and its lease has not run out."""
    return worker.stopped_at is None and worker.last_heartbeat >= alive_since(now)


def alive_workers(using: str | None = None) -> list[Worker]:
    return list(Worker.objects.using(using or conf.database).filter(
        stopped_at__isnull=True, last_heartbeat__gte=alive_since()).order_by("hostname"))


@dataclasses.dataclass(frozen=True, slots=True)
class QueueStats:
    """One queue: how much waits, how old the oldest is, how fast it moves."""

    name: str
    waiting: int  # runnable now
    scheduled: int  # waiting for an eta/countdown or a retry delay
    active: int  # claimed or running
    oldest_waiting_age: float | None  # seconds the oldest runnable task has waited
    enqueued_per_minute: float
    processed_per_minute: float
    failed_per_minute: float
    workers: int  # live workers consuming it

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def queue_stats(using: str | None = None) -> list[QueueStats]:
    """Every queue that has tasks, recent traffic or a live worker, sorted by name."""
    db = using or conf.database
    tasks = Task.objects.using(db)
    now = timezone.now()
    since = now - datetime.timedelta(seconds=RATE_WINDOW)
    per_minute = 60.0 / RATE_WINDOW
    waiting: dict[str, Any] = {
        r["queue"]: r for r in tasks.filter(status=broker.WAITING).values("queue").annotate(
            ready=Count("run_at", filter=Q(run_at__lte=now)),
            later=Count("run_at", filter=Q(run_at__gt=now)),
            oldest=Min("run_at", filter=Q(run_at__lte=now)),
        )
    }
    active = {
        r["queue"]: r["n"] for r in tasks.filter(
            status__in=[broker.CLAIMED, broker.STARTED]).values("queue").annotate(n=Count("*"))
    }
    done: dict[str, Any] = {
        r["queue"]: r for r in tasks.filter(
            status=broker.DONE, date_done__gte=since).values("queue").annotate(
            n=Count("*"), failed=Count("date_done", filter=Q(state=states.FAILURE)))
    }
    enqueued = {
        r["queue"]: r["n"] for r in tasks.filter(date_created__gte=since).values(
            "queue").annotate(n=Count("*"))
    }
    consumers: dict[str, int] = {}
    for worker in alive_workers(db):
        for name in filter(None, (q.strip() for q in worker.queues.split(","))):
            consumers[name] = consumers.get(name, 0) + 1
    names = set(waiting) | set(active) | set(done) | set(enqueued) | set(consumers)
    names.add(conf.task_default_queue)
    result = []
    for name in sorted(names):
        w: dict[str, Any] = waiting.get(name) or {}
        oldest = w.get("oldest")
        d: dict[str, Any] = done.get(name) or {}
        result.append(QueueStats(
            name=name,
            waiting=int(w.get("ready") or 0),
            scheduled=int(w.get("later") or 0),
            active=int(active.get(name) or 0),
            oldest_waiting_age=max(0.0, (now - oldest).total_seconds()) if oldest else None,
            enqueued_per_minute=round(enqueued.get(name, 0) * per_minute, 2),
            processed_per_minute=round(int(d.get("n") or 0) * per_minute, 2),
            failed_per_minute=round(int(d.get("failed") or 0) * per_minute, 2),
            workers=consumers.get(name, 0),
        ))
    return result


def task_stats(owner: str | None = None, using: str | None = None) -> dict[str, Any]:
    """Counts of unfinished tasks by status and state, finished ones of the last hour by
    state, rates over the last five minutes, and the live workers.

    With ``owner``, only that owner's tasks are counted (and no table-wide estimate)."""
    db = using or conf.database
    tasks = Task.objects.using(db)
    if owner is not None:
        tasks = tasks.filter(owner=owner)
    now = timezone.now()
    since = now - datetime.timedelta(seconds=RATE_WINDOW)
    per_minute = 60.0 / RATE_WINDOW
    # Two queries, one per partial index (waiting rows; claimed or started rows).
    waiting = tasks.filter(status=broker.WAITING).aggregate(
        ready=Count("run_at", filter=Q(run_at__lte=now)),
        later=Count("run_at", filter=Q(run_at__gt=now)))
    running = {r["status"]: r["n"] for r in tasks.filter(
        status__in=[broker.CLAIMED, broker.STARTED]).values("status").annotate(n=Count("*"))}
    unfinished: dict[str, int] = {}
    for phase in (Q(status=broker.WAITING), Q(status__in=[broker.CLAIMED, broker.STARTED])):
        for r in tasks.filter(phase).values("state").annotate(n=Count("*")).order_by():
            unfinished[r["state"]] = unfinished.get(r["state"], 0) + r["n"]
    hour = {r["state"]: r["n"] for r in tasks.filter(
        status=broker.DONE, date_done__gte=now - datetime.timedelta(hours=1)).values(
        "state").annotate(n=Count("*")).order_by()}
    recent = tasks.filter(status=broker.DONE, date_done__gte=since).aggregate(
        n=Count("*"), failed=Count("date_done", filter=Q(state=states.FAILURE)))
    enqueued = tasks.filter(date_created__gte=since).count()
    workers = alive_workers(db)
    return {
        "tasks": {
            "waiting": int(waiting["ready"] or 0),
            "scheduled": int(waiting["later"] or 0),
            "claimed": int(running.get(broker.CLAIMED, 0)),
            "started": int(running.get(broker.STARTED, 0)),
            "total_estimate": None if owner is not None else estimated_task_count(db),
        },
        "unfinished_by_state": dict(sorted(unfinished.items())),
        "finished_last_hour": dict(sorted(hour.items())),
        "rates": {
            "enqueued_per_minute": round(enqueued * per_minute, 2),
            "processed_per_minute": round(int(recent["n"] or 0) * per_minute, 2),
            "failed_per_minute": round(int(recent["failed"] or 0) * per_minute, 2),
        },
        "workers": {
            "alive": len(workers),
            "processes": sum(w.concurrency for w in workers),
            "active": sum(w.active for w in workers),
        },
    }


def throughput(minutes: int = 60, using: str | None = None) -> list[dict[str, Any]]:
    """Per minute over the last ``minutes`` (oldest first, every minute present):
    tasks enqueued, finished, succeeded and failed, and the failure rate (0..1; None for a
    minute in which nothing finished)."""
    db = using or conf.database
    minutes = max(1, min(int(minutes), 24 * 60))
    end = timezone.now().replace(second=0, microsecond=0)
    start = end - datetime.timedelta(minutes=minutes - 1)
    tasks = Task.objects.using(db)
    done: dict[Any, Any] = {
        r["minute"]: r for r in tasks.filter(status=broker.DONE, date_done__gte=start).annotate(
            minute=TruncMinute("date_done")).values("minute").annotate(
            n=Count("*"), ok=Count("date_done", filter=Q(state=states.SUCCESS)),
            failed=Count("date_done", filter=Q(state=states.FAILURE))).order_by()
    }
    created = {
        r["minute"]: r["n"] for r in tasks.filter(date_created__gte=start).annotate(
            minute=TruncMinute("date_created")).values("minute").annotate(
            n=Count("*")).order_by()
    }
    series = []
    for i in range(minutes):
        minute = start + datetime.timedelta(minutes=i)
        d: dict[str, Any] = done.get(minute) or {}
        processed = int(d.get("n") or 0)
        failed = int(d.get("failed") or 0)
        series.append({
            "minute": minute.isoformat(),
            "enqueued": int(created.get(minute) or 0),
            "processed": processed,
            "succeeded": int(d.get("ok") or 0),
            "failed": failed,
            # No finished task that minute: no rate (a gap in the chart), not 0%.
            "failure_rate": round(failed / processed, 4) if processed else None,
        })
    return series


#: How many of the newest tasks :func:`seen_values` reads (through the created index).
RECENT_ROWS = 10_000


CHOICE_FIELDS = ("name", "queue", "state")


def seen_values(using: str | None = None) -> dict[str, set[str]]:
    """The names, queues and states (:data:`CHOICE_FIELDS`) among the unfinished tasks
    and the :data:`RECENT_ROWS` newest ones: what the admin's and the monitor's filters
    offer beyond the registry. Two queries, never a ``DISTINCT`` over the table: the
    unfinished rows come from the status indexes, the newest through ``djq_task_created``
    with a LIMIT."""
    tasks = Task.objects.using(using or conf.database)
    rows = set(tasks.filter(status__in=[broker.WAITING, broker.CLAIMED, broker.STARTED])
               .order_by().values_list(*CHOICE_FIELDS).distinct())
    rows.update(tasks.order_by("-date_created", "-id").values_list(*CHOICE_FIELDS)
                [:RECENT_ROWS])
    return {field: {row[i] for row in rows if row[i]} for i, field in enumerate(CHOICE_FIELDS)}


def filter_choices(using: str | None = None) -> dict[str, list[str]]:
    """The choices of the task filters, shared by the admin and the monitor:

    - ``name``: the registered task names (Celery's built-ins left out) and any the data
      holds, registered or not;
    - ``queue``: the default queue, the tasks' own, those workers read, and those the data
      holds, including queues no worker reads (the stuck ones);
    - ``state``: Celery's states and the custom ones (``PROGRESS``) the data holds.
    """
    from .task import registry

    db = using or conf.database
    seen = seen_values(db)
    names = {name for name in registry if not name.startswith("celery.")}
    queues = {conf.task_default_queue}
    queues.update(t.queue for t in registry.values() if t.queue)
    for listed in Worker.objects.using(db).values_list("queues", flat=True):
        queues.update(q.strip() for q in listed.split(",") if q.strip())
    return {
        "name": sorted(names | seen["name"]),
        "queue": sorted(queues | seen["queue"]),
        "state": sorted(set(states.ALL_STATES) | seen["state"]),
    }


__all__ = ["QueueStats", "queue_stats", "task_stats", "throughput", "estimated_task_count",
           "alive_workers", "is_alive", "alive_since", "seen_values", "filter_choices"]
