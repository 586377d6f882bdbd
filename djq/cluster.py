"""The read side: what the workers, the queues and the tasks look like, read from the
database for ``djq status``/``djq inspect``, the admin, the API, the monitor and the
metrics. Nothing here writes.

Each query is shaped to be answered from one of ``djq_task``'s indexes (through the
QuerySets of :mod:`djq.models` or the statements of ``djq/sql/read.sql``), so its cost
follows the number of unfinished or recent rows, never the history the table keeps:
waiting rows come from the ready index, running rows from the in-flight index, recent
results from the done index (``date_done``) and recent enqueues from the created index.
The charts read finished rows by minute for now; :func:`throughput` is the one place to
change if they move to snapshot tables.

``inspect``: Celery asks each worker over the broker and waits for replies; djq's workers
keep their truth in PostgreSQL, so the answers come from there and cover workers on every
machine:

- the nodes online are the workers whose heartbeat lease is current;
- ``reserved`` are rows a worker has claimed but not started, ``active`` the rows it
  has started, ``scheduled`` the waiting rows whose time (eta, countdown, retry) has not
  come, and ``revoked`` the rows that ended REVOKED;
- ``stats`` is each worker's heartbeat row (pid, pool, concurrency, uptime, totals, load).

Entries are shaped like Celery's replies (``Request.info()``), with arguments as the
JSON they travel in.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import uuid
from collections.abc import Iterable
from typing import Any

from django.db import connections
from django.db.models import Count, Min, Q
from django.db.models.functions import TruncMinute
from django.utils import timezone

from . import sql, states
from .conf import conf
from .models import Status, Task, TaskQuerySet, Worker


@dataclasses.dataclass(frozen=True, slots=True)
class Node:
    """A worker online, as its heartbeat row describes it."""

    id: int
    hostname: str
    pid: int
    pool: str
    concurrency: int
    queues: tuple[str, ...]
    started_at: datetime.datetime
    last_heartbeat: datetime.datetime
    processed: int
    failed: int
    active: int
    loadavg: tuple[float, ...]
    sw_ver: str
    registered: tuple[str, ...] | None = None  # None: a worker that did not record it

    @classmethod
    def from_row(cls, row: Worker) -> Node:
        return cls(
            id=row.id, hostname=row.hostname, pid=row.pid, pool=row.pool,
            concurrency=row.concurrency,
            queues=tuple(q for q in row.queues.split(",") if q),
            started_at=row.started_at, last_heartbeat=row.last_heartbeat,
            processed=row.processed, failed=row.failed, active=row.active,
            loadavg=_loadavg(row.loadavg), sw_ver=row.sw_ver,
            registered=None if row.registered is None else tuple(row.registered),
        )

    def stats(self, now: datetime.datetime | None = None) -> dict[str, Any]:
        """Celery-like ``inspect stats`` reply of this node."""
        now = now or timezone.now()
        return {
            "id": self.id,
            "pid": self.pid,
            "pool": {"implementation": self.pool, "max-concurrency": self.concurrency},
            "queues": list(self.queues),
            "uptime": round((now - self.started_at).total_seconds(), 3),
            "started_at": self.started_at.isoformat(),
            "last_heartbeat": self.last_heartbeat.isoformat(),
            "processed": self.processed,
            "failed": self.failed,
            "active": self.active,
            "loadavg": list(self.loadavg),
            "sw_ver": self.sw_ver,
        }


def _loadavg(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x)
    except ValueError:
        return ()


def _tasks(using: str | None) -> TaskQuerySet:
    return Task.objects.using(using or conf.database)


def nodes(using: str | None = None) -> list[Node]:
    """Workers online (lease current), by hostname; of several processes sharing a
    hostname, the newest."""
    rows = (Worker.objects.using(using or conf.database).alive()
            .order_by("hostname", "started_at"))
    by_name: dict[str, Node] = {}
    for row in rows:
        by_name[row.hostname] = Node.from_row(row)
    return list(by_name.values())


def _json(text: str | None, default: Any) -> Any:
    if text is None:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return text


def _ts(value: datetime.datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _iso(value: datetime.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def request_info(row: Task) -> dict[str, Any]:
    """A task row as Celery's ``Request.info()`` shows it (plus djq's own fields)."""
    return {
        "id": str(row.id),
        "name": row.name,
        "args": _json(row.args, []),
        "kwargs": _json(row.kwargs, {}),
        "type": row.name,
        "hostname": row.worker,
        "time_start": _ts(row.date_started),
        "acknowledged": row.status == Status.STARTED,
        "delivery_info": {"exchange": "", "routing_key": row.queue, "priority": row.priority,
                          "redelivered": False},
        "worker_pid": None,
        "state": row.state,
        "retries": row.retries,
        "eta": _iso(row.eta),
        "expires": _iso(row.expires),
    }


def _by_worker(status: int, hostnames: Iterable[str],
               using: str | None) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in hostnames}
    rows = (_tasks(using).filter(status=status)
            .order_by("date_claimed", "date_created"))
    for row in rows:
        if row.worker in out:
            out[row.worker].append(request_info(row))
    return out


def active(hostnames: Iterable[str] | None = None,
           using: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """Tasks each node is running (status started), by node."""
    names = [n.hostname for n in nodes(using)] if hostnames is None else list(hostnames)
    return _by_worker(Status.STARTED, names, using)


def reserved(hostnames: Iterable[str] | None = None,
             using: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """Tasks each node has claimed and not started yet (prefetched), by node."""
    names = [n.hostname for n in nodes(using)] if hostnames is None else list(hostnames)
    return _by_worker(Status.CLAIMED, names, using)


def scheduled(using: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """Waiting tasks whose time has not come (eta, countdown, retry), by queue; no
    worker holds them until then. Entries as Celery's: ``{eta, priority, request}``."""
    now = timezone.now()
    rows = _tasks(using).waiting().filter(run_at__gt=now).order_by("run_at")
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(row.queue, []).append(
            {"eta": row.run_at.isoformat(), "priority": row.priority,
             "request": request_info(row)})
    return out


def revoked(limit: int = 50000, using: str | None = None) -> list[str]:
    """Ids of revoked tasks still kept, newest first (Celery keeps 50000 too)."""
    rows = (_tasks(using).done().filter(state=states.REVOKED)
            .order_by("-date_done").values_list("id", flat=True)[:limit])
    return [str(i) for i in rows]


def stats(using: str | None = None) -> dict[str, dict[str, Any]]:
    """Each node's heartbeat row, as ``inspect stats`` shows it."""
    now = timezone.now()
    return {n.hostname: n.stats(now) for n in nodes(using)}


def registered(using: str | None = None) -> dict[str, list[str]]:
    """Each node's task names, as the worker recorded them when it started. A worker of
    an older djq recorded none: it is shown this process's names, as before."""
    from .task import registry

    local = sorted(registry)
    return {n.hostname: local if n.registered is None else list(n.registered)
            for n in nodes(using)}


def _label(row: Task, now: datetime.datetime) -> str:
    if row.status == Status.STARTED:
        return "active"
    if row.status == Status.CLAIMED:
        return "reserved"
    if row.status == Status.WAITING:
        return "scheduled" if row.run_at > now else "waiting"
    if row.status == Status.DONE:
        return "done"
    return Status(row.status).label if row.status in Status.values else str(row.status)


def query_task(ids: Iterable[str | uuid.UUID],
               using: str | None = None) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Where each task is: ``({holder: {id: [label, info]}}, unknown ids)``. The holder
    is the worker that claimed it, or ``queue:<name>`` for a waiting one; the label is
    Celery's ``active``/``reserved``/``scheduled``, or ``waiting``/``done``."""
    wanted = [uuid.UUID(str(i)) for i in ids]
    rows = {row.id: row for row in _tasks(using).filter(id__in=wanted)}
    now = timezone.now()
    out: dict[str, dict[str, Any]] = {}
    unknown: list[str] = []
    for tid in wanted:
        row = rows.get(tid)
        if row is None:
            unknown.append(str(tid))
            continue
        holder = row.worker if row.worker and row.status != Status.WAITING \
            else f"queue:{row.queue}"
        info = request_info(row)
        info["date_done"] = _iso(row.date_done)
        out.setdefault(holder, {})[str(tid)] = [_label(row, now), info]
    return out, unknown


def waiting_counts(queues: list[str] | None = None,
                   using: str | None = None) -> dict[str, int]:
    """How many tasks wait in each queue (what ``purge`` would remove)."""
    qs = _tasks(using).waiting()
    if queues:
        qs = qs.filter(queue__in=queues)
    return {row["queue"]: row["n"] for row in
            qs.values("queue").annotate(n=Count("id")).order_by("queue")}



# --- figures: the admin, the API, the monitor ---------------------------------------

#: Rates are averaged over this many seconds.
RATE_WINDOW = 300.0


def estimated_task_count(using: str | None = None) -> int | None:
    """The planner's estimate of ``djq_task``'s row count (``pg_class.reltuples``), kept
    up to date by autovacuum/ANALYZE; None if the table was never analyzed."""
    with connections[using or conf.database].cursor() as cursor:
        cursor.execute(sql.query("task_count_estimate"))
        row = cursor.fetchone()
    if row is None or row[0] is None or row[0] < 0:
        return None
    return int(row[0])


def _alive_workers(using: str) -> list[Worker]:
    return list(Worker.objects.using(using).alive().order_by("hostname"))


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
        r["queue"]: r for r in tasks.waiting().values("queue").annotate(
            ready=Count("run_at", filter=Q(run_at__lte=now)),
            later=Count("run_at", filter=Q(run_at__gt=now)),
            oldest=Min("run_at", filter=Q(run_at__lte=now)),
        )
    }
    active = {
        r["queue"]: r["n"] for r in tasks.in_flight().values("queue").annotate(n=Count("*"))
    }
    done: dict[str, Any] = {
        r["queue"]: r for r in tasks.done().filter(date_done__gte=since).values(
            "queue").annotate(
            n=Count("*"), failed=Count("date_done", filter=Q(state=states.FAILURE)))
    }
    enqueued = {
        r["queue"]: r["n"] for r in tasks.filter(date_created__gte=since).values(
            "queue").annotate(n=Count("*"))
    }
    consumers: dict[str, int] = {}
    for worker in _alive_workers(db):
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
    waiting = tasks.waiting().aggregate(
        ready=Count("run_at", filter=Q(run_at__lte=now)),
        later=Count("run_at", filter=Q(run_at__gt=now)))
    running = {r["status"]: r["n"] for r in tasks.in_flight().values("status").annotate(
        n=Count("*"))}
    unfinished: dict[str, int] = {}
    for phase in (tasks.waiting(), tasks.in_flight()):
        for r in phase.values("state").annotate(n=Count("*")).order_by():
            unfinished[r["state"]] = unfinished.get(r["state"], 0) + r["n"]
    hour = {r["state"]: r["n"] for r in tasks.done().filter(
        date_done__gte=now - datetime.timedelta(hours=1)).values(
        "state").annotate(n=Count("*")).order_by()}
    recent = tasks.done().filter(date_done__gte=since).aggregate(
        n=Count("*"), failed=Count("date_done", filter=Q(state=states.FAILURE)))
    enqueued = tasks.filter(date_created__gte=since).count()
    workers = _alive_workers(db)
    return {
        "tasks": {
            "waiting": int(waiting["ready"] or 0),
            "scheduled": int(waiting["later"] or 0),
            "claimed": int(running.get(Status.CLAIMED, 0)),
            "started": int(running.get(Status.STARTED, 0)),
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
        r["minute"]: r for r in tasks.done().filter(date_done__gte=start).annotate(
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
    rows = set(tasks.unfinished().order_by().values_list(*CHOICE_FIELDS).distinct())
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


# --- gauges: /djq/metrics -------------------------------------------------------------

#: Per queue, priority and kind (runnable, scheduled), the waiting rows a scrape counts
#: one by one; a queue with more is given the planner's estimate (see queue_gauges).
EXACT_UP_TO = 10_000


@dataclasses.dataclass(frozen=True, slots=True)
class QueueGauges:
    """One queue's figures for the metrics endpoint."""

    queue: str
    waiting: int = 0  # runnable now
    scheduled: int = 0  # waiting for its eta, countdown or retry delay
    reserved: int = 0  # claimed by a worker, not started
    running: int = 0  # started
    oldest_waiting_age: float = 0.0  # seconds since the oldest runnable row became so


def queue_gauges(using: str | None = None) -> list[QueueGauges]:
    """Per queue: waiting, scheduled, reserved, running, oldest waiting age.

    ``waiting`` and ``scheduled`` are exact up to :data:`EXACT_UP_TO` rows per priority;
    beyond, they are the planner's estimate from the statistics autovacuum keeps (never
    less than the rows counted), so that a scrape costs the same with a million tasks
    queued as with ten thousand. The reserved and running counts and the age are exact."""
    cap = EXACT_UP_TO
    figures: dict[str, dict[str, Any]] = {}
    estimate: set[tuple[str, str]] = set()
    with connections[using or conf.database].cursor() as cursor:
        cursor.execute(sql.query("queue_waiting"), {"cap": cap})
        for queue, runnable, later, age in cursor.fetchall():
            f = figures.setdefault(queue, {"waiting": 0, "scheduled": 0,
                                           "oldest_waiting_age": 0.0})
            f["waiting"] += int(runnable)
            f["scheduled"] += int(later)
            f["oldest_waiting_age"] = max(f["oldest_waiting_age"], float(age))
            estimate.update((queue, key) for key, n in (("waiting", runnable),
                                                        ("scheduled", later))
                            if n >= cap)
        for queue, key in sorted(estimate):
            cursor.execute(sql.query(f"queue_{key}_estimate"), [queue])
            figures[queue][key] = max(figures[queue][key], _plan_rows(cursor.fetchone()))
        cursor.execute(sql.query("queue_in_flight"))
        for queue, reserved, running in cursor.fetchall():
            figures.setdefault(queue, {}).update(reserved=int(reserved), running=int(running))
    return [QueueGauges(queue, **figures[queue]) for queue in sorted(figures)]


def _plan_rows(row: Any) -> int:
    plan = json.loads(row[0]) if isinstance(row[0], str) else row[0]
    return int(plan[0]["Plan"]["Plan Rows"])


def metric_workers(using: str | None = None) -> list[tuple[int, str, str, bool, Any]]:
    """(id, hostname, queues, alive, counters) of every worker row not yet pruned
    (stopped ones keep their final counters until then)."""
    now = timezone.now()
    rows = Worker.objects.using(using or conf.database).only(
        "id", "hostname", "queues", "stopped_at", "last_heartbeat", "counters")
    return [(w.id, w.hostname, w.queues, w.is_alive(now), w.counters) for w in rows]
