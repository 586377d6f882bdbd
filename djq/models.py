"""djq's rows. Queue logic lives in :mod:`djq.broker`; this module only describes tables.

One row of :class:`Task` holds a task for its whole life: its message while it waits,
its claim while a worker holds it, and its result once it is done. ``status`` drives
the queue; ``state`` is what users see (Celery's state names, or a custom one).
Partial indexes keep each phase's lookups independent of how much history the table
holds: the claim reads only waiting rows, recovery only in-flight rows, pruning only
finished rows.
"""

from __future__ import annotations

import datetime

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.utils import timezone

from . import states
from .conf import conf
from .status import Status as Status  # the one definition, shared with the SQL


class TaskQuerySet(models.QuerySet["Task"]):
    """One method per question asked of the task rows (django-tasks'
    ``DBTaskResultQuerySet``); each filter is the predicate of one partial index, so the
    answer costs what is in that phase, not the history the table keeps."""

    def waiting(self) -> TaskQuerySet:
        """Not claimed yet: runnable now, or scheduled for later (``run_at``)."""
        return self.filter(status=Status.WAITING)

    def in_flight(self) -> TaskQuerySet:
        """Claimed by a worker, started or not."""
        return self.filter(status__in=[Status.CLAIMED, Status.STARTED])

    def not_in_flight(self) -> TaskQuerySet:
        return self.exclude(status__in=[Status.CLAIMED, Status.STARTED])

    def unfinished(self) -> TaskQuerySet:
        """Waiting or in flight (deferred canvas rows left out)."""
        return self.filter(status__in=[Status.WAITING, Status.CLAIMED, Status.STARTED])

    def done(self) -> TaskQuerySet:
        """Finished, whatever the final state."""
        return self.filter(status=Status.DONE)


class Task(models.Model):
    id = models.UUIDField(primary_key=True)
    name = models.CharField(max_length=255)
    state = models.CharField(max_length=50, default=states.PENDING)
    status = models.SmallIntegerField(choices=Status.choices, default=Status.WAITING)
    queue = models.CharField(max_length=200)
    priority = models.IntegerField(default=0)
    args = models.TextField(default="[]", help_text="JSON list")
    kwargs = models.TextField(default="{}", help_text="JSON object")
    options = models.TextField(default="{}", help_text="JSON object: headers, callbacks, limits")
    result = models.TextField(null=True, blank=True, help_text="JSON: return value, meta or error")
    traceback = models.TextField(null=True, blank=True)
    retries = models.IntegerField(default=0)
    deliveries = models.IntegerField(
        default=0, db_default=0,
        help_text="Times it was started and lost (its process or worker died), then "
                  "delivered again")
    eta = models.DateTimeField(null=True, blank=True)
    run_at = models.DateTimeField(help_text="Not claimed before this time")
    expires = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=255, null=True, blank=True)
    claimed_by = models.BigIntegerField(null=True, blank=True, help_text="djq_worker.id")
    parent_id = models.UUIDField(null=True, blank=True)
    root_id = models.UUIDField(null=True, blank=True)
    group_id = models.UUIDField(null=True, blank=True)
    date_created = models.DateTimeField()
    date_claimed = models.DateTimeField(null=True, blank=True)
    date_started = models.DateTimeField(null=True, blank=True)
    date_done = models.DateTimeField(null=True, blank=True)
    terminate = models.SmallIntegerField(
        null=True, blank=True, help_text="Signal number of a revoke(terminate=True)")
    owner = models.CharField(max_length=64, null=True, blank=True,
                             help_text="pk of the user who enqueued it through the API")
    waiting_on = models.UUIDField(
        null=True, blank=True,
        help_text="A deferred canvas row starts when this task (or chord) ends")
    canvas = models.JSONField(
        null=True, blank=True,
        help_text="A canvas row's flags, read by the canvas trigger: immutable, countdown, "
                  "on_error")

    objects = TaskQuerySet.as_manager()

    class Meta:
        db_table = "djq_task"
        # view, add and change are Django's; revoking (and terminating) is djq's own
        # (djq.permissions).
        permissions = [("revoke_task", "Can revoke and terminate tasks")]
        indexes = [
            models.Index(
                fields=["queue", "-priority", "run_at"],
                name="djq_task_ready",
                condition=Q(status=Status.WAITING),
            ),
            models.Index(
                fields=["claimed_by"],
                name="djq_task_inflight",
                condition=Q(status__in=[Status.CLAIMED, Status.STARTED]),
            ),
            models.Index(
                fields=["date_done"], name="djq_task_done", condition=Q(status=Status.DONE)
            ),
            # Canvas rows waiting for another task or a chord (read by the trigger).
            models.Index(fields=["waiting_on"], name="djq_task_deferred",
                         condition=Q(status=Status.DEFERRED)),
            # The admin, the API and the monitor list tasks newest first: read backwards,
            # this index serves ORDER BY date_created DESC, id DESC with a LIMIT however
            # many rows are kept, and the "enqueued per minute" counts.
            models.Index(fields=["date_created", "id"], name="djq_task_created"),
            # Tasks enqueued through the API, listed by their owner (api_owner_scoped).
            models.Index(fields=["owner", "date_created"], name="djq_task_owner",
                         condition=Q(owner__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.name}[{self.id}] {self.state}"


def lease_start(now: datetime.datetime | None = None) -> datetime.datetime:
    """A worker whose last heartbeat is older than this has lost its lease
    (``worker_lease`` seconds before ``now``)."""
    return (now or timezone.now()) - datetime.timedelta(seconds=float(conf.worker_lease))


def _alive(now: datetime.datetime | None) -> Q:
    # The one statement of the rule: not stopped, and the lease not run out.
    return Q(stopped_at__isnull=True, last_heartbeat__gte=lease_start(now))


class WorkerQuerySet(models.QuerySet["Worker"]):
    def alive(self, now: datetime.datetime | None = None) -> WorkerQuerySet:
        """Workers alive: not stopped, with a current lease (read ``djq_worker_alive``)."""
        return self.filter(_alive(now))

    def not_alive(self, now: datetime.datetime | None = None) -> WorkerQuerySet:
        return self.exclude(_alive(now))


class Worker(models.Model):
    """One row per running (or lately stopped) worker process: its heartbeat lease."""

    id = models.BigAutoField(primary_key=True)
    hostname = models.CharField(max_length=255)
    pid = models.IntegerField()
    pool = models.CharField(max_length=20)
    concurrency = models.IntegerField()
    queues = models.TextField(help_text="Comma-separated queue names")
    started_at = models.DateTimeField()
    last_heartbeat = models.DateTimeField()
    stopped_at = models.DateTimeField(null=True, blank=True)
    processed = models.BigIntegerField(default=0)
    failed = models.BigIntegerField(default=0)
    active = models.IntegerField(default=0)
    loadavg = models.CharField(max_length=64, blank=True, default="")
    sw_ver = models.CharField(max_length=32, blank=True, default="")
    # Null for a worker of a version that did not record it (rolling upgrades).
    registered = ArrayField(models.TextField(), null=True, blank=True,
                            help_text="Task names the worker could run when it started")
    # djq.worker.tally.Tally.to_json(), written with each heartbeat; djq.metrics reads it.
    counters = models.JSONField(default=dict, db_default={}, blank=True,
                                help_text="Tasks finished per name and state, runtimes")

    objects = WorkerQuerySet.as_manager()

    class Meta:
        db_table = "djq_worker"
        indexes = [
            models.Index(
                fields=["last_heartbeat"], name="djq_worker_alive",
                condition=Q(stopped_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.hostname} (pid {self.pid})"

    def is_alive(self, now: datetime.datetime | None = None) -> bool:
        """The rule of :meth:`WorkerQuerySet.alive`, for a row already read."""
        return self.stopped_at is None and self.last_heartbeat >= lease_start(now)


class RetiredCounters(models.Model):
    """One row: the summed counters of worker rows already pruned, so that the metrics'
    totals (the live rows plus this) never go backwards."""

    id = models.SmallIntegerField(primary_key=True, default=1)
    counters = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = "djq_retired_counters"


class Chord(models.Model):
    """A chord's counter: the callback rows (``waiting_on`` = ``group_id``) start when
    ``remaining`` reaches 0, with the results of ``members`` in this order."""

    group_id = models.UUIDField(primary_key=True)
    remaining = models.IntegerField()
    callback_id = models.UUIDField(null=True, blank=True)
    members = ArrayField(models.UUIDField())
    created = models.DateTimeField()

    class Meta:
        db_table = "djq_chord"

    def __str__(self) -> str:
        return f"chord {self.group_id} ({self.remaining} of {len(self.members)} left)"


class SavedGroup(models.Model):
    """A group saved with ``GroupResult.save()``: its member ids in order (a member may
    be another saved group)."""

    id = models.UUIDField(primary_key=True)
    members = ArrayField(models.UUIDField())
    date_created = models.DateTimeField()

    class Meta:
        db_table = "djq_group"

    def __str__(self) -> str:
        return f"group {self.id} ({len(self.members)} members)"


# Periodic tasks (issue 15): their rows live with the scheduler, in djq.beat.
from .beat.models import (  # noqa: E402,F401 - registered as djq's models
    ClockedSchedule, CrontabSchedule, IntervalSchedule, PeriodicRun, PeriodicTask,
)
