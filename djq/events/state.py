"""The cluster as events describe it: Celery's ``State``, with its ``Task`` and ``Worker``.

Feed it events (``state.event(e)``, e.g. as a :class:`~djq.events.receiver.Receiver`
handler) and read ``state.tasks`` and ``state.workers``. Events may arrive out of order:
as in Celery, an event of a state that logically comes before the task's current one
(``task-received`` after ``task-succeeded``) only fills in fields, never moves the state
back. Memory is bounded: past ``max_tasks`` the task that finished longest ago is
dropped (an unfinished one only when no task has finished), past ``max_workers`` the
worker heard from longest ago, dead ones first.

:meth:`State.load_from_database` starts it from what the database holds (the workers
alive now and every unfinished task), so a monitor started late sees what is running
and queued before any event arrives.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from .. import states
from .dispatcher import exception_repr
from ..states import (
    FAILURE, PENDING, READY_STATES, RECEIVED, REJECTED, RETRY, REVOKED, STARTED, SUCCESS,
)

#: Celery's ``states.PRECEDENCE``: earlier in the list wins; unknown (custom) states
#: rank where ``None`` is.
PRECEDENCE = [SUCCESS, FAILURE, None, REVOKED, STARTED, RECEIVED, REJECTED, RETRY, PENDING]
_PRECEDENCE_INDEX = {state: i for i, state in enumerate(PRECEDENCE)}


def precedence(state: str | None) -> int:
    return _PRECEDENCE_INDEX.get(state, _PRECEDENCE_INDEX[None])


TASK_EVENT_TO_STATE = {
    "sent": PENDING, "received": RECEIVED, "started": STARTED, "failed": FAILURE,
    "retried": RETRY, "succeeded": SUCCESS, "revoked": REVOKED, "rejected": REJECTED,
}

#: A worker is alive until ``freq * HEARTBEAT_EXPIRE_WINDOW / 100`` seconds after its
#: last heartbeat (Celery's).
HEARTBEAT_EXPIRE_WINDOW = 200


class Worker:
    """A worker node: ``hostname``, ``alive``, ``active``, ``processed``, ``heartbeats``
    (when its last heartbeats arrived here), ``loadavg``, ``freq``, ``sw_*``."""

    heartbeat_max = 4
    expire_window = HEARTBEAT_EXPIRE_WINDOW
    _fields = ("hostname", "pid", "freq", "heartbeats", "clock", "active", "processed",
               "loadavg", "sw_ident", "sw_ver", "sw_sys")

    def __init__(self, hostname: str | None = None, pid: int | None = None,
                 freq: float = 60, heartbeats: list[float] | None = None, clock: int = 0,
                 active: int | None = None, processed: int | None = None,
                 loadavg: list[float] | None = None, sw_ident: str | None = None,
                 sw_ver: str | None = None, sw_sys: str | None = None) -> None:
        self.hostname = hostname
        self.pid = pid
        self.freq = freq
        self.heartbeats: list[float] = heartbeats if heartbeats is not None else []
        self.clock = clock or 0
        self.active = active
        self.processed = processed
        self.loadavg = loadavg
        self.sw_ident = sw_ident
        self.sw_ver = sw_ver
        self.sw_sys = sw_sys

    def event(self, type_: str | None, timestamp: float | None = None,
              local_received: float | None = None,
              fields: dict[str, Any] | None = None) -> None:
        """Apply an event (``type_`` without its ``worker-`` prefix; None for a task
        event, which only proves the worker alive)."""
        for key, value in (fields or {}).items():
            if key in self._fields and key != "heartbeats":
                setattr(self, key, value)
        if type_ == "offline":
            self.heartbeats[:] = []
            return
        when = local_received or timestamp
        if not when:
            return
        if len(self.heartbeats) >= self.heartbeat_max:
            del self.heartbeats[0]
        if not self.heartbeats or when > self.heartbeats[-1]:
            self.heartbeats.append(when)
        else:
            bisect.insort(self.heartbeats, when)

    @property
    def heartbeat_expires(self) -> float:
        if not self.heartbeats:
            return 0.0
        return self.heartbeats[-1] + float(self.freq or 0) * (self.expire_window / 100.0)

    @property
    def alive(self) -> bool:
        return bool(self.heartbeats) and time.time() < self.heartbeat_expires

    @property
    def status_string(self) -> str:
        return "ONLINE" if self.alive else "OFFLINE"

    @property
    def id(self) -> tuple[str | None, int | None]:
        return self.hostname, self.pid

    def as_dict(self) -> dict[str, Any]:
        out = {key: getattr(self, key) for key in self._fields}
        out["heartbeats"] = list(self.heartbeats)
        out["alive"] = self.alive
        return out

    def __repr__(self) -> str:
        return f"<Worker: {self.hostname} ({self.status_string} clock:{self.clock})>"


class Task:
    """A task as its events describe it (Celery's fields): ``uuid, name, state, args,
    kwargs, result, exception, traceback, runtime, retries, eta, expires, worker``
    (a :class:`Worker`), the time of each event (``sent, received, started,
    succeeded, failed, retried, revoked, rejected``), ``timestamp`` and ``clock`` of the
    latest one, ``routing_key``, ``root_id``, ``parent_id`` and ``client``."""

    name: str | None = None
    state: str = PENDING
    received: float | None = None
    sent: float | None = None
    started: float | None = None
    rejected: float | None = None
    succeeded: float | None = None
    failed: float | None = None
    retried: float | None = None
    revoked: float | None = None
    args: str | None = None
    kwargs: str | None = None
    eta: str | None = None
    expires: str | None = None
    retries: int | None = None
    worker: Worker | None = None
    result: Any = None
    exception: str | None = None
    timestamp: float | None = None
    runtime: float | None = None
    traceback: str | None = None
    exchange: str | None = None
    routing_key: str | None = None
    queue: str | None = None
    clock: int = 0
    client: str | None = None
    root_id: str | None = None
    parent_id: str | None = None
    local_received: float | None = None

    _fields = ("uuid", "name", "state", "received", "sent", "started", "rejected",
               "succeeded", "failed", "retried", "revoked", "args", "kwargs", "eta",
               "expires", "retries", "worker", "result", "exception", "timestamp",
               "runtime", "traceback", "exchange", "routing_key", "clock", "client",
               "root_id", "parent_id")

    #: What an event of an earlier state may still fill in (Celery's merge rules).
    merge_rules = {RECEIVED: ("name", "args", "kwargs", "parent_id", "root_id", "retries",
                              "eta", "expires")}

    def __init__(self, uuid: str | None = None, **kwargs: Any) -> None:
        self.uuid = uuid
        self.__dict__.update(kwargs)

    def event(self, type_: str, timestamp: float | None = None,
              local_received: float | None = None,
              fields: dict[str, Any] | None = None) -> None:
        """Apply an event (``type_`` without its ``task-`` prefix)."""
        fields = dict(fields or {})
        fields.pop("type", None)
        fields.pop("hostname", None)  # the worker is ``self.worker``; a client ``client``
        state = TASK_EVENT_TO_STATE.get(type_)
        if state is not None:
            setattr(self, type_, timestamp)
        else:
            state = type_.upper()  # a custom state
        if (state != RETRY and self.state != RETRY
                and precedence(state) > precedence(self.state)):
            # This event happened before the current state: only fill in fields.
            keep = self.merge_rules.get(state)
            if keep is not None:
                fields = {k: v for k, v in fields.items() if k in keep}
        else:
            fields.update(state=state, timestamp=timestamp)
        self.__dict__.update(fields)

    @property
    def ready(self) -> bool:
        return self.state in READY_STATES

    @property
    def origin(self) -> str | None:
        return self.client if self.worker is None else self.worker.hostname

    def info(self, fields: tuple[str, ...] | None = None) -> dict[str, Any]:
        """The fields that have a value (Celery's ``Task.info``)."""
        out = {}
        for key in fields or self._fields:
            value = getattr(self, key, None)
            if value is not None:
                out[key] = value.hostname if isinstance(value, Worker) else value
        return out

    def as_dict(self) -> dict[str, Any]:
        out = {key: getattr(self, key, None) for key in self._fields}
        out["worker"] = self.worker.hostname if self.worker is not None else None
        return out

    def __repr__(self) -> str:
        return f"<Task: {self.name}({self.uuid}) {self.state} clock:{self.clock}>"


class State:
    """Records cluster state from events (Celery's ``celery.events.state.State``)."""

    def __init__(self, callback: Callable[[State, dict[str, Any]], Any] | None = None,
                 workers: dict[str, Worker] | None = None,
                 tasks: dict[str, Task] | None = None, max_workers: int = 5000,
                 max_tasks: int = 10000,
                 on_node_join: Callable[[Worker], Any] | None = None,
                 on_node_leave: Callable[[Worker], Any] | None = None,
                 **kwargs: Any) -> None:
        # Celery's names for the bounds are accepted too.
        max_workers = int(kwargs.pop("max_workers_in_memory", max_workers))
        max_tasks = int(kwargs.pop("max_tasks_in_memory", max_tasks))
        if kwargs:
            raise TypeError(f"Unexpected arguments: {sorted(kwargs)}")
        self.callback = callback
        self.workers: dict[str, Worker] = dict(workers or {})
        self.tasks: dict[str, Task] = dict(tasks or {})
        self.max_workers = max(1, max_workers)
        self.max_tasks = max(1, max_tasks)
        self.on_node_join = on_node_join
        self.on_node_leave = on_node_leave
        self.event_count = 0
        self.task_count = 0
        self._mutex = threading.RLock()
        # Finished task ids, in the order they finished: the first to go when full.
        self._finished: dict[str, None] = {
            uuid: None for uuid, t in self.tasks.items() if t.ready}

    # -- freezing and clearing -------------------------------------------------------------
    def freeze_while(self, fun: Callable[..., Any], *args: Any, clear_after: bool = False,
                     **kwargs: Any) -> Any:
        """Call ``fun`` with no event applied meanwhile; then ``clear()`` if asked."""
        with self._mutex:
            try:
                return fun(*args, **kwargs)
            finally:
                if clear_after:
                    self._clear()

    def clear_tasks(self, ready: bool = True) -> None:
        with self._mutex:
            self._clear_tasks(ready)

    def _clear_tasks(self, ready: bool = True) -> None:
        if ready:
            self.tasks = {uuid: t for uuid, t in self.tasks.items() if not t.ready}
        else:
            self.tasks = {}
        self._finished = {}

    def _clear(self, ready: bool = True) -> None:
        self.workers.clear()
        self._clear_tasks(ready)
        self.event_count = 0
        self.task_count = 0

    def clear(self, ready: bool = True) -> None:
        """Forget workers and finished tasks (every task unless ``ready``), reset the
        counts; unfinished tasks are kept (as in Celery)."""
        with self._mutex:
            self._clear(ready)

    # -- applying events --------------------------------------------------------------------
    def get_or_create_worker(self, hostname: str, **kwargs: Any) -> tuple[Worker, bool]:
        with self._mutex:
            worker = self.workers.get(hostname)
            if worker is not None:
                for key, value in kwargs.items():
                    setattr(worker, key, value)
                return worker, False
            worker = self.workers[hostname] = Worker(hostname, **kwargs)
            self._bound_workers()
            return worker, True

    def get_or_create_task(self, uuid: str) -> tuple[Task, bool]:
        with self._mutex:
            task = self.tasks.get(uuid)
            if task is not None:
                return task, False
            task = self.tasks[uuid] = Task(uuid)
            self._bound_tasks()
            return task, True

    def event(self, event: dict[str, Any]) -> tuple[tuple[Any, bool], str]:
        """Apply one event; returns ``((task or worker, created), subject)``."""
        with self._mutex:
            result = self._event(event)
        if self.callback is not None:
            self.callback(self, event)
        return result

    def _event(self, event: dict[str, Any]) -> tuple[tuple[Any, bool], str]:
        self.event_count += 1
        group, _, subject = str(event.get("type", "")).partition("-")
        if group == "worker":
            return self._worker_event(subject, event), subject
        if group == "task":
            return self._task_event(subject, event), subject
        return (None, False), subject

    def _worker_event(self, subject: str, event: dict[str, Any]) -> tuple[Any, bool]:
        hostname = event.get("hostname")
        if not hostname:
            return None, False
        offline = subject == "offline"
        worker = self.workers.get(hostname)
        created = False
        if worker is None:
            worker = self.workers[hostname] = Worker(hostname)
            created = True
        worker.event(subject, event.get("timestamp"), event.get("local_received"), event)
        if self.on_node_join is not None and (created or subject == "online"):
            self.on_node_join(worker)
        if offline and self.on_node_leave is not None:
            self.on_node_leave(worker)
        if created:
            self._bound_workers()
        return worker, created

    def _task_event(self, subject: str, event: dict[str, Any]) -> tuple[Any, bool]:
        uuid = event.get("uuid")
        if not uuid:
            return None, False
        uuid = str(uuid)
        hostname = event.get("hostname")
        timestamp = event.get("timestamp")
        local_received = event.get("local_received")
        task = self.tasks.get(uuid)
        created = task is None
        if task is None:
            task = self.tasks[uuid] = Task(uuid)
        if subject == "sent":
            task.client = hostname
        elif hostname:
            worker = self.workers.get(hostname)
            if worker is None:
                worker = self.workers[hostname] = Worker(hostname)
                self._bound_workers()
            task.worker = worker
            if local_received or timestamp:
                worker.event(None, timestamp, local_received)
        if subject == "received":
            self.task_count += 1
        was_ready = task.ready
        task.event(subject, timestamp, local_received, event)
        if task.ready:
            if not was_ready or uuid not in self._finished:
                self._finished.pop(uuid, None)
                self._finished[uuid] = None
        elif was_ready:
            self._finished.pop(uuid, None)
        if created:
            self._bound_tasks()
        return task, created

    def _bound_tasks(self) -> None:
        while len(self.tasks) > self.max_tasks:
            if self._finished:
                uuid = next(iter(self._finished))
                del self._finished[uuid]
            else:
                uuid = next(iter(self.tasks))
            self.tasks.pop(uuid, None)

    def _bound_workers(self) -> None:
        while len(self.workers) > self.max_workers:
            def key(item: tuple[str, Worker]) -> tuple[bool, float]:
                w = item[1]
                return w.alive, w.heartbeats[-1] if w.heartbeats else 0.0

            hostname = min(self.workers.items(), key=key)[0]
            del self.workers[hostname]

    # -- reading -----------------------------------------------------------------------------
    def itertasks(self, limit: int | None = None) -> Iterator[tuple[str, Task]]:
        with self._mutex:
            items = list(self.tasks.items())
        return iter(items[:limit] if limit is not None else items)

    def tasks_by_time(self, limit: int | None = None,
                      reverse: bool = True) -> Iterator[tuple[str, Task]]:
        """``(uuid, task)`` pairs by the time of their latest event, newest first."""
        with self._mutex:
            items = sorted(self.tasks.items(),
                           key=lambda item: (item[1].timestamp or 0.0, item[1].clock or 0),
                           reverse=reverse)
        return iter(items[:limit] if limit is not None else items)

    tasks_by_timestamp = tasks_by_time

    def tasks_by_type(self, name: str, limit: int | None = None,
                      reverse: bool = True) -> Iterator[tuple[str, Task]]:
        found = ((u, t) for u, t in self.tasks_by_time(reverse=reverse) if t.name == name)
        return iter(list(found)[:limit] if limit is not None else list(found))

    def tasks_by_worker(self, hostname: str, limit: int | None = None,
                        reverse: bool = True) -> Iterator[tuple[str, Task]]:
        found = [(u, t) for u, t in self.tasks_by_time(reverse=reverse)
                 if t.worker is not None and t.worker.hostname == hostname]
        return iter(found[:limit] if limit is not None else found)

    def task_types(self) -> list[str]:
        with self._mutex:
            return sorted({t.name for t in self.tasks.values() if t.name})

    def alive_workers(self) -> list[Worker]:
        with self._mutex:
            return [w for w in self.workers.values() if w.alive]

    def __repr__(self) -> str:
        return (f"<State: events={self.event_count} tasks={self.task_count} "
                f"workers={len(self.workers)}>")

    # -- the database's truth ------------------------------------------------------------
    @classmethod
    def from_database(cls, using: str | None = None, finished: int = 0,
                      **kwargs: Any) -> State:
        """A State holding what the database says now (see :meth:`load_from_database`)."""
        state = cls(**kwargs)
        state.load_from_database(using=using, finished=finished)
        return state

    def load_from_database(self, using: str | None = None, finished: int = 0) -> None:
        """Add the workers alive now (their last heartbeat counts as one) and the
        unfinished tasks (waiting: PENDING or RETRY; claimed: RECEIVED; started:
        STARTED), newest first up to ``max_tasks``, plus the ``finished`` most recently
        finished ones. Events applied later take precedence as usual."""
        from ..conf import conf
        from ..models import Status
        from ..models import Task as TaskRow
        from ..models import Worker as WorkerRow

        using = using or conf.database
        freq = float(conf.worker_heartbeat_interval)
        alive = list(WorkerRow.objects.using(using).filter(stopped_at__isnull=True)
                     .order_by("started_at"))
        unfinished = list(
            TaskRow.objects.using(using)
            .filter(status__in=[Status.WAITING, Status.CLAIMED, Status.STARTED])
            .order_by("-date_created")[: self.max_tasks])
        done: list[TaskRow] = []
        if finished > 0:
            done = list(TaskRow.objects.using(using).filter(status=Status.DONE)
                        .order_by("-date_done")[:finished])
        with self._mutex:
            for row in alive:
                worker, _ = self.get_or_create_worker(row.hostname)
                worker.pid = row.pid
                worker.freq = freq
                worker.active = row.active
                worker.processed = row.processed
                worker.loadavg = _loadavg(row.loadavg)
                worker.sw_ident = "py-djq"
                worker.sw_ver = row.sw_ver or None
                worker.event("heartbeat", row.last_heartbeat.timestamp())
            # Oldest first, so the bound drops old finished ones before new ones.
            for task_row in [*reversed(done), *reversed(unfinished)]:
                self._add_row(task_row)

    def _add_row(self, row: Any) -> None:
        from ..models import Status

        uuid = str(row.id)
        if uuid in self.tasks:
            return
        task = Task(uuid, name=row.name, args=row.args, kwargs=row.kwargs,
                         retries=row.retries, routing_key=row.queue, queue=row.queue,
                         eta=row.eta.isoformat() if row.eta else None,
                         expires=row.expires.isoformat() if row.expires else None,
                         root_id=str(row.root_id) if row.root_id else None,
                         parent_id=str(row.parent_id) if row.parent_id else None)
        task.sent = row.date_created.timestamp()
        stamp = task.sent
        if row.status == Status.WAITING:
            task.state = row.state if row.state in (RETRY, PENDING) else PENDING
        elif row.status == Status.CLAIMED:
            task.state = RECEIVED
            task.received = stamp = (row.date_claimed or row.date_created).timestamp()
        elif row.status == Status.STARTED:
            task.state = row.state if row.state not in (PENDING, RECEIVED) else STARTED
            task.received = (row.date_claimed or row.date_created).timestamp()
            task.started = stamp = (row.date_started or row.date_created).timestamp()
        else:
            task.state = row.state
            if row.date_claimed:
                task.received = row.date_claimed.timestamp()
            if row.date_started:
                task.started = row.date_started.timestamp()
            if row.date_done:
                stamp = row.date_done.timestamp()
                attr = {SUCCESS: "succeeded", FAILURE: "failed",
                        REVOKED: "revoked"}.get(row.state)
                if attr:
                    setattr(task, attr, stamp)
                if row.date_started:
                    task.runtime = (row.date_done - row.date_started).total_seconds()
            if row.state == SUCCESS:
                task.result = row.result
            elif row.state in states.EXCEPTION_STATES:
                task.exception = exception_repr(row.result)
                task.traceback = row.traceback
        task.timestamp = stamp
        if row.worker:
            task.worker = self.get_or_create_worker(row.worker)[0]
        self.tasks[uuid] = task
        if task.ready:
            self._finished[uuid] = None
        self._bound_tasks()


def _loadavg(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x]
    except ValueError:
        return []


__all__ = ["State", "Task", "Worker", "precedence", "HEARTBEAT_EXPIRE_WINDOW"]
