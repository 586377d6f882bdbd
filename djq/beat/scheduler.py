"""The scheduler: fires due periodic tasks, exactly once per fire time, however many
schedulers run (one in every ``djq_worker`` by default, or ``djq_beat`` alone).

A round is one transaction: lock the due rows (``FOR UPDATE SKIP LOCKED``: a row another
scheduler holds is skipped, it is being fired), record each fire time (unique per
schedule: a second record is a no-op and nothing is sent), send the task through djq's
publish path (publish signals, headers naming the schedule, the caller's transaction),
and advance ``next_run_at`` past now. A schedule that missed several fire times (every
scheduler was down) fires once for them, at its first missed time, as Celery beat does.

Between rounds the scheduler sleeps until the next fire time, at most ``max_interval``
seconds, and wakes at once on a NOTIFY from a schedule edit.
"""

from __future__ import annotations

import datetime
import logging
import os
import select
import socket
import threading
import time
from typing import Any

from django.db import connections, transaction

from .. import schedules
from ..conf import conf
from ..db import Listener
from ..exceptions import ImproperlyConfigured, ScheduleError
from . import sql

logger = logging.getLogger("djq.beat")

#: Headers of a periodic run (django-celery-beat's name, and the fire time).
HEADER_NAME = "periodic_task_name"
HEADER_FIRE_TIME = "periodic_fire_time"


def schedule_of(due: sql.Due) -> schedules.BaseSchedule:
    """The schedule of a claimed row."""
    if due.every is not None and due.period is not None:
        return schedules.schedule(datetime.timedelta(**{due.period: due.every}))
    if due.minute is not None:
        return schedules.crontab(due.minute, due.hour, due.day_of_week, due.day_of_month,
                                 due.month_of_year, tz=due.timezone or None)
    if due.clocked_time is not None:
        return schedules.clocked(due.clocked_time)
    raise ScheduleError(f"Periodic task {due.name!r} has no schedule")


def publish(name: str, task_name: str, args: Any, kwargs: Any, queue: str | None,
            priority: int | None, expires: float | None, fire_time: datetime.datetime,
            task_id: Any, using: str) -> Any:
    """Send one run of a periodic task through the normal publish path."""
    from ..task import registry, unregistered

    task = registry.get(task_name) or unregistered(task_name)
    expires_at = (fire_time + datetime.timedelta(seconds=expires)) if expires else None
    return task.apply_async(
        args=list(args or []), kwargs=dict(kwargs or {}), task_id=task_id, queue=queue,
        priority=priority, expires=expires_at, using=using,
        headers={HEADER_NAME: name, HEADER_FIRE_TIME: fire_time.isoformat()},
    )


def fire(due: sql.Due, now: datetime.datetime, using: str) -> bool:
    """Fire one claimed row (inside the round's transaction) and advance it. Returns
    whether a task was sent."""
    fire_time = due.next_run_at
    next_run: datetime.datetime | None = None
    sent = False
    try:
        sched = schedule_of(due)
        if not due.one_off:
            # Past now: the missed fire times (if any) are covered by this one.
            next_run = sched.next_fire(max(now, fire_time), fire_time)
    except ScheduleError:
        logger.exception("Periodic task name=%s has a bad schedule; disabled", due.name)
    task_id = sql.fire_task_id(due.id, fire_time)
    try:
        with transaction.atomic(using=using):  # a savepoint: one bad task spoils no other
            if sql.record_run(due.id, fire_time, task_id, using=using):
                publish(due.name, due.task, due.args, due.kwargs, due.queue, due.priority,
                        due.expires, fire_time, task_id, using)
                sent = True
    except Exception:  # noqa: BLE001 - a user's task or arguments; the loop goes on
        logger.exception("Periodic task name=%s task=%s could not be sent for %s",
                         due.name, due.task, fire_time.isoformat())
    sql.advance(due.id, next_run, True, now, 1 if sent else 0, using=using)
    if sent:
        logger.info("Scheduler: Sending due task %s (%s) id=%s fire_time=%s", due.name,
                    due.task, task_id, fire_time.isoformat())
    return sent


# Run records are pruned once a minute, up to 50 batches of 1,000 (10,000 schedules
# firing every minute make 10,000 a minute).
PRUNE_INTERVAL, PRUNE_BATCH, PRUNE_BATCHES = 60.0, 1000, 50

# How soon to look again at a due row another scheduler holds: it is normally firing
# it (milliseconds), but if that scheduler died mid-round its lock is gone shortly after.
RETRY_HELD = 0.1


def run_once(using: str | None = None, limit: int = 100) -> tuple[int, float | None]:
    """Fire what is due, a transaction per ``limit`` rows, until nothing due is left that
    this scheduler can lock. Returns (tasks sent, seconds until the next fire time, None
    if nothing is scheduled)."""
    alias = using or conf.database
    sent = 0
    while True:
        with transaction.atomic(using=alias):
            now, next_due, due = sql.claim_due(limit, using=alias)
            for row in due:
                sent += fire(row, now, alias)
        if not due:
            break
    if next_due is None:
        return sent, None
    wait = (next_due - now).total_seconds()
    return sent, wait if wait > 0 else RETRY_HELD


def run_now(periodic_task_id: int, using: str | None = None) -> Any:
    """Send a periodic task at once ("run now"), whatever its schedule, which is left
    as it is. Returns the ``AsyncResult``."""
    from django.utils import timezone

    from .models import PeriodicTask

    alias = using or conf.database
    with transaction.atomic(using=alias):
        pt = PeriodicTask.objects.using(alias).get(pk=periodic_task_id)
        now = timezone.now()
        task_id = sql.fire_task_id(pt.pk, now)
        sql.record_run(pt.pk, now, task_id, manual=True, using=alias)
        result = publish(pt.name, pt.task, pt.args, pt.kwargs, pt.queue, pt.priority,
                         pt.expires, now, task_id, alias)
        sql.count_manual_run(pt.pk, now, using=alias)
    return result


class Scheduler:
    """The scheduler loop, in a thread of its own (:meth:`start`) or in the caller's
    (:meth:`run`)."""

    def __init__(self, using: str | None = None, max_interval: float = 5.0,
                 sync: bool = True, batch: int = 100, hostname: str = "") -> None:
        self.using = using or conf.database
        self.max_interval = max_interval
        self.sync = sync
        self.batch = batch
        self.hostname = hostname
        self.stopping = threading.Event()
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.thread: threading.Thread | None = None
        self.listener: Listener | None = None
        self._conns: list[Any] = []  # psycopg connections to let go of in a forked child
        self.sent = 0
        self.next_prune = 0.0
        os.register_at_fork(after_in_child=self._after_fork_in_child)

    def start(self) -> threading.Thread:
        self.thread = threading.Thread(target=self.run, name="djq-beat", daemon=True)
        self.thread.start()
        return self.thread

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        try:
            self.wake_w.send(b"\0")
        except OSError:
            pass
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout)

    def _after_fork_in_child(self) -> None:
        # A pool process must not share the scheduler's sessions: close its copies of
        # their sockets without a goodbye (which would end them for the parent too).
        for conn in self._conns:
            if conn is not None and not conn.closed:
                try:
                    os.close(conn.fileno())
                except OSError:
                    pass

    def run(self) -> None:
        """Serve until :meth:`stop`; database errors are logged and retried."""
        logger.info("beat: Starting (%s)", self.hostname or "standalone")
        synced = not self.sync
        try:
            while not self.stopping.is_set():
                try:
                    if self.listener is None:
                        self.listener = Listener([sql.BEAT_CHANNEL], using=self.using)
                        connections[self.using].ensure_connection()
                        self._conns = [self.listener.conn, connections[self.using].connection]
                    if not synced:
                        from .sync import sync_beat_schedule

                        try:
                            sync_beat_schedule(using=self.using)
                        except ImproperlyConfigured as exc:
                            logger.error("beat: not started: %s", exc)
                            return
                        synced = True
                    self._wait(self._round())
                except Exception:  # noqa: BLE001 - loop boundary: log, reconnect, go on
                    logger.exception("beat: round failed; retrying")
                    self._reset()
                    self.stopping.wait(1.0)
        finally:
            self._reset()
            logger.info("beat: Stopped")

    def _round(self) -> float:
        # The thread keeps its connection between rounds (a broken one is dropped by
        # _reset and opened again), whatever CONN_MAX_AGE says: it is not a request.
        sent, wait = run_once(self.using, self.batch)
        self.sent += sent
        if time.monotonic() >= self.next_prune:
            self.next_prune = time.monotonic() + PRUNE_INTERVAL
            self.prune()
        return self.max_interval if wait is None else min(wait, self.max_interval)

    def prune(self) -> int:
        """Delete run records older than ``result_expires`` (at least an hour), in
        batches, until none is left or :data:`PRUNE_BATCHES` batches were deleted."""
        older_than = max(float(conf.result_expires or 0), 3600.0)
        deleted = 0
        for _ in range(PRUNE_BATCHES):
            count = sql.prune_runs(older_than, PRUNE_BATCH, self.using)
            deleted += count
            if count < PRUNE_BATCH:
                break
        return deleted

    def _wait(self, timeout: float) -> None:
        """Sleep until ``timeout``, a NOTIFY (a schedule changed) or :meth:`stop`."""
        assert self.listener is not None
        if self.listener.drain():
            return
        wake = self.wake_r.fileno()
        readable, _, _ = select.select([self.listener.fileno(), wake], [], [],
                                       max(timeout, 0.0))
        if wake in readable:
            try:
                self.wake_r.recv(64)
            except OSError:
                pass
        if self.listener.fileno() in readable:
            self.listener.drain()

    def _reset(self) -> None:
        if self.listener is not None:
            try:
                self.listener.close()
            except Exception:  # noqa: BLE001 - already broken
                pass
            self.listener = None
        connections[self.using].close()
        self._conns = []
