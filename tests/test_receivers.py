"""djq's state receivers (issue 13): connected by ``djq.signals`` as it is imported, run
before any user's receiver, and answer each signal with the outcome the worker stores."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest

from djq import receivers, serialization, signals, states, trace
from djq.exceptions import OutcomeNotRecorded

ADD = "tests.testapp.tasks.add"


def _row(name: str = ADD, args: str = "[2, 3]") -> dict[str, Any]:
    """A claimed row, as a pool hands it to :func:`djq.trace.execute`."""
    task_id = str(uuid.uuid4())
    return {"id": task_id, "name": name, "queue": "default", "priority": 0, "args": args,
            "kwargs": "{}", "options": "{}", "retries": 0, "eta": None, "expires": None,
            "parent_id": None, "root_id": task_id, "group_id": None}


@pytest.mark.parametrize("signal, receiver", [
    (signals.task_success, receivers.on_success), (signals.task_failure, receivers.on_failure),
    (signals.task_retry, receivers.on_retry), (signals.task_revoked, receivers.on_revoked),
    (signals.task_unknown, receivers.on_unknown),
])
def test_state_receivers_are_connected_first_without_ready(signal: Any, receiver: Any) -> None:
    seen: list[str] = []

    def user_receiver(sender: Any = None, **kwargs: Any) -> None:
        seen.append("user")

    signal.connect(user_receiver, dispatch_uid="tests.receivers.user", weak=False)
    try:
        names = [r.__name__ for r in signal._live_receivers(None)[0]]
        assert names[0] == receiver.__name__ and names[-1] == "user_receiver"
    finally:
        signal.disconnect(dispatch_uid="tests.receivers.user")


def test_the_outcome_comes_back_from_the_success_receiver() -> None:
    stored: list[Any] = []

    def user_receiver(sender: Any = None, result: Any = None, **kwargs: Any) -> None:
        stored.append(result)

    signals.task_success.connect(user_receiver, dispatch_uid="tests.receivers.ok", weak=False)
    try:
        row = _row()
        [outcome] = trace.execute(row, "host")
    finally:
        signals.task_success.disconnect(dispatch_uid="tests.receivers.ok")
    assert (str(outcome.id), outcome.state, outcome.result) == (row["id"], states.SUCCESS, "5")
    assert stored == [5]  # the user's receiver ran too, after djq's


def test_failure_and_unknown_names_are_answered_too() -> None:
    [failed] = trace.execute(_row(args='["a", 1]'), "host")
    assert failed.state == states.FAILURE
    assert serialization.loads(failed.result)["exc_type"] == "TypeError"
    [unknown] = trace.execute(_row(name="tests.nowhere.nothing"), "host")
    assert unknown.state == states.FAILURE
    assert serialization.loads(unknown.result)["exc_type"] == "NotRegistered"


def test_no_state_receiver_answering_is_a_named_error(caplog: pytest.LogCaptureFixture) -> None:
    signal = signals.task_success
    saved = list(signal.receivers)
    assert signal.disconnect(dispatch_uid=receivers.DISPATCH_PREFIX + "on_success")
    caplog.set_level(logging.ERROR, logger="djq.worker")
    try:
        row = _row()
        [outcome] = trace.execute(row, "host")
    finally:
        with signal.lock:  # back as it was: djq's receiver first
            signal.receivers[:] = saved
            signal.sender_receivers_cache.clear()
    error = serialization.loads(outcome.result)
    assert (outcome.state, error["exc_type"]) == (states.FAILURE, OutcomeNotRecorded.__name__)
    assert "task_success" in error["exc_message"][0]
    assert any(r.levelname == "ERROR" and "task_success" in r.getMessage()
               for r in caplog.records)
