"""Chaos: thousands of tasks through three workers while workers and pool processes are
SIGKILLed at random, workers are frozen (SIGSTOP) past their lease so that the others
take them over, and PostgreSQL restarts once. Nothing may be lost: every task ends in
a terminal state, tasks without acks_late run at most once, tasks with it (and
reject_on_worker_lost, so that a killed pool process re-queues them) at least once.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter

import psutil
import pytest
from django.db import close_old_connections, connection
from django.db.utils import Error as DatabaseError

from djq import states
from djq.models import Task
from djq.status import Status
from tests.conftest import restart_postgres
from tests.testapp.models import SideEffect
from tests.testapp.tasks import chaos_late, chaos_once

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow,
              pytest.mark.timeout(240)]

TASKS = 2000
CHAOS_SECONDS = 25
LEASE = 3.0


def _thaw(victim, frozen, slot):
    try:
        os.killpg(victim.pid, signal.SIGCONT)
    except ProcessLookupError:
        pass
    frozen.discard(slot)


def read(query):  # the database may be restarting under us
    for _ in range(100):
        try:
            return query()
        except DatabaseError:
            close_old_connections()
            connection.close()
            time.sleep(0.2)
    raise AssertionError("database unavailable for too long")


def test_chaos_nothing_lost(start_worker):
    rng = random.Random(20261121)
    once, late = [], []
    for i in range(TASKS):
        seconds = rng.choice([0, 0, 0, 0.005, 0.02, 0.1])
        if i % 2:
            late.append(chaos_late.delay(f"late-{i}", seconds).id)
        else:
            once.append(chaos_once.delay(f"once-{i}", seconds).id)

    def spawn(n):
        return start_worker("-c", "2", "-n", f"chaos{n}@test", "-l", "WARNING",
                            djq={"worker_lease": LEASE, "worker_heartbeat_interval": 0.3})

    workers = {n: spawn(n) for n in range(3)}
    serial = 3
    restarted = False
    deadline = time.monotonic() + CHAOS_SECONDS
    kills = Counter()
    frozen: set[int] = set()
    timers: list[threading.Timer] = []
    while time.monotonic() < deadline:
        time.sleep(rng.uniform(0.2, 0.8))
        slot = rng.choice(list(workers))
        victim = workers[slot]
        action = rng.choice(["child", "child", "worker", "group", "freeze"])
        if not restarted and time.monotonic() > deadline - CHAOS_SECONDS / 2:
            restart_postgres()
            restarted = True
            kills["postgres"] += 1
            continue
        if action == "freeze":
            if slot in frozen or victim.proc.poll() is not None:
                continue
            # A lease takeover: the whole worker is paused past its lease, the others
            # declare it dead and recover its rows, then it wakes up under its dead id.
            os.killpg(victim.pid, signal.SIGSTOP)
            frozen.add(slot)
            thaw = threading.Timer(LEASE + 1.5, _thaw, args=(victim, frozen, slot))
            thaw.daemon = True
            thaw.start()
            timers.append(thaw)
            kills["freeze"] += 1
            continue
        if action == "child":
            children = psutil.Process(victim.pid).children() if victim.proc.poll() is None else []
            if children:
                rng.choice(children).send_signal(signal.SIGKILL)
                kills["child"] += 1
                continue
        if action == "worker":
            victim.send_signal(signal.SIGKILL)  # main process only: its children live on
        else:
            victim.kill()  # the whole process group: the machine is gone
        kills[action] += 1
        frozen.discard(slot)
        workers[slot] = spawn(serial)
        serial += 1
    assert restarted
    for timer in timers:  # every frozen worker runs again before the end is judged
        timer.join()

    # Let the survivors finish everything (recovering the dead workers' rows).
    end = time.monotonic() + 120
    while time.monotonic() < end:
        unfinished = read(lambda: Task.objects.exclude(status=Status.DONE).count())
        if unfinished == 0:
            break
        time.sleep(0.5)
    unfinished = read(lambda: Task.objects.exclude(status=Status.DONE).count())
    assert unfinished == 0, "tasks never finished"

    rows = {str(t.id): t for t in read(lambda: list(Task.objects.all()))}
    assert len(rows) == TASKS
    assert not [t for t in rows.values() if t.state in (states.STARTED, states.RECEIVED,
                                                        states.PENDING)]
    runs = Counter(read(lambda: list(SideEffect.objects.values_list("key", flat=True))))

    def failed_on_database(row: Task) -> bool:
        # The task ran while PostgreSQL restarted and its own query failed: an ordinary
        # task failure, stored as such.
        return row.state == states.FAILURE and '"exc_module":"django.db.utils"' in row.result

    for i, task_id in enumerate(once):
        key, row = f"once-{2 * i}", rows[task_id]
        assert runs[key] <= 1, f"{key} ran {runs[key]} times without acks_late"
        if row.state == states.SUCCESS:
            assert runs[key] == 1
        else:
            assert row.state == states.FAILURE
            assert "WorkerLostError" in row.result or failed_on_database(row), row.result
    for i, task_id in enumerate(late):
        key, row = f"late-{2 * i + 1}", rows[task_id]
        if failed_on_database(row):
            continue
        assert runs[key] >= 1, f"{key} never ran despite acks_late: {row.state} {row.result}"
        assert row.state == states.SUCCESS, row.result
    print(f"chaos: {dict(kills)}; non-acks_late lost: "
          f"{sum(1 for t in once if rows[t].state != states.SUCCESS)}; acks_late re-runs: "
          f"{sum(runs[f'late-{2 * i + 1}'] - 1 for i in range(len(late)))}")
