"""A row whose data cannot be used fails alone: it ends FAILURE with DecodeError, and the
worker (and every other worker) goes on serving."""

from __future__ import annotations

import json

import pytest
from django.db import connection

from djq import states
from djq.models import Task
from tests.conftest import wait_for
from tests.testapp.tasks import add, count_run_late

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]

BAD_OPTIONS = ['{', '[]', '"text"', '{"time_limit": "abc"}', '{"soft_time_limit": -3}',
               '{"headers": 5, "link": "x"}']


def corrupt(task_id: str, options: str) -> None:
    # Written behind djq's back (apply_async refuses such options at call time).
    with connection.cursor() as cursor:
        cursor.execute("UPDATE djq_task SET options = %s WHERE id = %s", [options, task_id])


def test_rows_with_bad_options_fail_alone_and_every_worker_serves_on(start_worker, tmp_path):
    bad = []
    for options in BAD_OPTIONS:
        # acks_late: a row that killed its worker would be re-queued to kill the next one.
        result = count_run_late.apply_async((str(tmp_path / "runs"), "bad"), countdown=1)
        corrupt(result.id, options)
        bad.append(result)
    workers = [start_worker("-c", "2", "-n", f"w{i}@test") for i in range(2)]
    for result in bad:
        wait_for(lambda: result.state == states.FAILURE, 30,
                 message=f"row {result.id} to fail")
        row = Task.objects.get(id=result.id)
        assert json.loads(row.result)["exc_type"] == "DecodeError", row.result
    assert add.delay(2, 3).get(timeout=30) == 5
    for worker in workers:
        assert worker.proc.poll() is None, worker.output()
        assert worker.stop() == 0
    assert not (tmp_path / "runs").exists()  # none of them ran
