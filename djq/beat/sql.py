"""All of the scheduler's SQL (the beat's share of :mod:`djq.broker`): claim the due
periodic tasks (SKIP LOCKED), record a fire time once, advance the schedule, wake the
schedulers, prune old runs.

Everything runs on Django's connection of the ``using`` alias, so a scheduler's round
(claim, record, enqueue through the normal publish path, advance) is one transaction: a
fire time is enqueued and its schedule advanced together, or neither.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import uuid
from typing import Any

from django.db import connections

from ..conf import conf

#: NOTIFY channel schedulers listen on: a schedule was added, changed or removed.
BEAT_CHANNEL = "djq_beat"

# Fire time ids: uuid5 of (periodic task id, fire time), so the same fire time always
# names the same task.
_FIRE_NAMESPACE = uuid.UUID("5f0c1c3e-8d7a-4c53-9a43-2f1b0c6a7e15")


def fire_task_id(periodic_task_id: int, fire_time: datetime.datetime) -> uuid.UUID:
    """The task id of one fire time of one periodic task."""
    stamp = fire_time.astimezone(datetime.timezone.utc).isoformat()
    return uuid.uuid5(_FIRE_NAMESPACE, f"{periodic_task_id}/{stamp}")


@dataclasses.dataclass(frozen=True, slots=True)
class Due:
    """A claimed periodic task, with its schedule's columns."""

    id: int
    name: str
    task: str
    args: Any
    kwargs: Any
    queue: str | None
    priority: int | None
    expires: float | None
    one_off: bool
    next_run_at: datetime.datetime
    total_run_count: int
    every: int | None
    period: str | None
    minute: str | None
    hour: str | None
    day_of_week: str | None
    day_of_month: str | None
    month_of_year: str | None
    timezone: str | None
    clocked_time: datetime.datetime | None


# One statement per round: the database clock, the earliest fire time of any enabled
# row (at or before now when a due row is held by another scheduler), and the due rows
# this scheduler could lock. Rows another scheduler holds are skipped, not waited for:
# it is firing them.
_CLAIM = """
SELECT n.now, n.next_due, d.*
FROM (
    SELECT c.now, (SELECT p.next_run_at FROM djq_periodic_task p WHERE p.enabled
                   ORDER BY p.next_run_at LIMIT 1) AS next_due
    FROM (SELECT clock_timestamp() AS now) c
) n
LEFT JOIN LATERAL (
    SELECT p.id, p.name, p.task, p.args, p.kwargs, p.queue, p.priority, p.expires, p.one_off,
        p.next_run_at, p.total_run_count, i.every, i.period, c.minute, c.hour,
        c.day_of_week, c.day_of_month, c.month_of_year, c.timezone, k.clocked_time
    FROM djq_periodic_task p
    LEFT JOIN djq_interval_schedule i ON i.id = p.interval_id
    LEFT JOIN djq_crontab_schedule c ON c.id = p.crontab_id
    LEFT JOIN djq_clocked_schedule k ON k.id = p.clocked_id
    WHERE p.enabled AND p.next_run_at <= n.now
    ORDER BY p.next_run_at
    LIMIT %s
    FOR UPDATE OF p SKIP LOCKED
) d ON true
"""


def claim_due(limit: int, using: str | None = None
              ) -> tuple[datetime.datetime, datetime.datetime | None, list[Due]]:
    """(database now, earliest fire time of an enabled row, due rows locked until
    commit). Call inside ``transaction.atomic(using)``."""
    with connections[using or conf.database].cursor() as cursor:
        cursor.execute(_CLAIM, [limit])
        rows = cursor.fetchall()
    now, next_due = rows[0][0], rows[0][1]
    due: list[Due] = []
    for row in rows:
        if row[2] is not None:
            values = list(row[2:])
            values[3], values[4] = _json(values[3]), _json(values[4])  # args, kwargs
            due.append(Due(*values))
    return now, next_due, due


def _json(value: Any) -> Any:
    # Django leaves jsonb columns of raw queries as text.
    return json.loads(value) if isinstance(value, (str, bytes)) else value


_RECORD_RUN = """
INSERT INTO djq_periodic_run (periodic_task_id, fire_time, task_id, date_enqueued, manual)
VALUES (%s, %s, %s, clock_timestamp(), %s)
ON CONFLICT (periodic_task_id, fire_time) DO NOTHING
RETURNING id
"""


def record_run(periodic_task_id: int, fire_time: datetime.datetime, task_id: uuid.UUID,
               manual: bool = False, using: str | None = None) -> bool:
    """Record a fire time; False if it was recorded already (then nothing is sent)."""
    with connections[using or conf.database].cursor() as cursor:
        cursor.execute(_RECORD_RUN, [periodic_task_id, fire_time, task_id, manual])
        return cursor.fetchone() is not None


_ADVANCE = """
UPDATE djq_periodic_task SET next_run_at = %s, enabled = %s, last_run_at = %s,
    total_run_count = total_run_count + %s
WHERE id = %s
"""


def advance(periodic_task_id: int, next_run_at: datetime.datetime | None, enabled: bool,
            ran_at: datetime.datetime, runs: int, using: str | None = None) -> None:
    """Move a claimed periodic task to its next fire time (None: disabled)."""
    with connections[using or conf.database].cursor() as cursor:
        cursor.execute(_ADVANCE, [next_run_at, enabled and next_run_at is not None, ran_at,
                                  runs, periodic_task_id])


_COUNT_MANUAL = """
UPDATE djq_periodic_task SET last_run_at = %s, total_run_count = total_run_count + 1
WHERE id = %s
"""


def count_manual_run(periodic_task_id: int, ran_at: datetime.datetime,
                     using: str | None = None) -> None:
    with connections[using or conf.database].cursor() as cursor:
        cursor.execute(_COUNT_MANUAL, [ran_at, periodic_task_id])


def wake_schedulers(using: str | None = None) -> None:
    """Tell running schedulers that schedules changed (delivered at commit)."""
    with connections[using or conf.database].cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, '')", [BEAT_CHANNEL])


# Schedulers starting together synchronise beat_schedule one at a time.
_SYNC_LOCK = "SELECT pg_advisory_xact_lock(hashtext('djq_beat_sync'))"


def lock_for_sync(using: str | None = None) -> None:
    """Hold the settings-synchronisation lock until the transaction ends."""
    with connections[using or conf.database].cursor() as cursor:
        cursor.execute(_SYNC_LOCK)


_PRUNE_RUNS = """
DELETE FROM djq_periodic_run WHERE id IN (
    SELECT id FROM djq_periodic_run WHERE fire_time < clock_timestamp() - make_interval(secs => %s)
    LIMIT %s
)
"""


def prune_runs(older_than: float, batch: int, using: str | None = None) -> int:
    """Delete up to ``batch`` run records older than ``older_than`` seconds."""
    with connections[using or conf.database].cursor() as cursor:
        cursor.execute(_PRUNE_RUNS, [older_than, batch])
        return int(cursor.rowcount)
