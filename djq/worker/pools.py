"""Execution pools: where claimed tasks run. The consumer hands a pool rows marked
started and collects what each produced.

- ``prefork`` (default): forked child processes, one task at a time each, talking to the
  parent over pipes. A child that dies mid-task is noticed at once (its sentinel). Rows
  are handed over on hold, before the transaction that marks them started commits, then
  released (``go``) or withdrawn (``abort``). A process whose worker died while it held a
  row asks the database whether the start committed, and runs the row only if it did.
- ``threads``: a thread per slot in the worker process.
- ``solo``: one task at a time, in one thread of the worker process beside the
  consumer's loop (which so keeps watching time limits and revokes).

In ``threads`` and ``solo``, time limits and ``revoke(terminate=True)`` raise inside the
task's thread (:mod:`djq.interrupts`).

A prefork pool carries the consumer's :class:`Extras` between the worker and its
processes (events' clocks and buffered events) without reading them: what a process
sends back with an outcome reaches the consumer as :attr:`Finished.extras`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing
import os
import queue as queue_module
import signal
import socket
import threading
import time
from multiprocessing.connection import Connection
from typing import Any, Protocol

from django.db import close_old_connections, connections

from .. import broker, interrupts, signals, trace
from ..db import open_connection
from ..exceptions import SoftTimeLimitExceeded
from ..trace import execute, failed_outcome
from .timeouts import SOFT_SIGNAL

logger = logging.getLogger("djq.worker")


@dataclasses.dataclass(slots=True)
class Finished:
    """A task a pool is done with: its outcomes, or why it was lost."""

    task_id: str
    outcomes: list[broker.Outcome]
    lost: str | None = None  # set when the process running it died
    extras: Any = None  # what its process sent back with the outcomes (Extras.extras)


class Extras(Protocol):
    """The consumer's own data that travels with each task to a prefork pool process
    and back, as JSON values the pool carries unread."""

    def stamp(self, row: dict[str, Any]) -> None:
        """In the worker: add to ``row`` what goes with it to its process."""

    def received(self, row: dict[str, Any]) -> None:
        """In the pool process: take what came with ``row``."""

    def extras(self) -> Any:
        """In the pool process, after the task: what goes back with its outcomes."""


class Pool(Protocol):
    name: str
    holds: bool  # takes rows on hold (submit(hold=True), then release or withdraw)

    def start(self) -> None: ...
    def free_slots(self) -> int: ...
    def submit(self, row: dict[str, Any], hold: bool = False) -> None: ...
    def release(self, task_ids: list[str]) -> None: ...
    def withdraw(self, task_ids: list[str]) -> None: ...
    def waitables(self) -> list[Any]: ...
    def collect(self) -> list[Finished]: ...
    def running(self) -> dict[str, float]: ...
    def kill_task(self, task_id: str, signum: int) -> bool: ...
    def interrupt(self, task_id: str, exc_type: type[BaseException]) -> bool: ...
    def stop(self, cold: bool = False) -> None: ...


def outcome_to_json(o: broker.Outcome) -> list[Any]:
    return o.to_json()


def outcome_from_json(v: list[Any]) -> broker.Outcome:
    return broker.Outcome.from_json(v)


def _after_task() -> None:
    # As Celery's Django fix-up does: drop connections that are broken or past
    # CONN_MAX_AGE, so one task's connection trouble is not the next one's.
    close_old_connections()


# --- threads --------------------------------------------------------------------------


class ThreadPool:
    name = "threads"
    holds = False  # the threads live in the worker's own process: they share its fate

    def __init__(self, hostname: str, concurrency: int, **kwargs: Any) -> None:
        self.hostname = hostname
        self.concurrency = concurrency
        self.inbox: queue_module.SimpleQueue[dict[str, Any] | None] = queue_module.SimpleQueue()
        self.lock = threading.Lock()
        self.done: list[Finished] = []
        self.current: dict[str, float] = {}
        self.threads: list[threading.Thread] = []
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.wake_w.setblocking(False)

    def start(self) -> None:
        trace.interrupts_enabled = True
        for i in range(self.concurrency):
            t = threading.Thread(target=self._work, name=f"djq-worker-{i}", daemon=True)
            t.start()
            self.threads.append(t)

    def _work(self) -> None:
        signals.send(signals.worker_process_init, sender=None)
        while True:
            row = self.inbox.get()
            if row is None:
                break
            try:
                try:
                    outcomes = execute(row, self.hostname)
                except BaseException as exc:
                    # An interrupt that fired as the body ended, before its thread had
                    # left it: the task is over, as it ended or with this exception.
                    if not isinstance(exc, interrupts.Interrupt):
                        raise
                    interrupts.leave()
                    outcomes = failed_outcome(row, exc)
            finally:
                _after_task()
            with self.lock:
                self.current.pop(row["id"], None)
                self.done.append(Finished(row["id"], outcomes))
            try:
                self.wake_w.send(b"\0")
            except BlockingIOError:
                pass  # the consumer is already due to wake
        connections.close_all()

    def free_slots(self) -> int:
        with self.lock:
            return self.concurrency - len(self.current)

    def submit(self, row: dict[str, Any], hold: bool = False) -> None:
        with self.lock:
            self.current[row["id"]] = time.monotonic()
        self.inbox.put(row)

    def release(self, task_ids: list[str]) -> None:
        pass

    def withdraw(self, task_ids: list[str]) -> None:
        pass

    def waitables(self) -> list[Any]:
        return [self.wake_r]

    def collect(self) -> list[Finished]:
        try:
            while self.wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass
        with self.lock:
            done, self.done = self.done, []
        return done

    def running(self) -> dict[str, float]:
        with self.lock:
            return dict(self.current)

    def kill_task(self, task_id: str, signum: int) -> bool:
        return False  # a thread cannot be killed: see interrupt()

    def interrupt(self, task_id: str, exc_type: type[BaseException]) -> bool:
        """Raise ``exc_type`` inside the thread running ``task_id``."""
        return interrupts.interrupt(task_id, exc_type)

    def stop(self, cold: bool = False) -> None:
        for _ in self.threads:
            self.inbox.put(None)
        if not cold:
            for t in self.threads:
                t.join()


class SoloPool(ThreadPool):
    """One task at a time, in a thread of its own beside the consumer's loop."""

    name = "solo"

    def __init__(self, hostname: str, **kwargs: Any) -> None:
        super().__init__(hostname, 1)


# --- prefork --------------------------------------------------------------------------


class _ChildState:
    running: str | None = None  # id of the task this process is running


def _soft_time_limit(signum: int, frame: Any) -> None:
    # The parent signals the soft limit; raise it inside the task, which may catch it.
    if _ChildState.running is not None:
        raise SoftTimeLimitExceeded()


def _write_orphaned(outcomes: list[broker.Outcome], worker_id: int | None) -> None:
    """The parent is gone: write our task's outcome ourselves, if the row is still ours."""
    if worker_id is None or not outcomes:
        return
    try:
        with open_connection() as conn:
            broker.finish(conn, worker_id, outcomes)
    except Exception:  # noqa: BLE001 - nothing more a dying pool process can do
        logger.exception("Could not write the outcome of task id=%s after the worker died",
                         outcomes[0].id)


def _await_release(conn: Connection, row: dict[str, Any], hostname: str) -> bool | None:
    """A row handed over on hold: True to run it (released), False to drop it
    (withdrawn). None if the worker died meanwhile: then the row's start committed or not,
    and the database says which; if it did, run it here and write its outcome."""
    try:
        word = conn.recv_bytes()
    except (EOFError, OSError):
        word = None
    if word == b"go":
        return True
    if word == b"abort":
        return False
    worker_id = row.get("worker_id")
    try:
        with open_connection(application_name="djq orphaned pool process") as db:
            # Waits for the dead worker's transaction to end, committed or rolled back.
            ours = broker.holds_started(db, int(worker_id or 0), row["id"])
    except Exception:  # noqa: BLE001 - unknown: leave the row to recovery
        logger.exception("Could not learn whether task id=%s was started", row["id"])
        return None
    if ours:
        logger.warning("The worker died as it handed task id=%s over; running it here",
                       row["id"])
        _write_orphaned(_run(row, hostname), worker_id)
    return None


def _run(row: dict[str, Any], hostname: str) -> list[broker.Outcome]:
    """Run one row in this pool process (where the soft time limit can reach it)."""
    _ChildState.running = row["id"]
    try:
        return execute(row, hostname)
    finally:
        _ChildState.running = None
        _after_task()


def rss_kib() -> int:
    """This process's resident memory in KiB (Celery's measure for
    ``--max-memory-per-child``)."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") // 1024
    except (OSError, ValueError, IndexError):
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _child_main(conn: Connection, hostname: str, max_tasks: int | None,
                inherited: list[Connection], max_memory: int | None = None,
                extras: Extras | None = None) -> None:
    """A pool process: run one task at a time until told to stop."""
    # Close the parent's ends of every pool pipe we inherited through fork, so that when
    # the parent dies our pipe reads EOF and our writes fail, instead of talking to
    # ourselves.
    for other in inherited:
        other.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)
    signal.signal(SOFT_SIGNAL, _soft_time_limit)
    # Django connections inherited from the parent are the parent's: forget them
    # without closing (psycopg never closes a connection from another pid).
    for alias in connections:
        connections[alias].connection = None
    signals.send(signals.worker_process_init, sender=None)
    done = 0
    try:
        while True:
            try:
                data = conn.recv_bytes()
            except (EOFError, OSError):
                break  # the parent is gone
            if data == b"stop":
                break
            row = json.loads(data)
            if row.pop("hold", False):
                go = _await_release(conn, row, hostname)
                if go is None:  # the worker died: the row ran here (or not) and we end
                    break
                if not go:
                    continue
            if extras is not None:
                extras.received(row)
            outcomes = _run(row, hostname)
            done += 1
            retire = max_tasks is not None and done >= max_tasks
            if max_memory is not None and not retire:
                used = rss_kib()
                if used > max_memory:
                    # As Celery: the task that took the process past the limit is done;
                    # the process is replaced after it.
                    logger.warning("Child process %s exiting after exceeding memory limit "
                                   "(%dKiB / %dKiB)", os.getpid(), used, max_memory)
                    retire = True
            try:
                conn.send_bytes(json.dumps(
                    [row["id"], [outcome_to_json(o) for o in outcomes], retire,
                     None if extras is None else extras.extras()]).encode())
            except OSError:
                _write_orphaned(outcomes, row.get("worker_id"))
                break
            if retire:
                break
    finally:
        signals.send(signals.worker_process_shutdown, sender=None, pid=os.getpid(), exitcode=0)
        connections.close_all()


class _Child:
    __slots__ = ("process", "conn", "task_id", "started", "retiring")

    def __init__(self, process: Any, conn: Connection) -> None:
        self.process = process
        self.conn = conn
        self.task_id: str | None = None
        self.started = 0.0
        self.retiring = False


class PreforkPool:
    name = "prefork"
    holds = True

    def __init__(self, hostname: str, concurrency: int, max_tasks_per_child: int | None = None,
                 max_memory_per_child: int | None = None, extras: Extras | None = None,
                 **kwargs: Any) -> None:
        self.max_memory_per_child = max_memory_per_child
        self.extras = extras
        self.hostname = hostname
        self.concurrency = concurrency
        self.max_tasks_per_child = max_tasks_per_child
        self.children: list[_Child] = []
        self.ctx = multiprocessing.get_context("fork")
        self.stopping = False
        self.pending_lost: list[Finished] = []

    def start(self) -> None:
        for _ in range(self.concurrency):
            self.children.append(self._spawn())

    def _spawn(self) -> _Child:
        # Close Django's connections first so no socket is shared across the fork.
        connections.close_all()
        parent_conn, child_conn = self.ctx.Pipe(duplex=True)
        inherited = [c.conn for c in self.children] + [parent_conn]
        process = self.ctx.Process(
            target=_child_main,
            args=(child_conn, self.hostname, self.max_tasks_per_child, inherited,
                  self.max_memory_per_child, self.extras),
            name="djq-pool", daemon=True,
        )
        process.start()
        child_conn.close()
        return _Child(process, parent_conn)

    def free_slots(self) -> int:
        return sum(1 for c in self.children if c.task_id is None and not c.retiring)

    def submit(self, row: dict[str, Any], hold: bool = False) -> None:
        for child in self.children:
            if child.task_id is None and not child.retiring:
                child.task_id = row["id"]
                child.started = time.monotonic()
                if self.extras is not None:
                    self.extras.stamp(row)
                if hold:
                    row = {**row, "hold": True}
                try:
                    child.conn.send_bytes(json.dumps(row).encode())
                except OSError:
                    pass  # the child died; collect() will report the task lost
                return
        raise RuntimeError("No free pool process")

    def release(self, task_ids: list[str]) -> None:
        """Let the processes holding these rows run them (their start committed)."""
        self._tell(task_ids, b"go", free=False)

    def withdraw(self, task_ids: list[str]) -> None:
        """Take rows on hold back: their start did not commit."""
        self._tell(task_ids, b"abort", free=True)

    def _tell(self, task_ids: list[str], word: bytes, free: bool) -> None:
        wanted = set(task_ids)
        for child in self.children:
            if child.task_id in wanted:
                try:
                    child.conn.send_bytes(word)
                except OSError:
                    pass  # the child died; collect() reports its task lost
                if free:
                    child.task_id = None

    def waitables(self) -> list[Any]:
        out: list[Any] = []
        for c in self.children:
            out.append(c.conn)
            out.append(c.process.sentinel)
        return out

    def collect(self) -> list[Finished]:
        finished, self.pending_lost = self.pending_lost, []
        for i, child in enumerate(list(self.children)):
            try:
                while child.conn.poll():
                    task_id, outcomes, retire, extras = json.loads(child.conn.recv_bytes())
                    finished.append(Finished(task_id, [outcome_from_json(o) for o in outcomes],
                                             extras=extras))
                    child.task_id = None
                    child.retiring = bool(retire)
            except (EOFError, OSError):
                pass  # the child is gone; its sentinel says so below
            if not child.process.is_alive():
                child.process.join()
                if child.task_id is not None:
                    reason = self._death_reason(child.process.exitcode)
                    logger.error("Process %s running task id=%s exited: %s",
                                 child.process.pid, child.task_id, reason)
                    finished.append(Finished(child.task_id, [], lost=reason))
                child.conn.close()
                self.children.remove(child)
                if not self.stopping:
                    self.children.append(self._spawn())
        return finished

    @staticmethod
    def _death_reason(exitcode: int | None) -> str:
        if exitcode is not None and exitcode < 0:
            try:
                name = signal.Signals(-exitcode).name
            except ValueError:
                name = str(-exitcode)
            return f"Worker exited prematurely: signal {-exitcode} ({name})."
        return f"Worker exited prematurely: exitcode {exitcode}."

    def running(self) -> dict[str, float]:
        return {c.task_id: c.started for c in self.children if c.task_id is not None}

    def interrupt(self, task_id: str, exc_type: type[BaseException]) -> bool:
        return False  # a pool process is signalled instead (kill_task)

    def kill_task(self, task_id: str, signum: int) -> bool:
        for child in self.children:
            if child.task_id == task_id and child.process.pid:
                try:
                    os.kill(child.process.pid, signum)
                except ProcessLookupError:
                    pass
                return True
        return False

    def stop(self, cold: bool = False) -> None:
        self.stopping = True
        for child in self.children:
            if cold:
                child.process.kill()
            else:
                try:
                    child.conn.send_bytes(b"stop")
                except OSError:
                    pass
        deadline = time.monotonic() + 10
        for child in self.children:
            child.process.join(max(0.0, deadline - time.monotonic()))
            if child.process.is_alive():
                child.process.kill()
                child.process.join()


def make_pool(kind: str, hostname: str, concurrency: int,
              max_tasks_per_child: int | None,
              max_memory_per_child: int | None = None, extras: Extras | None = None) -> Pool:
    """A pool of ``kind``; ``extras`` travel with tasks to prefork processes (the other
    pools run tasks in the worker's own process, where nothing needs to travel)."""
    if kind == "prefork":
        return PreforkPool(hostname, concurrency, max_tasks_per_child=max_tasks_per_child,
                           max_memory_per_child=max_memory_per_child, extras=extras)
    if max_tasks_per_child is not None or max_memory_per_child is not None:
        raise ValueError(f"--max-tasks-per-child and --max-memory-per-child recycle pool "
                         f"processes: -P {kind} has none (use -P prefork)")
    if kind == "threads":
        return ThreadPool(hostname, concurrency)
    if kind == "solo":
        return SoloPool(hostname)
    raise ValueError(f"Unknown pool {kind!r}: use prefork, threads or solo")
