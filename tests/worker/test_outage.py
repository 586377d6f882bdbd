"""Workers survive their database connections being cut."""

from __future__ import annotations

import pytest
from django.db import connection

from djq import states
from tests.conftest import wait_for
from tests.testapp.tasks import add, sleep

pytestmark = pytest.mark.django_db(transaction=True)


def cut_worker_connections() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name LIKE 'djq %%' AND datname = current_database()"
        )
        return int(cursor.fetchone()[0])


def test_cut_connections_mid_task_result_is_still_written(worker):
    running = sleep.delay(1.5)
    wait_for(lambda: running.date_started is not None, message="task to start")
    assert cut_worker_connections() >= 1
    assert running.get(timeout=30) == 1.5
    assert running.state == states.SUCCESS
    # The worker reconnected and goes on serving.
    assert add.delay(20, 22).get(timeout=30) == 42
    assert "Database connection lost" in worker.output()
    assert "Database connection restored" in worker.output()


def test_worker_keeps_serving_after_repeated_cuts(worker):
    for i in range(3):
        assert add.delay(i, 1).get(timeout=30) == i + 1
        cut_worker_connections()
    assert add.delay(5, 5).get(timeout=30) == 10
