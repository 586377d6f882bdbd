"""The worker's maintenance thread: renews its lease, recovers the tasks of workers that
died (:func:`~djq.worker.recovery.recover`), and prunes expired results. It has its own
connection, so a long task in the ``solo`` pool or a busy loop never lets the lease lapse.

The thread never touches the worker: it is given a :class:`Snapshot` of what stays
fixed, asks a ``report`` callback for the figures each heartbeat carries, and tells the
worker of a lost lease through a ``lease_lost`` callback (which only posts the news; the
worker's main loop acts on it).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import psycopg

from .. import broker
from ..conf import conf
from ..db import open_connection
from .recovery import recover

if TYPE_CHECKING:
    from ..events.dispatcher import EventDispatcher

logger = logging.getLogger("djq.worker")


def backoff_cap(lease: float) -> float:
    """The longest wait between reconnection attempts: well inside a lease, so a worker
    back from an outage renews its lease before others may take it over."""
    return max(0.2, min(5.0, lease / 5))


@dataclasses.dataclass(frozen=True, slots=True)
class Snapshot:
    """What the maintenance thread needs of its worker that does not change."""

    using: str  # the database alias to connect to
    hostname: str
    lease: float  # seconds (worker_lease)
    interval: float  # seconds between heartbeats (worker_heartbeat_interval)
    events: EventDispatcher | None  # sends worker-heartbeat events (thread-safe)


@dataclasses.dataclass(frozen=True, slots=True)
class Status:
    """What one heartbeat stores: the worker's figures when it was taken."""

    worker_id: int  # the lease the heartbeat renews
    processed: int
    failed: int
    active: int  # tasks running now
    counters: dict[str, Any]  # Tally.to_json()


class Maintenance(threading.Thread):
    def __init__(self, snapshot: Snapshot, report: Callable[[], Status],
                 lease_lost: Callable[[int], None]) -> None:
        super().__init__(name="djq-maintenance", daemon=True)
        self.snapshot = snapshot
        self.report = report  # called from this thread: must only read
        self.lease_lost = lease_lost  # called from this thread: must be thread-safe
        self.stopped = threading.Event()
        self.conn: psycopg.Connection[Any] | None = None

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=10)

    def run(self) -> None:
        interval = self.snapshot.interval
        lease = self.snapshot.lease
        next_recover = 0.0
        next_prune = time.monotonic() + 5.0
        backoff = 0.2
        connected_at = 0.0
        while not self.stopped.is_set():
            try:
                if self.conn is None or self.conn.closed:
                    self.conn = open_connection(self.snapshot.using,
                                                application_name="djq maintenance")
                    connected_at = time.monotonic()
                self._heartbeat()
                now = time.monotonic()
                # Recover others' rows only after a full lease connected: after an
                # outage every lease looks expired, and live workers must have had the
                # time to renew theirs first.
                if now >= next_recover and now - connected_at >= lease:
                    recover(self.conn, lease)
                    next_recover = now + max(1.0, lease / 4)
                if now >= next_prune:
                    self._prune()
                    next_prune = now + float(conf.worker_prune_interval)
                backoff = 0.2
            except psycopg.Error as exc:
                logger.error("Maintenance: database error (%s); retrying in %.1fs", exc,
                             backoff)
                self._drop_connection()
                self.stopped.wait(backoff)
                backoff = min(backoff * 2, backoff_cap(lease))
                continue
            except Exception:  # noqa: BLE001 - the thread must outlive any bug
                logger.exception("Maintenance: unexpected error")
            self.stopped.wait(interval)
        self._drop_connection()

    def _heartbeat(self) -> None:
        status = self.report()
        alive = broker.heartbeat(self.conn, status.worker_id, status.processed,
                                 status.failed, status.active, loadavg(), status.counters)
        if self.snapshot.events is not None:
            self.snapshot.events.worker_event(self.conn, "worker-heartbeat", status)
        if not alive:
            # Others declared us dead and recovered our rows. The main loop stops
            # claiming and starts afresh under a new id (its next cycle would find out
            # too; this tells it sooner).
            self.lease_lost(status.worker_id)

    def _prune(self) -> None:
        expires, failed = result_ages()
        if expires is None and failed is None:
            return
        total = 0
        deadline = time.monotonic() + 2.0
        batch = int(conf.worker_prune_batch)
        while time.monotonic() < deadline:
            deleted = broker.prune(self.conn, expires, batch, failed)
            total += deleted
            if deleted < batch:
                break
        if total:
            logger.info("Pruned %d expired result(s)", total)

    def _drop_connection(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:  # noqa: BLE001
                pass
        self.conn = None


def result_ages() -> tuple[float | None, float | None]:
    """(seconds finished rows are kept, seconds FAILURE rows are kept); None: for good.

    ``result_expires`` None or 0 keeps results for good; ``result_expires_failed`` None
    follows ``result_expires``, 0 keeps failures for good.
    """
    expires = float(conf.result_expires) if conf.result_expires else None
    failed = conf.result_expires_failed
    if failed is None:
        return expires, expires
    return expires, float(failed) if failed else None


def loadavg() -> str:
    try:
        return ",".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return ""
