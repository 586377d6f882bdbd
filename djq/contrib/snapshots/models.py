"""The snapshot table the built-in camera writes and the live monitor's charts read."""

from __future__ import annotations

from django.db import models


class Snapshot(models.Model):
    """Figures of one subject (the cluster, a queue or a worker) at one shutter.

    Counts (``processed``, ``succeeded``, ``failed``, ``retried``, ``revoked``) and
    runtimes are of the tasks that ended (or retried) during ``interval``, the seconds
    since the previous shutter, as the event stream told them. Gauges (``active``,
    ``reserved``, ``queue_depth``, ``scheduled``, ``workers``, ``alive``) are what the
    database held at ``taken_at``.
    """

    class Kind(models.TextChoices):
        CLUSTER = "cluster", "cluster"
        QUEUE = "queue", "queue"
        WORKER = "worker", "worker"

    id = models.BigAutoField(primary_key=True)
    taken_at = models.DateTimeField()
    interval = models.FloatField(help_text="Seconds since the previous snapshot")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    name = models.CharField(max_length=255, blank=True, default="",
                            help_text="Queue name or worker hostname; empty for the cluster")
    processed = models.IntegerField(default=0, help_text="Tasks that ended in the interval")
    succeeded = models.IntegerField(default=0)
    failed = models.IntegerField(default=0)
    retried = models.IntegerField(default=0)
    revoked = models.IntegerField(default=0)
    active = models.IntegerField(default=0, help_text="Tasks running now")
    reserved = models.IntegerField(default=0, help_text="Tasks claimed, not started, now")
    queue_depth = models.IntegerField(null=True, blank=True,
                                      help_text="Tasks waiting and due now (queue, cluster)")
    scheduled = models.IntegerField(null=True, blank=True,
                                    help_text="Tasks waiting for their eta (queue, cluster)")
    workers = models.IntegerField(null=True, blank=True,
                                  help_text="Workers online (consuming the queue)")
    alive = models.BooleanField(null=True, blank=True, help_text="Worker online (worker)")
    runtime_p50 = models.FloatField(null=True, blank=True, help_text="Seconds")
    runtime_p90 = models.FloatField(null=True, blank=True)
    runtime_p99 = models.FloatField(null=True, blank=True)
    runtime_max = models.FloatField(null=True, blank=True)

    class Meta:
        db_table = "djq_snapshot"
        indexes = [
            models.Index(fields=["kind", "name", "taken_at"], name="djq_snapshot_series"),
            models.Index(fields=["taken_at"], name="djq_snapshot_taken"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.name or '*'} at {self.taken_at:%Y-%m-%d %H:%M:%S}"
