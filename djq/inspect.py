"""What ``djq status`` and ``djq inspect`` answer, read from the database.

Celery asks each worker over the broker and waits for replies; djq's workers keep their
truth in PostgreSQL, so the answers come from there and cover workers on every machine:

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

from django.utils import timezone

from .conf import conf
from .models import Status, Task, Worker
from .states import REVOKED


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


def _using(using: str | None) -> str:
    return using or conf.database


def nodes(using: str | None = None) -> list[Node]:
    """Workers online (lease current), by hostname; of several processes sharing a
    hostname, the newest."""
    since = timezone.now() - datetime.timedelta(seconds=float(conf.worker_lease))
    rows = (Worker.objects.using(_using(using))
            .filter(stopped_at__isnull=True, last_heartbeat__gte=since)
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
    rows = (Task.objects.using(_using(using)).filter(status=status)
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
    rows = (Task.objects.using(_using(using))
            .filter(status=Status.WAITING, run_at__gt=now).order_by("run_at"))
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(row.queue, []).append(
            {"eta": row.run_at.isoformat(), "priority": row.priority,
             "request": request_info(row)})
    return out


def revoked(limit: int = 50000, using: str | None = None) -> list[str]:
    """Ids of revoked tasks still kept, newest first (Celery keeps 50000 too)."""
    rows = (Task.objects.using(_using(using)).filter(status=Status.DONE, state=REVOKED)
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
    rows = {row.id: row for row in Task.objects.using(_using(using)).filter(id__in=wanted)}
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
    from django.db.models import Count

    qs = Task.objects.using(_using(using)).filter(status=Status.WAITING)
    if queues:
        qs = qs.filter(queue__in=queues)
    return {row["queue"]: row["n"] for row in
            qs.values("queue").annotate(n=Count("id")).order_by("queue")}


__all__ = [
    "Node", "nodes", "active", "reserved", "scheduled", "revoked", "stats", "registered",
    "query_task", "request_info", "waiting_counts",
]
