"""The event stream: workers started with -E publish Celery's events through PostgreSQL,
``djq_events --dump`` prints them, and a State follows them."""

from __future__ import annotations

import datetime
import json
import signal
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from djq import AsyncResult, states
from djq.contrib.snapshots.models import Snapshot
from djq.events.dispatcher import (
    EVENT_LIMIT, PAYLOAD_LIMIT, EventDispatcher, batch_payloads,
)
from djq.events.receiver import Receiver
from djq.events.state import State
from djq.exceptions import TaskRevokedError
from djq.management.commands.djq_events import Dumper
from tests.cli import Running
from tests.conftest import wait_for
from tests.testapp.tasks import add, div, fail, sleep

COMMON = {"type", "hostname", "timestamp", "local_received", "clock", "utcoffset", "pid"}
WORKER_FIELDS = {"freq", "active", "processed", "loadavg", "sw_ident", "sw_ver", "sw_sys"}


class Collector:
    """Events received, in order; ``wait()`` reads the stream until a condition holds."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.receiver = Receiver({"*": self.events.append})

    def of(self, type_: str, uuid_: Any = None,
           hostname: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == type_
                and (uuid_ is None or e.get("uuid") == str(uuid_))
                and (hostname is None or e.get("hostname") == hostname)]

    def wait(self, predicate: Callable[[], Any], message: str, timeout: float = 30) -> Any:
        def check() -> Any:
            self.receiver.capture(timeout=0.1)
            return predicate()

        return wait_for(check, timeout=timeout, message=message)

    def close(self) -> None:
        self.receiver.close()


@pytest.fixture
def collector() -> Any:
    c = Collector()
    yield c
    c.close()


pytestmark = pytest.mark.django_db(transaction=True)


def test_prefork_worker_publishes_celerys_events(start_worker, collector, settings):
    settings.DJQ = {**settings.DJQ, "task_send_sent_event": True}
    dump = Running("djq_events", "--dump", "--json")
    try:
        dump.wait_line("Dumping events", stream="stderr")
        worker = start_worker("-E", "-n", "ev1@host-a")
        ok = add.delay(2, 3)
        hidden = add.apply_async((3, 4), argsrepr="('***', 4)")
        bad = fail.delay("boom")
        retried = div.delay(1, 0)  # retries twice (0.2 s apart), then fails
        expired = add.apply_async((1, 1), expires=timezone.now() - datetime.timedelta(seconds=1))
        long = sleep.delay(30)
        assert ok.get(timeout=20) == 5
        assert hidden.get(timeout=20) == 7
        collector.wait(lambda: collector.of("task-started", long.id), "long task started")
        long.revoke(terminate=True)
        with pytest.raises(TaskRevokedError):
            long.get(timeout=20)
        collector.wait(lambda: (collector.of("task-failed", retried.id)
                                and collector.of("task-revoked", long.id)
                                and collector.of("task-revoked", expired.id)
                                and collector.of("task-failed", bad.id)
                                and collector.of("worker-heartbeat")),
                       "every task's last event")
        assert worker.stop() == 0
        collector.wait(lambda: collector.of("worker-offline"), "worker-offline")
    finally:
        dump_code = dump.stop()
    host = "ev1@host-a"
    events = collector.events
    for e in events:
        assert COMMON <= set(e), e
        if e["type"].startswith("task-"):
            assert "uuid" in e, e
    # worker-online first, worker-offline last (of this worker's events).
    mine = [e for e in events if e["hostname"] == host]
    assert mine[0]["type"] == "worker-online" and mine[-1]["type"] == "worker-offline"
    for kind in ("worker-online", "worker-heartbeat", "worker-offline"):
        ev = collector.of(kind, hostname=host)[0]
        assert WORKER_FIELDS <= set(ev)
        assert ev["freq"] == 0.5 and ev["sw_ident"] == "py-djq" and ev["pid"] == worker.pid
        assert isinstance(ev["loadavg"], list) and isinstance(ev["processed"], int)

    sent = collector.of("task-sent", ok.id)[0]
    assert sent["name"] == "tests.testapp.tasks.add" and sent["queue"] == "default"
    assert sent["args"] == "(2, 3)" and sent["hostname"].startswith("gen")
    received = collector.of("task-received", ok.id)[0]
    assert received["name"] == "tests.testapp.tasks.add" and received["hostname"] == host
    assert received["args"] == "(2, 3)" and received["kwargs"] == "{}"  # Celery's reprs
    assert collector.of("task-received", hidden.id)[0]["args"] == "('***', 4)"
    assert received["retries"] == 0 and received["root_id"] == str(ok.id)
    assert {"eta", "expires", "parent_id"} <= set(received)
    started = collector.of("task-started", ok.id)[0]
    assert started["pid"] == worker.pid  # the worker hands it to its pool
    succeeded = collector.of("task-succeeded", ok.id)[0]
    assert succeeded["result"] == "5" and succeeded["runtime"] >= 0
    assert succeeded["pid"] != worker.pid  # measured in the pool process
    # The Lamport clock orders a task's events across the worker and its pool process.
    assert received["clock"] < started["clock"] < succeeded["clock"]

    failed = collector.of("task-failed", bad.id)[0]
    assert failed["exception"] == "ValueError('boom')"
    assert "ValueError: boom" in failed["traceback"]
    retries = collector.of("task-retried", retried.id)
    assert len(retries) == 2 and "ZeroDivisionError" in retries[0]["exception"]
    assert "traceback" in retries[0]
    assert len(collector.of("task-received", retried.id)) == 3
    assert "ZeroDivisionError" in collector.of("task-failed", retried.id)[0]["exception"]
    revoked = collector.of("task-revoked", expired.id)[0]
    assert (revoked["expired"], revoked["terminated"], revoked["signum"]) == (True, False, None)
    terminated = collector.of("task-revoked", long.id)[0]
    assert (terminated["terminated"], terminated["signum"], terminated["expired"]) == (
        True, int(signal.SIGTERM), False)

    state = State()
    for e in events:
        state.event(dict(e))
    assert state.tasks[str(ok.id)].state == states.SUCCESS
    assert state.tasks[str(ok.id)].result == "5"
    assert state.tasks[str(bad.id)].state == states.FAILURE
    assert state.tasks[str(long.id)].state == states.REVOKED
    assert state.tasks[str(ok.id)].client.startswith("gen")
    assert not state.workers[host].alive  # it said goodbye

    # The dump printed the same stream, one JSON object per line.
    assert dump_code == 0
    dumped = [json.loads(line) for line in dump.stdout if line.startswith("{")]
    assert {e["type"] for e in dumped} >= {"worker-online", "task-received", "task-started",
                                           "task-succeeded", "task-failed", "task-retried",
                                           "task-revoked", "worker-offline", "task-sent"}
    assert any(e.get("uuid") == str(ok.id) and e["type"] == "task-succeeded" for e in dumped)


def test_threads_pool_events_a_quiet_worker_and_the_camera_command(start_worker, collector):
    camera = Running("djq_events", "--camera", "djq.contrib.snapshots.camera.Camera",
                     "--frequency", "0.3", "--cleanup-freq", "60")
    try:
        camera.wait_line("Taking snapshots with")
        noisy = start_worker("-E", "-P", "threads", "-Q", "evq", "-n", "ev2@host-b")
        start_worker("-Q", "quiet", "-n", "quiet@host-c")  # no -E
        results = [add.apply_async((i, i), queue="evq") for i in range(3)]
        quiet = add.apply_async((1, 1), queue="quiet")
        assert [r.get(timeout=20) for r in results] == [0, 2, 4]
        assert quiet.get(timeout=20) == 2
        collector.wait(lambda: all(collector.of("task-succeeded", r.id) for r in results),
                       "succeeded events")
        for r in results:
            pids = {e["pid"] for e in collector.events if e.get("uuid") == str(r.id)}
            assert pids == {noisy.pid}  # threads: every event from the worker's process
        # The worker without -E published nothing, and a moment later still nothing.
        collector.receiver.capture(timeout=1.0)
        assert not [e for e in collector.events if e.get("uuid") == str(quiet.id)
                    or e["hostname"] == "quiet@host-c"]
        # The camera stored the three tasks, per cluster, queue and worker.
        def stored() -> bool:
            return sum(s.processed for s in Snapshot.objects.filter(kind="queue",
                                                                    name="evq")) >= 3
        wait_for(stored, timeout=20, message="snapshots counting the tasks")
        worker_rows = Snapshot.objects.filter(kind="worker", name="ev2@host-b")
        assert sum(s.succeeded for s in worker_rows) == 3
        assert worker_rows.filter(alive=True).exists()
        assert Snapshot.objects.filter(kind="worker", name="quiet@host-c", alive=True).exists()
        assert Snapshot.objects.filter(kind="cluster", workers=2).exists()
        before = Snapshot.objects.filter(kind="cluster").count()
        assert camera.stop() == 0
        # cancel() took one last shutter on the way out.
        assert Snapshot.objects.filter(kind="cluster").count() >= before + 1
    finally:
        camera.kill()


def test_camera_command_errors():
    with pytest.raises(CommandError, match="Cannot import camera 'no.such.Camera'"):
        call_command("djq_events", "--camera", "no.such.Camera")
    with pytest.raises(CommandError, match="Not a rate"):
        call_command("djq_events", "--camera", "djq.events.snapshot.Polaroid",
                     "--maxrate", "often")
    with pytest.raises(CommandError, match="more than 0"):
        call_command("djq_events", "--camera", "djq.events.snapshot.Polaroid",
                     "--frequency", "0")


def test_dumper_formats_lines_as_celery_does():
    dumper = Dumper()
    tid = str(uuid.uuid4())
    base = {"hostname": "w1@h", "timestamp": 0.0, "clock": 1, "pid": 1, "utcoffset": 0}
    assert dumper.format({**base, "type": "worker-online", "freq": 2.0}) == \
        "w1@h [1970-01-01 00:00:00.000000] started: freq=2.0"
    assert dumper.format({**base, "type": "task-received", "uuid": tid, "name": "app.add",
                          "args": "[1,2]", "kwargs": "{}", "retries": 0}) == \
        f"w1@h [1970-01-01 00:00:00.000000] task received: app.add({tid}) args=[1,2] " \
        "kwargs={} retries=0"
    line = dumper.format({**base, "type": "task-succeeded", "uuid": tid, "result": "3",
                          "runtime": 0.5})
    assert line.endswith(f"task succeeded: app.add({tid}) args=[1,2] kwargs={{}} "
                         "result=3, runtime=0.5")


def test_payloads_stay_under_the_notify_limit():
    dispatcher = EventDispatcher("w1@test")
    for i in range(200):
        dispatcher.send("task-succeeded", uuid=str(uuid.uuid4()), result="x" * 500,
                        runtime=0.1)
    dispatcher.send("task-failed", uuid=str(uuid.uuid4()), exception="E()",
                    traceback="line\n" * 10_000 + "ValueError: the end")
    dispatcher.send("task-received", uuid=str(uuid.uuid4()), name="n", args="a" * 20_000)
    assert dispatcher.take_notifications() == []  # not due yet: gathered a while
    notifications = dispatcher.take_notifications(force=True)
    assert dispatcher.take_notifications(force=True) == []
    events = []
    for channel, payload in notifications:
        assert channel == "djq_events" and len(payload.encode()) <= PAYLOAD_LIMIT
        events.extend(json.loads(payload))
    assert len(events) == 202
    assert len(notifications) < 202 / 5  # several events per NOTIFY
    failed = next(e for e in events if e["type"] == "task-failed")
    assert failed["traceback"].endswith("ValueError: the end")  # the end of it is kept
    assert len(json.dumps(failed)) <= EVENT_LIMIT + 100
    assert [json.loads(p) for p in batch_payloads(['{"a":1}', '{"b":2}'])] == [
        [{"a": 1}, {"b": 2}]]
    assert [e["clock"] for e in events] == sorted(e["clock"] for e in events)


def test_no_task_sent_event_unless_asked_and_none_for_rolled_back_sends(collector, settings):
    from django.db import transaction

    quiet = add.delay(1, 2)
    settings.DJQ = {**settings.DJQ, "task_send_sent_event": True}
    loud = add.delay(3, 4)
    with pytest.raises(RuntimeError), transaction.atomic():
        rolled_back = add.delay(5, 6)
        raise RuntimeError("roll back")
    collector.wait(lambda: collector.of("task-sent", loud.id), "task-sent")
    collector.receiver.capture(timeout=0.3)
    assert not collector.of("task-sent", quiet.id)
    assert not collector.of("task-sent", rolled_back.id)
    assert AsyncResult(rolled_back.id).state == states.PENDING


def test_revoke_outside_a_worker_publishes_task_revoked(collector):
    waiting = add.apply_async((1, 2), countdown=60)
    waiting.revoke()
    collector.wait(lambda: collector.of("task-revoked", waiting.id), "task-revoked")
    event = collector.of("task-revoked", waiting.id)[0]
    assert event["terminated"] is False and event["expired"] is False
    assert COMMON <= set(event)
