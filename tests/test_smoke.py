from __future__ import annotations

import pytest

from djq import states
from tests.testapp.tasks import add

pytestmark = pytest.mark.django_db(transaction=True)


def test_add_delay_round_trip(worker):
    result = add.delay(2, 3)
    assert result.get(timeout=15) == 5
    assert result.state == states.SUCCESS
    assert result.successful()
    assert result.worker == "w1@test"
