"""Celery's ``imports``/``include`` settings: a worker loads task modules other than
``<app>.tasks`` (issue 14)."""

from __future__ import annotations

import pytest

from djq import signature
from djq.exceptions import NotRegistered

pytestmark = pytest.mark.django_db(transaction=True)

TRIPLE = "tests.testapp.jobs.triple"


@pytest.mark.parametrize("key", ["imports", "include"])
def test_a_worker_imports_the_listed_task_modules(start_worker, key):
    start_worker(djq={key: ["tests.testapp.jobs"]})
    assert signature(TRIPLE, args=(4,)).delay().get(timeout=20) == 12


def test_without_them_the_module_is_not_loaded(start_worker):
    start_worker()
    with pytest.raises(NotRegistered):
        signature(TRIPLE, args=(4,)).delay().get(timeout=20)
