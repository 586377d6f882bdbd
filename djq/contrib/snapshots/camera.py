"""The built-in camera: each shutter stores per-cluster, per-queue and per-worker figures
in :class:`~.models.Snapshot` rows; each cleanup deletes rows older than ``keep``.

Counts come from the event stream (so workers need ``-E``): each task that ended or
retried since the previous shutter is counted once, even when ``maxrate`` skipped
shutters in between. Gauges come from the database at the shutter.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterable
from typing import Any

from django.db.models import Count, Q
from django.utils import timezone

from djq import states
from djq.conf import conf
from djq.events.snapshot import Polaroid
from djq.events.state import State
from djq.events.state import Task as StateTask

from .models import Snapshot

_COUNTED = "_snapshot_counted"  # set on a State task once its end is counted
_RETRY_COUNTED = "_snapshot_retried"  # the retry (timestamp) last counted


def percentile(values: list[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) of ``values``, linearly interpolated."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(pos), math.ceil(pos)
    if low == high:
        return ordered[int(pos)]
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


class Figures:
    """Counts and runtimes of one subject over an interval."""

    __slots__ = ("processed", "succeeded", "failed", "retried", "revoked", "runtimes")

    def __init__(self) -> None:
        self.processed = self.succeeded = self.failed = self.retried = self.revoked = 0
        self.runtimes: list[float] = []

    def ended(self, task: StateTask) -> None:
        self.processed += 1
        if task.state == states.SUCCESS:
            self.succeeded += 1
        elif task.state == states.FAILURE:
            self.failed += 1
        elif task.state == states.REVOKED:
            self.revoked += 1
        if isinstance(task.runtime, (int, float)):
            self.runtimes.append(float(task.runtime))

    def fields(self) -> dict[str, Any]:
        return {
            "processed": self.processed, "succeeded": self.succeeded, "failed": self.failed,
            "retried": self.retried, "revoked": self.revoked,
            "runtime_p50": percentile(self.runtimes, 50),
            "runtime_p90": percentile(self.runtimes, 90),
            "runtime_p99": percentile(self.runtimes, 99),
            "runtime_max": max(self.runtimes) if self.runtimes else None,
        }


class Camera(Polaroid):
    """Stores :class:`Snapshot` rows; prunes those older than :attr:`keep`."""

    #: How long snapshots are kept.
    keep = datetime.timedelta(days=7)
    #: The Django database alias to write to (default: djq's ``database`` setting).
    using: str | None = None

    def __init__(self, state: State, *args: Any, **kwargs: Any) -> None:
        super().__init__(state, *args, **kwargs)
        self.last_shutter: datetime.datetime | None = None
        self._baseline()

    def _baseline(self) -> None:
        # Tasks that had ended before the camera started are not this camera's to count.
        for _, task in self.state.itertasks():
            if task.ready:
                setattr(task, _COUNTED, True)
            if task.retried:
                setattr(task, _RETRY_COUNTED, task.retried)

    # -- shutter ---------------------------------------------------------------------
    def on_shutter(self, state: State) -> None:
        now = timezone.now()
        interval = ((now - self.last_shutter).total_seconds() if self.last_shutter
                    else self.freq)
        self.last_shutter = now
        rows = self.snapshot_rows(state, now, interval)
        Snapshot.objects.using(self._db()).bulk_create(rows)

    def _db(self) -> str:
        return self.using or conf.database

    def count(self, tasks: Iterable[StateTask]) -> tuple[Figures, dict[str, Figures],
                                                        dict[str, Figures]]:
        """Figures of the tasks that ended or retried since they were last counted:
        (cluster, by worker, by queue)."""
        total = Figures()
        by_worker: dict[str, Figures] = {}
        by_queue: dict[str, Figures] = {}
        for task in tasks:
            ended = task.ready and not getattr(task, _COUNTED, False)
            retried = bool(task.retried) and getattr(task, _RETRY_COUNTED, None) != task.retried
            if not (ended or retried):
                continue
            subjects = [total]
            if task.worker is not None and task.worker.hostname:
                subjects.append(by_worker.setdefault(task.worker.hostname, Figures()))
            queue = task.routing_key or task.queue
            if queue:
                subjects.append(by_queue.setdefault(queue, Figures()))
            for figures in subjects:
                if ended:
                    figures.ended(task)
                if retried:
                    figures.retried += 1
            if ended:
                setattr(task, _COUNTED, True)
            if retried:
                setattr(task, _RETRY_COUNTED, task.retried)
        return total, by_worker, by_queue

    def snapshot_rows(self, state: State, now: datetime.datetime,
                      interval: float) -> list[Snapshot]:
        from djq.models import Status
        from djq.models import Task as TaskRow
        from djq.models import Worker as WorkerRow

        total, by_worker, by_queue = self.count(task for _, task in state.itertasks())
        db = self._db()
        waiting = {r["queue"]: r for r in (
            TaskRow.objects.using(db).waiting().values("queue")
            .annotate(due=Count("id", filter=Q(run_at__lte=now)),
                      later=Count("id", filter=Q(run_at__gt=now))))}
        inflight: dict[tuple[str, str | None, int], int] = {
            (r["queue"], r["worker"], r["status"]): r["n"] for r in (
                TaskRow.objects.using(db).in_flight()
                .values("queue", "worker", "status").annotate(n=Count("id")))}
        online: dict[str, list[str]] = {}
        for w in WorkerRow.objects.using(db).alive(now):
            online[w.hostname] = [q for q in w.queues.split(",") if q]

        def gauge(status: int, queue: str | None = None, worker: str | None = None) -> int:
            return sum(n for (q, w, s), n in inflight.items() if s == status
                       and (queue is None or q == queue) and (worker is None or w == worker))

        base = {"taken_at": now, "interval": interval}
        rows = [Snapshot(
            kind=Snapshot.Kind.CLUSTER, name="", **base, **total.fields(),
            active=gauge(Status.STARTED), reserved=gauge(Status.CLAIMED),
            queue_depth=sum(r["due"] for r in waiting.values()),
            scheduled=sum(r["later"] for r in waiting.values()), workers=len(online),
        )]
        queues = sorted(set(waiting) | set(by_queue) | {q for q, _, _ in inflight}
                        | {q for qs in online.values() for q in qs})
        for queue in queues:
            counts = waiting.get(queue) or {"due": 0, "later": 0}
            rows.append(Snapshot(
                kind=Snapshot.Kind.QUEUE, name=queue, **base,
                **(by_queue.get(queue) or Figures()).fields(),
                active=gauge(Status.STARTED, queue=queue),
                reserved=gauge(Status.CLAIMED, queue=queue),
                queue_depth=counts["due"], scheduled=counts["later"],
                workers=sum(1 for qs in online.values() if queue in qs),
            ))
        workers = sorted(set(online) | set(by_worker) | {w for _, w, _ in inflight if w})
        for hostname in workers:
            rows.append(Snapshot(
                kind=Snapshot.Kind.WORKER, name=hostname, **base,
                **(by_worker.get(hostname) or Figures()).fields(),
                active=gauge(Status.STARTED, worker=hostname),
                reserved=gauge(Status.CLAIMED, worker=hostname),
                alive=hostname in online,
            ))
        return rows

    # -- cleanup ---------------------------------------------------------------------
    def on_cleanup(self) -> None:
        cutoff = timezone.now() - self.keep
        Snapshot.objects.using(self._db()).filter(taken_at__lt=cutoff).delete()


__all__ = ["Camera", "percentile"]
