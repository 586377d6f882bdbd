"""Building and publishing events: Celery's event dicts, sent as PostgreSQL NOTIFYs.

A worker started with ``-E`` (or ``worker_send_task_events``) enables one
:class:`EventDispatcher` per process (:func:`enable`) before its pool starts, so pool
processes inherit it. Events are encoded to JSON where they happen and buffered; nothing
talks to the database for them on its own:

- a prefork pool process hands its events to the worker with the outcome it already
  sends over its pipe (:func:`to_parent` / :func:`from_child`);
- the worker gathers events for :data:`FLUSH_AFTER` seconds, then sends them inside the
  transaction of its next loop round trip (``broker.cycle(..., notify=...)``), as a few
  NOTIFYs on :data:`EVENTS_CHANNEL`, each a JSON array of events under PostgreSQL's
  8000-byte payload limit: a busy worker pays no round trip and no commit for them;
- a worker with no round trip to make makes one for them after ``2 * FLUSH_AFTER``
  (:meth:`EventDispatcher.before_wait` wakes it), so events are never held longer.

Worker events (online, heartbeat, offline) are sent at once on the connection at hand.
NOTIFY is transactional: an event sent in a transaction that rolls back is never seen,
and, as with Celery, nobody stores events; monitors see them while they listen.
"""

from __future__ import annotations

import json
import os
import platform
import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from .. import __version__, broker, states

#: The NOTIFY channel events travel on.
EVENTS_CHANNEL = "djq_events"
#: Bytes per NOTIFY payload (PostgreSQL refuses 8000 and more).
PAYLOAD_LIMIT = 7900
#: Bytes one encoded event may take; longer tracebacks and reprs are cut to fit.
EVENT_LIMIT = 7000
#: Celery's ``resultrepr_maxsize`` and ``argsrepr_maxsize``.
REPR_LIMIT = 1024
#: Seconds events are gathered before they go out, with the worker's next round trip
#: (or alone if it has none): one NOTIFY transaction carries many events.
FLUSH_AFTER = 0.1

SW_IDENT = "py-djq"
SW_VER = __version__
SW_SYS = platform.system()

_encoder = json.JSONEncoder(separators=(",", ":"), default=str)


def utcoffset() -> int:
    """Celery's ``utcoffset()``: hours west of UTC of this machine's local time now."""
    if time.localtime().tm_isdst:
        return time.altzone // 3600
    return time.timezone // 3600


def event(type_: str, _fields: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """An event dict as Celery's ``Event()`` makes it: the fields, ``type`` and a
    ``timestamp`` (now, unless given)."""
    out = dict(_fields or {}, **fields)
    out["type"] = type_
    if not out.get("timestamp"):
        out["timestamp"] = time.time()
    return out


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - 3)] + "..."


def saferepr(value: Any, limit: int = REPR_LIMIT) -> str:
    """``repr(value)`` cut to ``limit`` characters; never raises."""
    try:
        text = repr(value)
    except Exception as exc:  # noqa: BLE001 - a broken __repr__ must not lose the event
        text = f"<unrepresentable {type(value).__name__}: {exc!r}>"
    return truncate(text, limit)


def loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


class Clock:
    """A Lamport clock: ``forward()`` before each event; ``adjust()`` on hearing of
    another process's clock, so events caused by others order after theirs."""

    def __init__(self, value: int = 0) -> None:
        self.value = value
        self._lock = threading.Lock()

    def forward(self) -> int:
        with self._lock:
            self.value += 1
            return self.value

    def adjust(self, other: int) -> int:
        with self._lock:
            self.value = max(self.value, int(other)) + 1
            return self.value


class EventDispatcher:
    """Builds, encodes and buffers the events of one worker process.

    ``send()`` is cheap (the event's own fields go through the C JSON encoder; the
    fields every event of the process shares are encoded once). The buffer is due
    :data:`FLUSH_AFTER` seconds after its oldest event and goes out with the worker's
    next round trip (:meth:`take_notifications`); a worker with nothing else to do
    makes one for it after twice that (:meth:`before_wait` wakes it); :meth:`flush`
    sends it now. Safe to use from several threads.
    """

    def __init__(self, hostname: str, enabled: bool = True, channel: str = EVENTS_CHANNEL,
                 freq: float = 2.0) -> None:
        self.hostname = hostname
        self.enabled = enabled
        self.channel = channel
        self.freq = float(freq)
        self.clock = Clock()
        self.buffer: deque[str] = deque()
        self._oldest = 0.0  # monotonic time the oldest buffered event was put in
        self._started: dict[str, float] = {}  # task id -> monotonic start (runtime)
        self._shared = ""  # the encoded hostname, utcoffset and pid
        self._shared_key: tuple[int, int] = (0, 0)  # (pid, minute) it was made for

    # -- building ----------------------------------------------------------------------
    def build(self, type_: str, **fields: Any) -> dict[str, Any]:
        """The event as Celery's dispatcher publishes it: with hostname, utcoffset, pid
        and clock."""
        fields.setdefault("hostname", self.hostname)
        return event(type_, fields, utcoffset=utcoffset(), pid=os.getpid(),
                     clock=self.clock.forward())

    @staticmethod
    def encode(ev: dict[str, Any]) -> str:
        """JSON text of ``ev`` (ASCII, so characters are bytes), cut to
        :data:`EVENT_LIMIT`: the traceback keeps its end, other strings their start."""
        text = _encoder.encode(ev)  # ASCII: its length is its size in bytes
        if len(text) <= EVENT_LIMIT:
            return text
        ev = dict(ev)
        tb = ev.get("traceback")
        if isinstance(tb, str) and tb:
            keep = max(200, len(tb) - (len(text) - EVENT_LIMIT) - 200)
            ev["traceback"] = "..." + tb[-keep:]
            text = _encoder.encode(ev)
        limit = REPR_LIMIT
        while len(text) > EVENT_LIMIT and limit >= 16:
            ev = {k: truncate(v, limit) if isinstance(v, str) else v for k, v in ev.items()}
            text = _encoder.encode(ev)
            limit //= 2
        return text

    def _shared_fields(self) -> str:
        pid = os.getpid()
        key = (pid, int(time.monotonic() // 60))  # the UTC offset may change (DST)
        if key != self._shared_key:
            self._shared = _encoder.encode(
                {"hostname": self.hostname, "utcoffset": utcoffset(), "pid": pid})[1:-1]
            self._shared_key = key
        return self._shared

    def send(self, type_: str, **fields: Any) -> None:
        """Build an event and buffer it (nothing while disabled)."""
        if not self.enabled:
            return
        if "hostname" in fields:
            text = self.encode(self.build(type_, **fields))
        else:
            own = _encoder.encode(fields)
            text = (f'{own[:-1]}{"," if fields else ""}{self._shared_fields()},'
                    f'"clock":{self.clock.forward()},"type":"{type_}",'
                    f'"timestamp":{time.time()!r}}}')
            if len(text) > EVENT_LIMIT:
                text = self.encode(json.loads(text))
        self.put((text,))

    # -- the buffer --------------------------------------------------------------------
    def put(self, encoded: Iterable[str]) -> None:
        if not self.buffer:
            self._oldest = time.monotonic()
        self.buffer.extend(encoded)

    def take_encoded(self) -> list[str]:
        out: list[str] = []
        buffer = self.buffer
        while buffer:
            try:
                out.append(buffer.popleft())
            except IndexError:  # another thread took the last one
                break
        return out

    def due_in(self) -> float | None:
        """Seconds until the buffer is due (0 or less: it is); None when empty."""
        if not self.buffer:
            return None
        return self._oldest + FLUSH_AFTER - time.monotonic()

    def take_notifications(self, force: bool = False,
                           alone: bool = False) -> list[tuple[str, str]]:
        """The buffer, if it is due (or ``force``), as (channel, payload) pairs for
        ``pg_notify``; each payload is a JSON array of events under
        :data:`PAYLOAD_LIMIT` bytes. ``alone``: the NOTIFYs would be the round trip's
        only work, so they wait one more :data:`FLUSH_AFTER` for company."""
        due = self.due_in()
        if due is None or (not force and due + (FLUSH_AFTER if alone else 0.0) > 0):
            return []
        return [(self.channel, p) for p in batch_payloads(self.take_encoded())]

    def flush(self, conn: Any) -> int:
        """Send the buffer now on ``conn`` (a psycopg connection); returns how many
        NOTIFYs that took."""
        notifications = self.take_notifications(force=True)
        if notifications:
            broker.notify(conn, notifications)
        return len(notifications)

    def before_wait(self, conn: Any, timeout: float) -> float:
        """Called by the worker before it sleeps up to ``timeout`` seconds: a timeout
        that wakes it when the buffer is due to go out on its own (its next round trip
        takes it then, see :meth:`take_notifications`)."""
        due = self.due_in()
        if due is None:
            return timeout
        return max(0.0, min(timeout, due + FLUSH_AFTER))

    # -- worker events -----------------------------------------------------------------
    def worker_fields(self, worker: Any) -> dict[str, Any]:
        return {
            "freq": self.freq, "active": int(getattr(worker, "active", 0)),
            "processed": int(getattr(worker, "processed", 0)), "loadavg": loadavg(),
            "sw_ident": SW_IDENT, "sw_ver": SW_VER, "sw_sys": SW_SYS,
        }

    def worker_event(self, conn: Any, type_: str, worker: Any) -> None:
        """Send ``worker-online``/``-heartbeat``/``-offline`` at once on ``conn``.

        Online and offline also send what is buffered (before them, so an offline
        event comes last); a heartbeat, sent from the maintenance thread on its own
        connection, goes alone."""
        if not self.enabled:
            return
        encoded = self.encode(self.build(type_, **self.worker_fields(worker)))
        pending = [] if type_ == "worker-heartbeat" else self.take_encoded()
        broker.notify(conn, [(self.channel, p) for p in batch_payloads([*pending, encoded])])

    # -- task events -------------------------------------------------------------------
    def lost(self, outcomes: Iterable[broker.Outcome]) -> None:
        """``task-failed`` for the tasks whose process died (time limit, lost process):
        the worker wrote their outcome itself, without a signal."""
        for o in outcomes:
            if o.state == states.FAILURE and o.status == broker.DONE:
                self.send("task-failed", uuid=str(o.id), exception=exception_repr(o.result),
                          traceback=o.traceback)

    def task_started(self, task_id: str) -> None:
        """``task-started``: sent by the worker when it hands the task to its pool."""
        self.send("task-started", uuid=task_id)

    def mark_start(self, task_id: str) -> None:
        self._started[task_id] = time.monotonic()

    def runtime(self, task_id: str) -> float | None:
        began = self._started.pop(task_id, None)
        return None if began is None else time.monotonic() - began


def exception_repr(result: str | None) -> str | None:
    """``ValueError('boom')`` from a stored ``{"exc_type", "exc_message"}``."""
    if not result:
        return None
    try:
        data = json.loads(result)
    except ValueError:
        return result
    if not isinstance(data, dict) or "exc_type" not in data:
        return result
    message = data.get("exc_message") or []
    args = message if isinstance(message, list) else [message]
    return f"{data['exc_type']}({', '.join(repr(a) for a in args)})"


def batch_payloads(encoded: list[str], limit: int = PAYLOAD_LIMIT) -> list[str]:
    """Join encoded events into JSON arrays of at most ``limit`` bytes each."""
    payloads: list[str] = []
    batch: list[str] = []
    size = 2
    for text in encoded:
        n = len(text) + 1  # encoded events are ASCII
        if batch and size + n > limit:
            payloads.append("[" + ",".join(batch) + "]")
            batch, size = [], 2
        batch.append(text)
        size += n
    if batch:
        payloads.append("[" + ",".join(batch) + "]")
    return payloads


# --- this process's dispatcher --------------------------------------------------------

_current: EventDispatcher | None = None
_fork_hook = False


def current() -> EventDispatcher | None:
    """The dispatcher of this worker process, or None when events are off."""
    return _current


def enable(hostname: str, freq: float = 2.0) -> EventDispatcher:
    """Turn events on in this (worker) process and connect the receivers that produce
    task events. Call before the pool starts, so its processes inherit both."""
    global _current
    from . import receivers

    _current = EventDispatcher(hostname, freq=freq)
    receivers.connect()
    global _fork_hook
    if not _fork_hook:
        os.register_at_fork(after_in_child=_forget_inherited)
        _fork_hook = True
    return _current


def _forget_inherited() -> None:
    # A pool process forked while the worker had events buffered must not send them
    # again as its own.
    if _current is not None:
        _current.buffer.clear()
        _current._started.clear()


def disable() -> None:
    global _current
    from . import receivers

    receivers.disconnect()
    _current = None


# --- hand-over between a prefork pool process and its worker ---------------------------
# The worker's clock travels with each task to the pool process and the process's clock
# comes back with its events, so a task's events order after what caused them.


def to_child(row: dict[str, Any]) -> None:
    """Worker side: stamp a task handed to a pool process with the worker's clock."""
    if _current is not None:
        row["clock"] = _current.clock.value


def from_parent(row: dict[str, Any]) -> None:
    """Pool process side: take the worker's clock from the task it was handed."""
    if _current is not None and "clock" in row:
        _current.clock.adjust(row["clock"])


def to_parent() -> list[Any]:
    """Pool process side: what to add to the message that carries a task's outcome:
    nothing when events are off, else ``[encoded events, clock]``."""
    if _current is None:
        return []
    return [_current.take_encoded(), _current.clock.value]


def from_child(extra: list[Any]) -> None:
    """Worker side: buffer the events a pool process sent with an outcome."""
    if _current is None or len(extra) < 2:
        return
    encoded, clock = extra[0], extra[1]
    if encoded:
        _current.put(encoded)
    _current.clock.adjust(clock)


__all__ = [
    "EVENTS_CHANNEL", "EventDispatcher", "Clock", "event", "current", "enable", "disable",
    "batch_payloads", "utcoffset",
]
