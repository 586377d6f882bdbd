"""Periodic tasks with real workers and a real clock: several schedulers (one in each
``djq_worker``) enqueue each fire time exactly once, survive the loss of all but one,
and pick up an edit within two seconds. Timing figures (delays) are in ``bench/``."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connections
from django.utils import timezone

from djq.beat.models import IntervalSchedule, PeriodicRun, PeriodicTask
from djq.models import Task
from tests.conftest import ROOT, WorkerProcess, wait_for
from tests.testapp.models import SideEffect

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

RECORD = "tests.testapp.tasks.record"
TICK = {"beat_schedule": {"tick": {"task": RECORD, "schedule": 1.0, "args": ["tick"]}}}


def fire_times(name: str = "tick") -> list[dt.datetime]:
    return list(PeriodicRun.objects.filter(periodic_task__name=name, manual=False)
                .order_by("fire_time").values_list("fire_time", flat=True))


def assert_every_second_once(times: list[dt.datetime], name: str = "tick") -> None:
    """Consecutive fire times one second apart: no gap and no duplicate between the
    first and the last; each sent as one task that ran once."""
    assert len(times) == len(set(times))
    gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:])]
    assert gaps and all(g == 1.0 for g in gaps), gaps
    pt = PeriodicTask.objects.get(name=name)
    assert pt.total_run_count == len(times)
    tasks = Task.objects.filter(id__in=PeriodicRun.objects.filter(periodic_task=pt)
                                .values("task_id"))
    assert tasks.count() == len(times)
    for task in tasks:
        assert json.loads(task.options)["headers"]["periodic_task_name"] == name


def test_three_workers_enqueue_every_second_exactly_once(
        start_worker: Callable[..., WorkerProcess]) -> None:
    workers = [start_worker(concurrency=1, djq=TICK) for _ in range(3)]
    assert all(w.proc.poll() is None for w in workers)
    start = timezone.now()
    wait_for(lambda: len(fire_times()) >= 20, timeout=40, interval=0.2,
             message="20 ticks")
    times = fire_times()
    end = timezone.now()
    for w in workers:
        assert w.stop() == 0
    times = fire_times()
    assert len(times) >= 20
    # No tick missing at the start or the end of the window either.
    assert times[0] <= start + dt.timedelta(seconds=2)
    assert times[-1] >= end - dt.timedelta(seconds=2)
    # Warm shutdown: what a worker had claimed ran; anything else was never claimed.
    runs = Task.objects.filter(id__in=PeriodicRun.objects.values("task_id"))
    assert set(runs.values_list("state", flat=True)) <= {"SUCCESS", "PENDING"}
    assert_every_second_once(times)
    # Each task that ran, ran once.
    assert SideEffect.objects.filter(key="tick").count() == runs.filter(state="SUCCESS").count()
    # Between them, the three schedulers sent each fire time once.
    logs = [w.output() for w in workers]
    assert sum(log.count("Sending due task tick") for log in logs) == len(times)


def test_killing_two_of_three_schedulers_loses_no_tick(
        start_worker: Callable[..., WorkerProcess]) -> None:
    workers = [start_worker(concurrency=1, djq=TICK) for _ in range(3)]
    wait_for(lambda: len(fire_times()) >= 5, timeout=30, interval=0.2, message="5 ticks")
    killed_at = timezone.now()
    for w in workers[:2]:
        os.killpg(w.pid, signal.SIGKILL)
        w.proc.wait(10)
    wait_for(lambda: len([t for t in fire_times() if t > killed_at]) >= 8, timeout=30,
             interval=0.2, message="8 ticks after the kill")
    assert workers[2].stop() == 0
    times = fire_times()
    assert times[0] < killed_at < times[-1]
    assert_every_second_once(times)


def test_pool_processes_forked_while_the_scheduler_runs_leave_it_alone(
        start_worker: Callable[..., WorkerProcess]) -> None:
    # One task per pool process: a fork after every run, each while the scheduler's
    # thread holds its sessions (the child closes its copies, never the parent's).
    worker = start_worker("--max-tasks-per-child", "1", concurrency=1, djq=TICK)
    wait_for(lambda: SideEffect.objects.filter(key="tick").count() >= 6, timeout=30,
             interval=0.2, message="6 ticks run, each in a fresh pool process")
    assert worker.stop() == 0
    assert "beat: round failed" not in worker.output()
    assert len(set(SideEffect.objects.filter(key="tick").values_list("pid", flat=True))) >= 6
    assert_every_second_once(fire_times())


def test_the_scheduler_survives_a_postgres_restart(
        start_worker: Callable[..., WorkerProcess]) -> None:
    from django.db import close_old_connections, connection
    from django.db.utils import Error as DatabaseError

    from tests.conftest import restart_postgres

    worker = start_worker(concurrency=1, djq=TICK)
    wait_for(lambda: len(fire_times()) >= 3, timeout=30, interval=0.2, message="3 ticks")
    restart_postgres()
    restarted = timezone.now()

    def ticks_after() -> int:
        try:
            return len([t for t in fire_times() if t > restarted])
        except DatabaseError:
            close_old_connections()
            connection.close()
            return 0

    wait_for(lambda: ticks_after() >= 3, timeout=40, interval=0.3,
             message="3 ticks after PostgreSQL restarted")
    assert worker.stop() == 0
    times = fire_times()
    gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:])]
    assert len(times) == len(set(times)) and all(g >= 1.0 and g == int(g) for g in gaps)
    assert PeriodicTask.objects.get(name="tick").total_run_count == len(times)


def test_a_missed_period_fires_once_when_a_scheduler_returns(
        start_worker: Callable[..., WorkerProcess]) -> None:
    first = start_worker(concurrency=1, djq=TICK)
    wait_for(lambda: len(fire_times()) >= 3, timeout=30, interval=0.2, message="3 ticks")
    assert first.stop() == 0
    stopped = timezone.now()
    time.sleep(4.0)  # no scheduler: four or more ticks are missed
    start_worker(concurrency=1, djq=TICK)
    wait_for(lambda: len([t for t in fire_times() if t > stopped + dt.timedelta(seconds=4)])
             >= 3, timeout=30, interval=0.2, message="3 ticks after the restart")
    runs = list(PeriodicRun.objects.filter(periodic_task__name="tick").order_by("fire_time"))
    gaps = [(b.fire_time - a.fire_time).total_seconds() for a, b in zip(runs, runs[1:])]
    # One fire for the whole missed period (late, at the first missed time), then back
    # on the one-second grid: exactly one gap, of the missed seconds.
    assert [g for g in gaps if g != 1.0] == [pytest.approx(max(gaps))]
    assert max(gaps) >= 4.0 and all(g == int(g) for g in gaps)
    late = runs[gaps.index(max(gaps))]
    assert late.fire_time < stopped + dt.timedelta(seconds=1)
    assert (late.date_enqueued - late.fire_time).total_seconds() >= 3.0
    assert PeriodicTask.objects.get(name="tick").total_run_count == len(runs)


def test_an_edit_takes_effect_within_two_seconds(
        start_worker: Callable[..., WorkerProcess], admin_client: Any) -> None:
    hourly = IntervalSchedule.objects.create(every=3600, period="seconds")
    second = IntervalSchedule.objects.create(every=1, period="seconds")
    pt = PeriodicTask.objects.create(name="edited", task=RECORD, args=["before"],
                                     interval=hourly)
    start_worker(concurrency=1)
    time.sleep(1.0)  # the scheduler is idle, sleeping towards the hourly run
    assert fire_times("edited") == []

    # The admin's change form: every second, new arguments.
    edited_at = time.monotonic()
    response = admin_client.post(f"/admin/djq/periodictask/{pt.pk}/change/", {
        "name": "edited", "task": RECORD, "interval": second.pk, "args": '["after"]',
        "kwargs": "{}", "enabled": "on", "description": "",
    })
    assert response.status_code == 302, response.content[:2000]
    wait_for(lambda: fire_times("edited"), timeout=2.0, interval=0.02,
             message="the edited schedule's first run")
    assert time.monotonic() - edited_at <= 2.0
    run = PeriodicRun.objects.filter(periodic_task=pt).first()
    assert run is not None
    assert json.loads(Task.objects.get(id=run.task_id).args) == ["after"]

    # Disabled in the admin: no run starts after it.
    response = admin_client.post("/admin/djq/periodictask/", {
        "action": "disable_tasks", "_selected_action": [pt.pk]})
    assert response.status_code == 302
    disabled_at = timezone.now()
    time.sleep(2.5)
    assert not [t for t in fire_times("edited") if t > disabled_at + dt.timedelta(seconds=1)]


class BeatProcess:
    """``manage.py djq_beat`` on the test database."""

    def __init__(self, overrides: dict[str, Any], log_path: Path) -> None:
        env = dict(os.environ, DJANGO_SETTINGS_MODULE="tests.settings",
                   DJQ_TEST_DATABASE_NAME=connections["default"].settings_dict["NAME"],
                   DJQ_TEST_OVERRIDES=json.dumps(overrides), PYTHONUNBUFFERED="1")
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "djq_beat"],
                                     cwd=ROOT, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.log.close()


@pytest.fixture
def beat_process(transactional_db: Any, tmp_path: Path) -> Iterator[Callable[..., BeatProcess]]:
    started: list[BeatProcess] = []

    def start(overrides: dict[str, Any]) -> BeatProcess:
        started.append(BeatProcess(overrides, tmp_path / f"beat-{len(started)}.log"))
        return started[-1]

    yield start
    for process in started:
        process.kill()


def test_djq_beat_alone_with_workers_without_beat(
        start_worker: Callable[..., WorkerProcess],
        beat_process: Callable[..., BeatProcess]) -> None:
    worker = start_worker("--without-beat", concurrency=1, djq=TICK)
    time.sleep(2.0)
    assert fire_times() == []  # the worker runs no scheduler
    beat = beat_process(TICK)
    wait_for(lambda: len(fire_times()) >= 3, timeout=30, interval=0.2, message="3 ticks")
    wait_for(lambda: SideEffect.objects.filter(key="tick").count() >= 3, timeout=10,
             message="the worker to run them")
    beat.proc.send_signal(signal.SIGTERM)
    assert beat.proc.wait(15) == 0
    assert worker.stop() == 0
    assert_every_second_once(fire_times())


def test_a_bad_beat_schedule_stops_the_command(tmp_path: Path, transactional_db: Any) -> None:
    bad = {"beat_schedule": {"nightly": {"task": RECORD, "schedule": "hourly"}}}
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="tests.settings",
               DJQ_TEST_DATABASE_NAME=connections["default"].settings_dict["NAME"],
               DJQ_TEST_OVERRIDES=json.dumps(bad))
    for command in (["djq_beat"], ["djq_worker", "-P", "solo"]):
        done = subprocess.run([sys.executable, str(ROOT / "manage.py"), *command], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 1
        assert "DJQ['beat_schedule']['nightly']: schedule: expected a crontab" in done.stderr
