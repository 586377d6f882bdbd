"""Tasks outside ``tasks.py``: a worker knows them only through the ``imports`` setting
(issue 14)."""

from __future__ import annotations

from djq import task


@task(name="tests.testapp.jobs.triple")
def triple(x: int) -> int:
    return 3 * x
