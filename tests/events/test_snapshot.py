"""Snapshot cameras: ``Polaroid`` (freq, maxrate, clear_after, signals, cleanup, cancel),
its timer, ``evcam`` and the built-in camera that stores snapshots in a table."""

from __future__ import annotations

import datetime
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.utils import timezone

from djq.contrib.snapshots.camera import Camera, percentile
from djq.contrib.snapshots.models import Snapshot
from djq.events.snapshot import Polaroid, TokenBucket, evcam, rate
from djq.events.state import State
from djq.events.timer import Timer
from tests.conftest import wait_for

from .test_state import ev, task_events


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class ManualEntry:
    def __init__(self, secs: float, fun: Callable[[], Any], due: float) -> None:
        self.secs, self.fun, self.due, self.canceled = secs, fun, due, False

    def cancel(self) -> None:
        self.canceled = True


class ManualTimer:
    """``call_repeatedly`` on a fake clock: ``advance()`` runs what falls due, in order."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.entries: list[ManualEntry] = []

    def call_repeatedly(self, secs: float, fun: Callable[[], Any]) -> ManualEntry:
        entry = ManualEntry(secs, fun, self.clock.now + secs)
        self.entries.append(entry)
        return entry

    def advance(self, seconds: float, step: float = 0.5) -> None:
        end = self.clock.now + seconds
        while self.clock.now < end:
            self.clock.now = min(end, self.clock.now + step)
            for entry in self.entries:
                while not entry.canceled and entry.due <= self.clock.now + 1e-9:
                    entry.due += entry.secs
                    entry.fun()


class Counting(Polaroid):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shutters: list[int] = []
        self.cleanups = 0

    def on_shutter(self, state: State) -> None:
        self.shutters.append(len(state.tasks))

    def on_cleanup(self) -> None:
        self.cleanups += 1


def manual_camera(freq: float = 1.0, maxrate: str | None = None,
                  cleanup_freq: float = 3600.0, cls: type[Counting] = Counting,
                  state: State | None = None) -> tuple[Counting, ManualTimer]:
    clock = FakeClock()
    timer = ManualTimer(clock)
    cam = cls(state or State(), freq=freq, maxrate=maxrate, cleanup_freq=cleanup_freq,
              timer=timer)
    if cam.maxrate is not None:
        cam.maxrate.clock = clock
        cam.maxrate.timestamp = clock()
    return cam, timer


def test_rate_strings():
    assert rate("10/m") == pytest.approx(10 / 60)
    assert rate("5/s") == rate("5") == rate(5) == 5.0
    assert rate("36/h") == pytest.approx(0.01)
    assert rate(None) == rate("") == 0.0
    with pytest.raises(ValueError):
        rate("ten/m")


def test_token_bucket_has_capacity_one_and_refills_at_its_rate():
    clock = FakeClock()
    bucket = TokenBucket(rate("10/m"), clock=clock)
    assert bucket.can_consume()
    assert not bucket.can_consume()
    assert bucket.expected_time() == pytest.approx(6.0)
    clock.now += 5.9
    assert not bucket.can_consume()
    clock.now += 0.2
    assert bucket.can_consume()
    clock.now += 600  # a long pause still gives one token only
    assert bucket.can_consume() and not bucket.can_consume()


def test_shutter_count_follows_freq():
    cam, timer = manual_camera(freq=2.0)
    cam.install()
    timer.advance(60)
    assert len(cam.shutters) == 30


def test_shutter_count_is_capped_by_maxrate():
    cam, timer = manual_camera(freq=1.0, maxrate="10/m")
    cam.install()
    timer.advance(60)
    # Captures at t=1..60: the bucket starts full (a shutter at t=1), then refills one
    # token every 6 s counted from its creation (t=6, 12, ..., 60), as kombu's does.
    assert len(cam.shutters) == 11
    timer.advance(60)
    assert len(cam.shutters) == 21  # 10 more a minute, never a burst


def test_cleanup_runs_every_cleanup_freq():
    cam, timer = manual_camera(freq=1.0, cleanup_freq=10.0)
    cam.install()
    timer.advance(35)
    assert cam.cleanups == 3
    assert len(cam.shutters) == 35


def test_shutter_and_cleanup_signals():
    state = State()
    cam, timer = manual_camera(freq=1.0, cleanup_freq=2.0, state=state)
    got: list[tuple[str, Any]] = []

    def on_shutter(sender: Any, **kwargs: Any) -> None:
        got.append(("shutter", sender))

    def on_cleanup(sender: Any, **kwargs: Any) -> None:
        got.append(("cleanup", sender))

    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bad receiver")

    Polaroid.shutter_signal.connect(on_shutter)
    Polaroid.shutter_signal.connect(broken)
    Polaroid.cleanup_signal.connect(on_cleanup)
    try:
        cam.install()
        timer.advance(2)
    finally:
        Polaroid.shutter_signal.disconnect(on_shutter)
        Polaroid.shutter_signal.disconnect(broken)
        Polaroid.cleanup_signal.disconnect(on_cleanup)
    assert got == [("shutter", state), ("shutter", state), ("cleanup", state)]
    assert len(cam.shutters) == 2  # a receiver that raises does not stop the camera


def test_maxrate_skips_the_signal_too():
    cam, timer = manual_camera(freq=1.0, maxrate="1/m")
    sent: list[Any] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        sent.append(sender)

    Polaroid.shutter_signal.connect(receiver)
    try:
        cam.install()
        timer.advance(30)
    finally:
        Polaroid.shutter_signal.disconnect(receiver)
    assert len(sent) == len(cam.shutters) == 1


def test_clear_after_forgets_finished_tasks_after_each_capture():
    class Clearing(Counting):
        clear_after = True

    state = State()
    cam, timer = manual_camera(freq=1.0, cls=Clearing, state=state)
    cam.install()
    done, running = str(uuid.uuid4()), str(uuid.uuid4())
    for e in task_events(done, "received", "succeeded") + task_events(running, "received"):
        state.event(e)
    timer.advance(1)
    assert cam.shutters == [2]  # the shutter saw both
    assert list(state.tasks) == [running]  # then the finished one went
    timer.advance(1)
    assert cam.shutters == [2, 1]
    # Without clear_after, nothing is forgotten.
    keep_state = State()
    keeping, keep_timer = manual_camera(freq=1.0, state=keep_state)
    keeping.install()
    for e in task_events(done, "received", "succeeded"):
        keep_state.event(e)
    keep_timer.advance(3)
    assert keeping.shutters == [1, 1, 1]


def test_capture_runs_on_shutter_with_the_state_frozen():
    state = State()
    seen: list[bool] = []

    class Probe(Polaroid):
        def on_shutter(self, state: State) -> None:
            applied = threading.Event()
            thread = threading.Thread(target=lambda: (state.event(ev("worker-online")),
                                                      applied.set()))
            thread.start()
            time.sleep(0.1)
            seen.append(applied.is_set())
            self.thread = thread

    cam = Probe(state, timer=ManualTimer(FakeClock()))
    cam.capture()
    cam.thread.join(5)
    assert seen == [False]
    assert "w1@test" in state.workers


def test_cancel_takes_one_last_shutter_and_context_manager():
    cam, timer = manual_camera(freq=10.0)
    with cam:
        timer.advance(5)
        assert cam.shutters == []
    assert len(cam.shutters) == 1  # cancel() captured what came since
    assert all(e.canceled for e in timer.entries)
    cam.cancel()  # a second cancel takes no more
    assert len(cam.shutters) == 1
    timer.advance(60)
    assert len(cam.shutters) == 1


def test_real_timer_shutters_against_freq_and_maxrate():
    timer = Timer()
    try:
        cam = Counting(State(), freq=0.05, timer=timer)
        cam.install()
        wait_for(lambda: len(cam.shutters) >= 5, timeout=10, message="5 shutters")
        cam.cancel()
        count = len(cam.shutters)
        time.sleep(0.2)
        assert len(cam.shutters) == count  # cancelled: no more

        limited = Counting(State(), freq=0.01, maxrate="10/s", timer=timer)
        started = time.monotonic()
        limited.install()
        time.sleep(0.6)
        limited._tref.cancel()
        elapsed = time.monotonic() - started
        # A full bucket, then at most 10 a second, however often the timer fires.
        assert 2 <= len(limited.shutters) <= 1 + 10 * elapsed + 1
    finally:
        timer.stop()


def test_timer_survives_a_raising_entry_and_cancels():
    timer = Timer()
    calls: list[int] = []

    def bad() -> None:
        calls.append(1)
        raise RuntimeError("boom")

    try:
        entry = timer.call_repeatedly(0.02, bad)
        wait_for(lambda: len(calls) >= 3, timeout=10, message="three calls")
        entry.cancel()
        n = len(calls)
        time.sleep(0.1)
        assert len(calls) <= n + 1
        with pytest.raises(ValueError):
            timer.call_repeatedly(0, bad)
    finally:
        timer.stop()


def test_percentile():
    assert percentile([], 50) is None
    assert percentile([3.0], 99) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == pytest.approx(2.5)
    assert percentile(list(map(float, range(101))), 90) == pytest.approx(90.0)


@pytest.mark.django_db(transaction=True)
def test_builtin_camera_stores_counts_gauges_and_runtimes():
    from tests.testapp.tasks import add

    waiting = add.apply_async((1, 1), queue="bulk")  # a due task in queue "bulk"
    add.apply_async((1, 1), queue="bulk", countdown=300)  # and a scheduled one
    state = State.from_database()
    assert str(waiting.id) in state.tasks
    old = str(uuid.uuid4())
    for e in task_events(old, "received", "succeeded"):  # ended before the camera
        state.event(e)
    cam, timer = manual_camera(freq=1.0, cls=Camera, state=state)  # type: ignore[arg-type]
    cam.install()
    ids = [str(uuid.uuid4()) for _ in range(4)]
    for i, tid in enumerate(ids[:3]):
        kinds = ("received", "started", "succeeded") if i < 2 else ("received", "failed")
        for e in task_events(tid, *kinds, routing_key="bulk", runtime=float(i + 1)):
            state.event(e)
    for e in task_events(ids[3], "received", "retried", hostname="w2@other",
                         routing_key="bulk"):
        state.event(e)
    timer.advance(1)
    rows = {(r.kind, r.name): r for r in Snapshot.objects.all()}
    cluster = rows[("cluster", "")]
    assert (cluster.processed, cluster.succeeded, cluster.failed, cluster.retried) == (3, 2, 1, 1)
    assert cluster.queue_depth == 1 and cluster.scheduled == 1
    assert cluster.runtime_p50 == pytest.approx(2.0) and cluster.runtime_max == 3.0
    bulk = rows[("queue", "bulk")]
    assert (bulk.processed, bulk.retried, bulk.queue_depth, bulk.scheduled) == (3, 1, 1, 1)
    w1 = rows[("worker", "w1@test")]
    assert (w1.processed, w1.succeeded, w1.failed, w1.retried) == (3, 2, 1, 0)
    assert w1.alive is False  # no heartbeat row: not online
    assert rows[("worker", "w2@other")].retried == 1
    assert cluster.interval == 1.0
    # Counted once: the next shutter has nothing new.
    timer.advance(1)
    latest = Snapshot.objects.filter(kind="cluster").order_by("-taken_at").first()
    assert latest is not None and latest.processed == 0 and latest.retried == 0
    assert Snapshot.objects.filter(kind="cluster").count() == 2


@pytest.mark.django_db(transaction=True)
def test_builtin_camera_cleanup_prunes_old_snapshots():
    now = timezone.now()
    for age in (0, 3, 10):
        Snapshot.objects.create(taken_at=now - datetime.timedelta(days=age), interval=1.0,
                                kind="cluster")

    class Keep5Days(Camera):
        keep = datetime.timedelta(days=5)

    cam, timer = manual_camera(freq=100.0, cleanup_freq=1.0, cls=Keep5Days)  # type: ignore[arg-type]
    cam.install()
    timer.advance(1)
    assert sorted(round((now - s.taken_at).total_seconds() / 86400)
                  for s in Snapshot.objects.all()) == [0, 3]


@pytest.mark.django_db(transaction=True)
def test_evcam_runs_a_camera_on_the_live_stream():
    from djq.events.dispatcher import EventDispatcher
    from djq.events.receivers import EVENTS_CHANNEL
    from djq.db import open_connection

    shots: list[int] = []

    class Recorder(Polaroid):
        def on_shutter(self, state: State) -> None:
            shots.append(len(state.tasks))

    tid = str(uuid.uuid4())

    def publish() -> None:
        time.sleep(0.3)
        dispatcher = EventDispatcher("w5@test", channel=EVENTS_CHANNEL)
        dispatcher.send("task-received", uuid=tid, name="x.y", args="[]", kwargs="{}")
        dispatcher.send("task-succeeded", uuid=tid, result="1", runtime=0.1)
        with open_connection() as conn:
            dispatcher.flush(conn)

    thread = threading.Thread(target=publish)
    thread.start()
    cam = evcam(Recorder, freq=0.1, loglevel=None, limit=2, timeout=15)
    thread.join(5)
    assert cam.state.tasks[tid].state == "SUCCESS"
    assert shots and shots[-1] == 1  # cancel() took a last shutter with the task in it
    assert cam._tref is None
