"""The scheduler's database side, in-process: settings synchronisation, firing due rows
exactly once (also from several threads at once), missed periods, one-offs, the publish
path, and the idle round's one indexed query."""

from __future__ import annotations

import datetime as dt
import json
import threading
from typing import Any

import pytest
from django.db import connection, connections
from django.utils import timezone

from djq import signals
from djq.beat import sql
from djq.beat.models import (
    ClockedSchedule, CrontabSchedule, IntervalSchedule, PeriodicRun, PeriodicTask,
)
from djq.beat.scheduler import HEADER_FIRE_TIME, HEADER_NAME, run_now, run_once
from djq.beat.sync import entries, sync_beat_schedule
from djq.exceptions import ImproperlyConfigured
from djq.models import Task
from djq.schedules import clocked, crontab

RECORD = "tests.testapp.tasks.record"


def interval_task(name: str = "tick", every: int = 1, **fields: Any) -> PeriodicTask:
    interval, _ = IntervalSchedule.objects.get_or_create(every=every, period="seconds")
    pt = PeriodicTask(name=name, task=RECORD, args=[name], interval=interval, **fields)
    pt.save()
    return pt


def make_due(pt: PeriodicTask, ago: float = 0.0) -> dt.datetime:
    when = timezone.now() - dt.timedelta(seconds=ago)
    PeriodicTask.objects.filter(pk=pt.pk).update(next_run_at=when)
    return when


def headers_of(task: Task) -> dict[str, Any]:
    return json.loads(task.options).get("headers", {})


# --- beat_schedule ---------------------------------------------------------------------

def test_sync_adds_changes_and_removes_settings_entries(db: Any, settings: Any) -> None:
    db_only = interval_task("made-in-admin", every=60)
    settings.DJQ = {"beat_schedule": {
        "every-15": {"task": RECORD, "schedule": crontab(minute="*/15"), "args": ("a",),
                     "options": {"queue": "low", "priority": 3, "expires": 60}},
        "every-10s": {"task": RECORD, "schedule": dt.timedelta(seconds=10)},
        "once": {"task": RECORD, "schedule": clocked(timezone.now() + dt.timedelta(hours=1))},
    }}
    report = sync_beat_schedule()
    assert sorted(report.added) == ["every-10s", "every-15", "once"]
    pt = PeriodicTask.objects.get(name="every-15")
    assert (pt.task, pt.args, pt.queue, pt.priority, pt.expires, pt.from_settings) == (
        RECORD, ["a"], "low", 3, 60.0, True)
    assert pt.crontab is not None and pt.crontab.minute == "*/15"
    assert pt.schedule_words() == "every 15 minutes"
    assert pt.next_run_at is not None and pt.next_run_at.minute % 15 == 0
    first_next = pt.next_run_at

    # Unchanged settings: nothing written. Changed arguments keep the next fire time;
    # a changed schedule starts again.
    assert sync_beat_schedule().changed == []
    settings.DJQ["beat_schedule"]["every-15"]["args"] = ("b",)
    settings.DJQ["beat_schedule"]["every-10s"]["schedule"] = 30
    del settings.DJQ["beat_schedule"]["once"]
    report = sync_beat_schedule()
    assert sorted(report.changed) == ["every-10s", "every-15"]
    assert report.removed == ["once"]
    pt.refresh_from_db()
    assert pt.args == ["b"] and pt.next_run_at == first_next
    ten = PeriodicTask.objects.get(name="every-10s")
    assert ten.interval is not None and (ten.interval.every, ten.interval.period) == (30, "seconds")
    # Rows made in the database are never removed by the settings.
    assert PeriodicTask.objects.filter(pk=db_only.pk).exists()
    settings.DJQ = {}
    assert sorted(sync_beat_schedule().removed) == ["every-10s", "every-15"]
    assert list(PeriodicTask.objects.values_list("name", flat=True)) == ["made-in-admin"]


@pytest.mark.parametrize("entry,message", [
    ({"schedule": 10}, "'task' must be a task name"),
    ({"task": RECORD}, "'schedule' is missing"),
    ({"task": RECORD, "schedule": "*/5 * * * *"}, "expected a crontab"),
    ({"task": RECORD, "schedule": 0}, "must be positive"),
    ({"task": RECORD, "schedule": 10, "options": {"routing_key": "x"}},
     "option(s) routing_key not supported"),
    ({"task": RECORD, "schedule": 10, "options": {"priority": "high"}}, "'priority'"),
    ({"task": RECORD, "schedule": 10, "options": {"expires": -1}}, "'expires'"),
    ({"task": RECORD, "schedule": 10, "args": "abc"}, "'args' must be a list"),
    ({"task": RECORD, "schedule": 10, "args": [object()]}, "plain JSON"),
    ({"task": RECORD, "schedule": 10, "sceduel": 1}, "unknown key(s) sceduel"),
    ({"task": RECORD, "schedule": 10, "relative": True}, "'relative'"),
])
def test_bad_entries_raise_naming_the_entry(settings: Any, entry: dict[str, Any],
                                            message: str) -> None:
    settings.DJQ = {"beat_schedule": {"nightly": entry}}
    with pytest.raises(ImproperlyConfigured) as info:
        entries()
    assert "DJQ['beat_schedule']['nightly']" in str(info.value)
    assert message in str(info.value)


def test_unknown_task_names_and_bad_entries_show_in_manage_py_check(settings: Any) -> None:
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    settings.DJQ = {"beat_schedule": {"typo": {"task": "tests.testapp.tasks.recrod",
                                               "schedule": 10}}}
    from djq.checks import check_beat_schedule

    problems = check_beat_schedule()
    assert [p.id for p in problems] == ["djq.W010"]
    assert "'typo'" in problems[0].msg and "tests.testapp.tasks.recrod" in problems[0].msg
    settings.DJQ = {"beat_schedule": {"bad": {"task": RECORD, "schedule": "hourly"}}}
    with pytest.raises(SystemCheckError, match=r"\['bad'\]"):
        call_command("check")


# --- firing ----------------------------------------------------------------------------

def test_a_due_row_is_sent_once_through_the_publish_path(db: Any) -> None:
    pt = interval_task(queue="beat", priority=5, expires=30)
    fire_time = make_due(pt)
    published: list[dict[str, Any]] = []

    def receiver(sender: Any, headers: dict[str, Any], **kwargs: Any) -> None:
        published.append(headers)

    signals.before_task_publish.connect(receiver)
    try:
        sent, wait = run_once()
    finally:
        signals.before_task_publish.disconnect(receiver)
    assert sent == 1 and wait is not None and 0 < wait <= 1
    task = Task.objects.get()
    assert (task.name, task.queue, task.priority, json.loads(task.args)) == (
        RECORD, "beat", 5, ["tick"])
    assert task.id == sql.fire_task_id(pt.pk, fire_time)
    assert task.expires == fire_time + dt.timedelta(seconds=30)
    assert headers_of(task)[HEADER_NAME] == "tick"
    assert dt.datetime.fromisoformat(headers_of(task)[HEADER_FIRE_TIME]) == fire_time
    assert [h[HEADER_NAME] for h in published] == ["tick"]
    assert [(r.fire_time, r.task_id) for r in PeriodicRun.objects.all()] == [
        (fire_time, task.id)]
    pt.refresh_from_db()
    assert pt.total_run_count == 1 and pt.last_run_at is not None
    assert pt.next_run_at == fire_time + dt.timedelta(seconds=1)
    assert run_once()[0] == 0  # not due again yet


def test_a_fire_time_already_recorded_is_not_sent_again(db: Any) -> None:
    pt = interval_task()
    fire_time = make_due(pt)
    assert sql.record_run(pt.pk, fire_time, sql.fire_task_id(pt.pk, fire_time))
    assert run_once()[0] == 0
    assert not Task.objects.exists()
    pt.refresh_from_db()
    assert pt.next_run_at > fire_time  # still advanced


def test_missed_period_fires_once(db: Any) -> None:
    pt = interval_task()
    fire_time = make_due(pt, ago=30)  # thirty one-second ticks missed
    assert run_once()[0] == 1
    assert Task.objects.count() == 1
    pt.refresh_from_db()
    now = timezone.now()
    assert now < pt.next_run_at <= now + dt.timedelta(seconds=1)
    # on the same one-second grid as the missed fire time
    assert (pt.next_run_at - fire_time).total_seconds() % 1 == 0


def test_one_off_and_clocked_fire_once_and_disable_themselves(db: Any) -> None:
    once = ClockedSchedule.objects.create(clocked_time=timezone.now() - dt.timedelta(minutes=5))
    clocked_pt = PeriodicTask.objects.create(name="clocked", task=RECORD, args=["c"],
                                             clocked=once)
    assert clocked_pt.next_run_at == once.clocked_time  # late: fires at once
    one_off = interval_task("one-off", one_off=True)
    make_due(one_off)
    assert run_once()[0] == 2
    assert run_once()[0] == 0
    for pt in (clocked_pt, one_off):
        pt.refresh_from_db()
        assert (pt.enabled, pt.next_run_at, pt.total_run_count) == (False, None, 1)
    # Saving the spent clocked task again does not bring it back.
    clocked_pt.enabled = True
    clocked_pt.save()
    assert clocked_pt.next_run_at is None


def test_a_spent_one_off_from_settings_stays_off_across_restarts(db: Any,
                                                                 settings: Any) -> None:
    settings.DJQ = {"beat_schedule": {
        "once": {"task": RECORD, "schedule": 1, "args": ["o"], "one_off": True},
        "at": {"task": RECORD, "args": ["a"],
               "schedule": clocked(timezone.now() - dt.timedelta(seconds=1))},
    }}
    sync_beat_schedule()
    make_due(PeriodicTask.objects.get(name="once"))
    assert run_once()[0] == 2
    assert sync_beat_schedule().changed == []  # a scheduler starting again
    assert run_once()[0] == 0
    assert not PeriodicTask.objects.filter(enabled=True).exists()
    assert Task.objects.count() == 2


def test_a_task_that_cannot_be_sent_is_logged_and_skipped(db: Any,
                                                          caplog: Any) -> None:
    bad = interval_task("bad")
    bad.args = ["too", "many", "arguments"]
    bad.save()
    good = interval_task("good")
    make_due(bad)
    make_due(good)
    assert run_once()[0] == 1
    assert [json.loads(t.args) for t in Task.objects.all()] == [["good"]]
    assert "name=bad" in caplog.text
    bad.refresh_from_db()
    assert bad.next_run_at > timezone.now() and bad.total_run_count == 0


def test_editing_the_schedule_reschedules(db: Any) -> None:
    cron = CrontabSchedule.objects.create(minute="0", hour="3")
    pt = PeriodicTask.objects.create(name="nightly", task=RECORD, args=["n"], crontab=cron)
    assert pt.next_run_at.astimezone(dt.timezone.utc).hour == 3
    cron.hour = "4"
    cron.save()
    pt.refresh_from_db()
    assert pt.next_run_at.astimezone(dt.timezone.utc).hour == 4
    pt.enabled = False
    pt.save()
    assert pt.next_run_at is None
    pt.enabled = True
    pt.save()
    assert pt.next_run_at is not None


def test_run_now_sends_at_once_and_keeps_the_schedule(db: Any) -> None:
    pt = interval_task("hourly", every=3600)
    next_run = pt.next_run_at
    result = run_now(pt.pk)
    task = Task.objects.get()
    assert str(task.id) == result.id and headers_of(task)[HEADER_NAME] == "hourly"
    pt.refresh_from_db()
    assert pt.next_run_at == next_run and pt.total_run_count == 1
    assert PeriodicRun.objects.get().manual


@pytest.mark.django_db(transaction=True)
def test_due_rows_held_by_another_scheduler_are_skipped() -> None:
    pt = interval_task()
    make_due(pt)
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            other.set_autocommit(False)
            cursor.execute("SELECT id FROM djq_periodic_task WHERE id = %s FOR UPDATE", [pt.pk])
            sent, wait = run_once()
            assert sent == 0 and wait == pytest.approx(0.1)  # look again soon
            other.rollback()
    finally:
        other.close()
    assert run_once()[0] == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_schedulers_send_each_fire_time_once() -> None:
    tasks = [interval_task(f"t{i}") for i in range(40)]
    for pt in tasks:
        make_due(pt)
    sent: list[int] = []
    barrier = threading.Barrier(4)

    def scheduler() -> None:
        barrier.wait()
        try:
            sent.append(run_once(limit=5)[0])
        finally:
            connection.close()

    threads = [threading.Thread(target=scheduler) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(sent) == 40
    assert Task.objects.count() == 40 == PeriodicRun.objects.count()
    assert set(PeriodicTask.objects.values_list("total_run_count", flat=True)) == {1}


@pytest.mark.django_db(transaction=True)
def test_idle_round_is_one_indexed_query_however_many_schedules() -> None:
    interval = IntervalSchedule.objects.create(every=3600, period="seconds")
    later = timezone.now() + dt.timedelta(hours=1)
    PeriodicTask.objects.bulk_create([
        PeriodicTask(name=f"p{i}", task=RECORD, interval=interval,
                     next_run_at=later + dt.timedelta(seconds=i)) for i in range(10_000)])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE djq_periodic_task")
        cursor.execute("EXPLAIN " + sql._CLAIM, [100])
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "djq_periodic_due" in plan
    assert "Seq Scan on djq_periodic_task" not in plan, plan
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        sent, wait = run_once()
    assert sent == 0 and wait is not None and 3590 < wait <= 3600
    claims = [q for q in queries.captured_queries if "djq_periodic_task" in q["sql"]]
    assert len(claims) == 1


def test_old_run_records_are_pruned_in_batches(db: Any, settings: Any) -> None:
    from djq.beat import scheduler

    settings.DJQ = {"result_expires": 60}  # records are kept an hour at least
    pt = interval_task()
    old = timezone.now() - dt.timedelta(hours=2)
    PeriodicRun.objects.bulk_create([
        PeriodicRun(periodic_task=pt, fire_time=old + dt.timedelta(seconds=i),
                    task_id=sql.fire_task_id(pt.pk, old + dt.timedelta(seconds=i)),
                    date_enqueued=old) for i in range(25)])
    recent = timezone.now() - dt.timedelta(minutes=30)
    sql.record_run(pt.pk, recent, sql.fire_task_id(pt.pk, recent))
    original = scheduler.PRUNE_BATCH
    scheduler.PRUNE_BATCH = 10
    try:
        assert scheduler.Scheduler().prune() == 25
    finally:
        scheduler.PRUNE_BATCH = original
    assert list(PeriodicRun.objects.values_list("fire_time", flat=True)) == [recent]
