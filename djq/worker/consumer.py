"""The worker's main loop: claim ready rows, mark them started, hand them to the pool,
and write what the pool produced, all in batches on one connection.

Lifecycle of a row in a worker: claimed (status CLAIMED, kept in ``self.buffer``) ->
marked started in the round trip that hands it to a free pool slot (status STARTED) ->
finished (status DONE or, for a retry, WAITING again). On a warm shutdown the buffer is
handed back; a worker that dies is recovered by the others through its lease.

"Started" means a pool process has the task. In the prefork pool the rows a round trip
starts are handed to their processes *before* its transaction commits, on hold, and are
released to run once it has: a worker killed before the commit leaves them waiting (the
transaction rolls back, and the processes drop them), one killed after it leaves them
with processes that see the commit and run them, writing the outcome themselves. Rows
already claimed (the buffer, the usual case under a backlog) are handed over before the
round trip, which is then one autocommitted statement; rows claimed and started in the
same round trip are handed over inside its transaction (BEGIN and the statement in one
pipeline, then COMMIT).

The lease: every round trip checks that this worker has not been declared dead. One that
was (cut off from the database longer than ``worker_lease``) claims nothing more under
that id: the rows it held were recovered by others, so it drops its buffer, lets running
tasks finish without writing their outcomes, and carries on under a new id.

The worker's other concerns each have a module: the pace of its claims
(:mod:`.claims`), time limits (:mod:`.timeouts`), revokes that terminate
(:mod:`.revokes`), how it is asked to stop (:mod:`.shutdown`), what becomes of a lost
task (:mod:`.recovery`), the thread that renews its lease and recovers dead workers'
rows (:mod:`.maintenance`), the pools (:mod:`.pools`) and its counters (:mod:`.tally`).
Only the main thread writes the :class:`Worker`'s state: the maintenance thread reads
it through a callback and posts a lost lease to :attr:`Worker.lost_leases`.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections import deque
from multiprocessing.connection import wait as mp_wait
from typing import Any

import psycopg

from .. import broker, serialization, signals, states
from ..conf import conf
from ..db import Listener, listen_alias, open_connection
from ..events import dispatcher as events
from ..exceptions import (
    DjqError,
    EncodeError,
    LeaseLost,
    TaskRevokedError,
    TimeLimitExceeded,
    WorkerLostError,
)
from ..task import Context, registry
from ..trace import call_errbacks, claimed_to_dict, request_from_row
from . import failpoints
from .claims import Claims
from .maintenance import Maintenance, Snapshot, Status, backoff_cap, loadavg
from .pools import Finished, Pool, make_pool
from .recovery import (
    acks_late,
    error_outcome,
    lost_error,
    max_deliveries,
    reject_on_worker_lost,
)
from .revokes import Terminations
from .shutdown import Stop, StopRequests, Wakeup
from .tally import Tally
from .timeouts import TimeLimits, time_limits

logger = logging.getLogger("djq.worker")

VERSION = "0.1.0"


def default_hostname() -> str:
    return f"djq@{socket.gethostname()}"


class Worker:
    """One ``djq_worker`` process."""

    def __init__(
        self,
        concurrency: int | None = None,
        queues: list[str] | None = None,
        pool: str = "prefork",
        prefetch_multiplier: int | None = None,
        hostname: str | None = None,
        max_tasks_per_child: int | None = None,
        max_memory_per_child: int | None = None,
        using: str | None = None,
        send_events: bool | None = None,
        beat: bool = False,
    ) -> None:
        self.concurrency = int(concurrency or conf.worker_concurrency or os.cpu_count() or 1)
        if pool == "solo":
            self.concurrency = 1
        self.queues = queues or [conf.task_default_queue]
        self.pool_kind = pool
        multiplier = (prefetch_multiplier if prefetch_multiplier is not None
                      else conf.worker_prefetch_multiplier)
        self.prefetch = max(1, self.concurrency * max(1, int(multiplier)))
        self.hostname = hostname or default_hostname()
        self.max_tasks_per_child = max_tasks_per_child
        self.max_memory_per_child = max_memory_per_child  # KiB, as in Celery
        self.using = using or conf.database
        self.send_events = bool(conf.worker_send_task_events if send_events is None
                                else send_events)
        self.buffer: deque[broker.Claimed] = deque()
        self.worker_id = 0
        self.conn: psycopg.Connection[Any] | None = None
        self.listener: Listener | None = None  # None: poll-only (a pooler, no listen alias)
        self.poll_interval = float(conf.worker_poll_interval)
        self.pool: Pool | None = None
        self.maintenance: Maintenance | None = None
        self.wakeup = Wakeup()
        self.stopping = StopRequests(self.wakeup.wake)
        self.processed = 0
        self.failed = 0
        self.tally = Tally()  # per task name, for djq.metrics (written with heartbeats)
        self.claims = Claims(self.queues, self.prefetch)
        self.terminations = Terminations()
        self.tracking = _tracking()
        self.inflight: dict[str, broker.Claimed] = {}  # handed to the pool, not yet written
        self.unwritten: list[broker.Outcome] = []  # outcomes the database has not taken yet
        # (task id, max deliveries) of started rows whose process was lost, to re-queue
        self.redeliveries: list[tuple[uuid.UUID, int]] = []
        self.limits = TimeLimits()
        self.events: events.EventDispatcher | None = None  # with -E
        self.lease = float(conf.worker_lease)
        # Ids of leases the maintenance thread found lost: it appends, the loop takes.
        self.lost_leases: deque[int] = deque()
        self._stale: set[str] = set()  # running tasks whose rows were recovered by others
        self._next_db_error_log = 0.0
        self.beat = beat  # run the periodic-task scheduler in a thread (djq.beat)
        self.scheduler: Any = None

    # -- signals and the maintenance thread -------------------------------------------------
    def install_signal_handlers(self) -> None:
        self.stopping.install()

    @property
    def active(self) -> int:
        """How many tasks are running now."""
        return len(self.pool.running()) if self.pool is not None else 0

    def lease_lost(self, worker_id: int) -> None:
        """Told (by the maintenance thread's heartbeat) that the lease ``worker_id`` was
        declared dead: posts the news, which the main loop acts on."""
        self.lost_leases.append(worker_id)
        self.wakeup.wake()

    def _report(self) -> Status:
        """What the maintenance thread's next heartbeat stores (read from its thread)."""
        return Status(self.worker_id, self.processed, self.failed, self.active,
                      self.tally.to_json())

    def _lease_was_lost(self) -> bool:
        """Whether the maintenance thread found the lease this worker holds now lost
        (news of an earlier lease is dropped)."""
        lost = False
        while self.lost_leases:
            lost = self.lost_leases.popleft() == self.worker_id or lost
        return lost

    # -- lifecycle -------------------------------------------------------------------------
    def run(self) -> int:
        """Serve until asked to stop; returns the process exit code."""
        signals.send(signals.worker_init, sender=self)
        self.conn = self._connect()
        self.worker_id = self.register(self.conn)
        os.register_at_fork(after_in_child=self._after_fork_in_child)
        if self.send_events:  # before the pool starts: its processes inherit it
            self.events = events.enable(self.hostname, float(conf.worker_heartbeat_interval))
        self.pool = make_pool(self.pool_kind, self.hostname, self.concurrency,
                              self.max_tasks_per_child, self.max_memory_per_child,
                              None if self.events is None else EventsExtras())
        self.pool.start()
        if self.events is not None:
            self.events.worker_event(self.conn, "worker-online", self)
        snapshot = Snapshot(self.using, self.hostname, self.lease,
                            float(conf.worker_heartbeat_interval), self.events)
        self.maintenance = Maintenance(snapshot, self._report, self.lease_lost)
        self.maintenance.start()
        if self.beat:  # after the pool has forked; a scheduler closes its sockets in forks
            from ..beat.scheduler import Scheduler

            self.scheduler = Scheduler(self.using, hostname=self.hostname)
            self.scheduler.start()
        logger.info("[tasks]\n%s", "\n".join(f"  . {name}" for name in sorted(registry)))
        logger.info("%s ready: pool=%s concurrency=%d queues=%s id=%d", self.hostname,
                    self.pool_kind, self.concurrency, ",".join(self.queues), self.worker_id)
        signals.send(signals.worker_ready, sender=self)
        try:
            self._loop()
        finally:
            self._shutdown()
        return 0

    def register(self, conn: Any) -> int:
        """Take a lease row for this worker (at start, or again after losing it)."""
        return broker.register_worker(
            conn, self.hostname, os.getpid(), self.pool_kind, self.concurrency,
            self.queues, loadavg(), VERSION, sorted(registry),
        )

    def _after_fork_in_child(self) -> None:
        # A pool process must not keep the worker's own sessions open: close its copies
        # of their sockets (without a goodbye to the server, which would end them for
        # the parent too), so a dead worker's sessions end with it.
        conns = [self.conn, self.maintenance.conn if self.maintenance else None,
                 self.listener.conn if self.listener else None]
        for conn in conns:
            if conn is not None and not conn.closed:
                try:
                    os.close(conn.fileno())
                except OSError:
                    pass

    def _connect(self) -> psycopg.Connection[Any]:
        """The broker connection. It LISTENs too, unless it goes through a transaction
        pooler: then a second connection on ``listen_database`` listens, or, without
        one, the worker polls every ``worker_pooled_poll_interval`` seconds."""
        if self.listener is not None and self.listener.conn is not self.conn:
            self.listener.close()
        self.listener = None
        channels = [broker.ENQUEUE_CHANNEL, broker.CONTROL_CHANNEL]
        name = f"djq worker {self.hostname}"
        alias = listen_alias(self.using)
        if alias == self.using:  # one session does both
            self.listener = Listener(channels, self.using, application_name=name)
            self.poll_interval = float(conf.worker_poll_interval)
            return self.listener.conn
        conn = open_connection(self.using, application_name=name)
        if alias is None:
            self.poll_interval = float(conf.worker_pooled_poll_interval)
        else:
            self.listener = Listener(channels, self.using, application_name=name)
            self.poll_interval = float(conf.worker_poll_interval)
        return conn

    def _loop(self) -> None:
        assert self.pool is not None and self.conn is not None
        while not self.stopping.state:
            try:
                if self.lost_leases and self._lease_was_lost():
                    raise LeaseLost(f"Worker id={self.worker_id} was declared dead")
                self._drain_notifies()
                self._check_terminations()
                self._enforce_time_limits()
                self._collect_outcomes(self.pool.collect())
                self._cycle()
                # Our own statements may have brought notifications (ours included):
                # read them before deciding how long to sleep.
                self._drain_notifies()
                timeout = self._timeout()
                if self.events is not None:  # sends events that waited long enough
                    timeout = self.events.before_wait(self.conn, timeout)
                self._wait(timeout)
            except LeaseLost as exc:
                self._start_afresh(exc)
            except psycopg.Error as exc:
                self._reconnect(exc)
            except Exception:  # noqa: BLE001 - no row and no bug may stop the worker
                logger.exception("Unexpected error in the worker loop; resynchronising")
                self._resync()

    def _start_afresh(self, reason: BaseException) -> None:
        """This worker was declared dead (cut off from the database longer than its
        lease) and its rows were recovered by others: claim nothing more under that id,
        let running tasks finish without writing their outcomes (their rows belong to
        others now), and register again under a new id."""
        assert self.conn is not None and self.pool is not None
        old = self.worker_id
        running = sorted(self.inflight)
        logger.error(
            "Lease of worker id=%d was lost (%s): other workers recovered its tasks. "
            "Dropping %d claimed task(s); %d running task(s) finish, but their outcomes "
            "will not be stored", old, reason, len(self.buffer), len(running))
        for outcome in self.unwritten:
            logger.error("Task id=%s ended %s after the lease was lost: outcome not stored",
                         outcome.id, outcome.state)
        self.unwritten = []
        self.redeliveries = []
        self.buffer.clear()
        self._stale.update(running)
        self.tally = Tally()  # the old row keeps what it counted; the new one starts at 0
        self.worker_id = self.register(self.conn)
        self.claims.again()
        logger.warning("Continuing as worker id=%d", self.worker_id)

    def _resync(self) -> None:
        """After an unexpected error: forget claimed rows, hand back every row this worker
        holds but is not running (a row marked started may never have reached the pool),
        and go on after a pause."""
        self.buffer.clear()
        self._wait(1.0)
        try:
            if self.conn is None or self.conn.closed:
                self.conn = self._connect()
            broker.release_unstarted(self.conn, self.worker_id, list(self._held_running()))
            self.claims.again()
        except psycopg.Error as exc:
            self._reconnect(exc)

    def _held_running(self) -> list[uuid.UUID]:
        """Ids of the running tasks whose rows this worker holds."""
        return [c.id for task_id, c in self.inflight.items() if task_id not in self._stale]

    def _reconnect(self, error: BaseException) -> None:
        """Ride out a lost database: keep collecting what running tasks produce, retry
        the connection with backoff, then hand back rows this worker claimed but never
        ran and write the outcomes it kept meanwhile."""
        assert self.pool is not None
        logger.error("Database connection lost (%s); reconnecting", error)
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:  # noqa: BLE001 - it is already broken
                pass
            self.conn = None
        backoff = 0.2
        # A warm shutdown (SIGTERM) starts at once, outage or not: _shutdown() hands rows
        # back and writes outcomes if the database returns within its bounded wait.
        while not self.stopping.state:
            self._wait(backoff)
            self._enforce_time_limits()
            self._collect_outcomes(self.pool.collect())
            if self.stopping.state:
                break
            try:
                self.conn = self._connect()
                self._flush()
                self.buffer.clear()  # claimed again later if still waiting
                requeued = broker.release_unstarted(self.conn, self.worker_id,
                                                    self._held_running())
            except psycopg.Error as exc:
                logger.error("Database still unavailable (%s); retrying in %.1fs", exc,
                             backoff)
                backoff = min(backoff * 2, backoff_cap(self.lease))
                continue
            logger.warning("Database connection restored; %d claimed task(s) re-queued",
                           requeued)
            self.claims.again()
            self.terminations.next_check = 0.0
            return

    def _timeout(self) -> float:
        now = time.monotonic()
        if self.buffer and self.pool is not None and self.pool.free_slots():
            return 0.0
        if self._should_claim():
            # A NOTIFY read after our own statements (e.g. a retry we just stored) made
            # a claim due: do it now, not after the next wait.
            return 0.0
        wait = self.claims.wait(self.poll_interval, now)
        if self.maintenance is not None:
            wait = min(wait, 1.0)
        return max(0.0, self.limits.wait(wait, now))

    def _enforce_time_limits(self) -> None:
        if self.pool is not None:
            self.limits.enforce(self.pool, self.inflight)

    def _wait(self, timeout: float) -> None:
        assert self.pool is not None
        waitables = [self.wakeup.fd, *self.pool.waitables()]
        if self.conn is not None and not self.conn.closed:
            waitables.append(self.conn.fileno())
        if (self.listener is not None and self.listener.conn is not self.conn
                and not self.listener.conn.closed):
            waitables.append(self.listener.conn.fileno())
        if timeout <= 0:
            return
        try:
            ready = mp_wait(waitables, timeout)
        except InterruptedError:
            return
        if self.wakeup.fd in ready:
            self.wakeup.drain()

    def _drain_notifies(self) -> None:
        if self.listener is None:  # poll-only
            return
        for channel, payload in self.listener.drain():
            if channel == broker.ENQUEUE_CHANNEL:
                if payload in self.queues:
                    self.claims.notified()
            elif channel == broker.CONTROL_CHANNEL and self.pool is not None:
                self.terminations.on_control(payload, self.pool)

    def _check_terminations(self) -> None:
        if self.inflight and self.conn is not None and self.pool is not None:
            self.terminations.check(self.conn, self.worker_id, self.pool)

    # -- claiming and dispatching -------------------------------------------------------
    def _should_claim(self) -> bool:
        """Whether a claim is due now: a pool slot no buffered row will fill, or rows
        to reserve (see :meth:`_claim_limits`)."""
        assert self.pool is not None
        unfilled = max(0, self.pool.free_slots() - len(self.buffer))
        return self._claim_limits(unfilled)[0] > 0

    def _claim_limits(self, free: int) -> tuple[int, int]:
        """(rows to claim, of which to start at once) for a round trip that leaves
        ``free`` pool slots empty after starting buffered rows (see :mod:`.claims`);
        none once asked to stop."""
        if self.stopping.state:
            return 0, 0
        return self.claims.limits(free, len(self.buffer))

    def _cycle(self) -> None:
        """Write outcomes, start buffered rows in free pool slots and claim more, all in
        one transaction; the started rows run once it has committed."""
        assert self.pool is not None and self.conn is not None
        self._redeliver()
        while True:
            free = self.pool.free_slots()
            to_start = [self.buffer.popleft() for _ in range(min(free, len(self.buffer)))]
            claim_limit, claim_start = self._claim_limits(free - len(to_start))
            busy = bool(self.unwritten or to_start or claim_limit)
            notify = ([] if self.events is None
                      else self.events.take_notifications(alone=not busy))
            if not (busy or notify):
                return
            # Prefork: started rows reach their processes on hold, and run only once their
            # start has committed (see the module's docstring). Under a backlog every row
            # started comes from the buffer: those are handed over before the statement
            # that starts them, which then commits by itself, in one round trip. Rows
            # claimed and started at once are handed over inside the transaction instead.
            hold = self.pool.holds and bool(to_start or claim_start)
            early = hold and not claim_start  # handed over before the statement
            inside = hold and not early  # handed over inside its transaction
            handed: list[str] = []
            failed: list[broker.Outcome] = []
            try:
                if early:
                    self._hand_over(to_start, handed, failed)
                started, claimed = broker.cycle(
                    self.conn, self.worker_id, self.hostname, self.unwritten,
                    [c.id for c in to_start], self.claims.order(), claim_limit,
                    claim_start, self.tracking, self.lease, notify, hold=inside,
                )
                if early:  # a row revoked meanwhile was not started: its process drops it
                    dropped = [str(r.id) for r in to_start if r.id not in started]
                    self._withdraw([t for t in dropped if t in handed])
                    handed = [t for t in handed if t not in dropped]
                elif inside:
                    try:
                        if claim_limit:  # received before started (the events' order)
                            self._received(claimed)
                        self._hand_over(self._to_run(to_start, started, claimed), handed,
                                        failed)
                    except BaseException:
                        broker.rollback(self.conn)
                        raise
                    broker.commit(self.conn)
            except BaseException:
                # Not started, or not known to have committed: the held rows must not
                # run. Rows that did commit as started are handed back by _reconnect.
                self._withdraw(handed)
                self.buffer.extendleft(reversed(to_start))  # still only claimed
                raise
            if claim_limit and not inside:
                self._received(claimed)
            self.unwritten = failed
            if hold:
                if handed:
                    failpoints.hit(failpoints.BEFORE_GO)
                    self.pool.release(handed)
            else:
                for row in self._to_run(to_start, started, claimed):
                    self._submit(row, handed, self.unwritten)
            for row in to_start:
                if row.id not in started:
                    logger.info("Discarding revoked task %s[%s]", row.name, row.id)
            if claim_limit:
                self.buffer.extend(row for row in claimed if not row.started)
                self.claims.claimed(len(claimed), claim_limit, self.conn,
                                    self.poll_interval)
            if not (self.buffer and self.pool.free_slots()):
                return

    @staticmethod
    def _to_run(to_start: list[broker.Claimed], started: set[uuid.UUID],
                claimed: list[broker.Claimed]) -> list[broker.Claimed]:
        """The rows a round trip started: buffered ones it could start (a revoked one
        could not), then newly claimed ones it started at once."""
        return ([row for row in to_start if row.id in started]
                + [row for row in claimed if row.started])

    def _hand_over(self, rows: list[broker.Claimed], handed: list[str],
                   failed: list[broker.Outcome]) -> None:
        """Give ``rows`` to the pool on hold: they run once released."""
        if rows:
            failpoints.hit(failpoints.BEFORE_HANDOVER)
            for row in rows:
                self._submit(row, handed, failed, hold=True)
            failpoints.hit(failpoints.BEFORE_COMMIT)

    def _withdraw(self, task_ids: list[str]) -> None:
        """Take back rows handed over on hold whose start did not commit."""
        if not task_ids or self.pool is None:
            return
        self.pool.withdraw(task_ids)
        for task_id in task_ids:
            self.inflight.pop(task_id, None)
            self.limits.disarm(task_id)
            self.tally.forget(task_id)

    def _received(self, claimed: list[broker.Claimed]) -> None:
        for row in claimed:
            logger.info("Task %s[%s] received", row.name, row.id)
        if signals.task_received.has_listeners():
            for row in claimed:
                try:
                    request = Context(id=str(row.id), task=row.name, hostname=self.hostname,
                                      called_directly=False, **_received_fields(row))
                except Exception:  # noqa: BLE001 - a bad row fails when it runs, alone
                    logger.exception("Task %s[%s]: cannot build its request", row.name,
                                     row.id)
                    continue
                signals.send(signals.task_received, sender=self, request=request)

    def _submit(self, row: broker.Claimed, handed: list[str], failed: list[broker.Outcome],
                hold: bool = False) -> None:
        """Hand a row marked started to the pool, with its time limits (on ``hold``: it
        runs once released), and add its id to ``handed``. A row whose options cannot be
        decoded is not handed over: its FAILURE (DecodeError) goes to ``failed``."""
        assert self.pool is not None
        task_id = str(row.id)
        try:
            soft, hard = time_limits(row)
        except DjqError as exc:
            logger.error("Task %s[%s] has options that cannot be decoded: %s", row.name,
                         task_id, exc)
            failed.append(error_outcome(row.id, exc))
            self.failed += 1
            self.processed += 1
            return
        self.inflight[task_id] = row
        self.tally.started(task_id)
        handed.append(task_id)
        if soft is not None or hard is not None:
            self.limits.arm(task_id, soft, hard)
        payload = claimed_to_dict(row)
        payload["worker_id"] = self.worker_id
        if self.events is not None:
            self.events.task_started(task_id)
        self.pool.submit(payload, hold=hold)

    # -- writing outcomes -------------------------------------------------------------
    def _flush(self) -> None:
        """Write kept outcomes. If the connection fails they stay kept for the next try;
        an outcome the database refuses (bad data) is replaced by a FAILURE saying why."""
        self._redeliver()
        if not self.unwritten or self.conn is None:
            return
        try:
            self._log_refused(broker.finish(self.conn, self.worker_id, self.unwritten))
        except psycopg.OperationalError:
            raise
        except psycopg.Error as exc:
            if self.conn.closed:
                raise
            logger.error("Could not store a batch of %d outcome(s) (%s); storing one by one",
                         len(self.unwritten), exc)
            for outcome in self.unwritten:
                self._store_one(outcome)
        self.unwritten = []

    def _redeliver(self) -> None:
        """Re-queue the started rows whose process was lost (each delivery counted; past
        its limit, a row ends FAILURE). Kept for the next try if the connection fails."""
        if not self.redeliveries or self.conn is None:
            return
        result, traceback = lost_error()
        for task_id, ended, count in broker.redeliver(self.conn, self.redeliveries, result,
                                                      traceback, worker_id=self.worker_id):
            if ended:
                self.failed += 1
                self.processed += 1
                logger.error("Task id=%s was delivered %d times and lost each time: it ends "
                             "FAILURE (WorkerLostError)", task_id, count)
        self.redeliveries = []

    def _store_one(self, outcome: broker.Outcome) -> None:
        assert self.conn is not None
        try:
            self._log_refused(broker.finish(self.conn, self.worker_id, [outcome]))
        except psycopg.OperationalError:
            raise
        except psycopg.Error as exc:
            logger.error("Task id=%s: its outcome cannot be stored: %s", outcome.id, exc)
            error = EncodeError(f"The task's outcome could not be stored: {exc}")
            broker.finish(self.conn, self.worker_id, [error_outcome(outcome.id, error)])

    @staticmethod
    def _log_refused(refused: list[broker.Outcome]) -> None:
        for outcome in refused:
            logger.error("Task id=%s ended %s, but this worker no longer holds its row "
                         "(recovered by other workers while it was cut off): outcome not "
                         "stored", outcome.id, outcome.state)

    def _collect_outcomes(self, finished: list[Finished]) -> None:
        if not finished:
            return
        for f in finished:
            if f.extras is not None:  # events a pool process sent with the outcome
                events.from_child(f.extras)
            claimed = self.inflight.pop(f.task_id, None)
            limit = self.limits.finished(f.task_id)
            signum = self.terminations.finished(f.task_id)
            if f.task_id in self._stale:
                self._stale.discard(f.task_id)
                self.tally.forget(f.task_id)
                logger.error(
                    "Task %s[%s] finished (%s) after this worker's lease was lost; other "
                    "workers recovered its row, so this outcome is not stored",
                    claimed.name if claimed else "?", f.task_id,
                    f.outcomes[-1].state if f.outcomes else f.lost)
                continue
            if f.lost is None:
                # A limit or a termination raised inside a thread ended the task itself.
                outcomes = f.outcomes
            else:
                lost = self._lost_outcome(f, claimed, limit, signum)
                if lost is None:  # to be delivered again (see _redeliver)
                    continue
                outcomes = [lost]
            if f.lost is not None and self.events is not None:
                self.events.lost(outcomes)
            for o in outcomes:
                self.tally.finished(claimed.name if claimed else "?", o)
                if o.status == broker.DONE:
                    self.processed += 1
                    self.failed += o.state == states.FAILURE
            self.unwritten.extend(outcomes)

    def _lost_outcome(self, f: Finished, claimed: broker.Claimed | None,
                      limit: float | None, signum: int | None) -> broker.Outcome | None:
        """The outcome of a task whose process died: killed for its hard time limit
        (``limit``), terminated by a revoke (with ``signum``), or lost. A lost task fails
        with WorkerLostError, as in Celery, even under acks_late, unless it is acks_late
        and reject_on_worker_lost, or the process was killed by a cold shutdown under
        acks_late: then it is to be delivered again (None; see :meth:`_redeliver`)."""
        task_id = uuid.UUID(f.task_id)
        name = claimed.name if claimed is not None else None
        if limit is not None:
            exceeded = TimeLimitExceeded(f"TimeLimitExceeded({limit:g})")
            self._errbacks(claimed, exceeded)
            return error_outcome(task_id, exceeded)
        if signum is not None:
            signals.send(signals.task_revoked, sender=registry.get(name or ""),
                         request=Context(id=f.task_id, task=name, called_directly=False,
                                         hostname=self.hostname),
                         terminated=True, signum=signum, expired=False)
            return error_outcome(task_id, TaskRevokedError("terminated"), states.REVOKED,
                                  with_traceback=False)
        cold = self.stopping.state >= Stop.COLD
        if name is not None and acks_late(name) and (cold or reject_on_worker_lost(name)):
            why = "cold shutdown" if cold else "reject_on_worker_lost"
            logger.warning("Task %s[%s] lost its process (%s): re-queued (acks_late, %s)",
                           name, f.task_id, f.lost, why)
            self.redeliveries.append((task_id, max_deliveries(name)))
            return None
        lost = WorkerLostError(f.lost or "Worker exited prematurely.")
        self._errbacks(claimed, lost)
        return error_outcome(task_id, lost)

    def _errbacks(self, claimed: broker.Claimed | None, exc: BaseException) -> None:
        """As Celery's worker does for a task whose process died (hard time limit, lost
        process): call its errbacks here, in the main process."""
        if claimed is None or '"link_error"' not in claimed.options:
            return
        try:
            request = request_from_row(claimed_to_dict(claimed), self.hostname)
        except DjqError:  # undecodable options: the task fails alone, without errbacks
            logger.exception("Task %s[%s]: cannot read its errbacks", claimed.name,
                             claimed.id)
            return
        call_errbacks(request, exc, None)

    # -- shutdown ----------------------------------------------------------------------
    def _shutdown(self) -> None:
        """Warm: hand claimed rows back, let running tasks finish. Cold: kill them (their
        rows are re-queued under acks_late and fail with WorkerLostError otherwise).

        With the database away, running tasks still finish (warm), then the worker waits
        up to one lease for it to write their outcomes and hand rows back, and exits
        leaving whatever is left to recovery by the other workers."""
        self._try_db(self._release_buffer)
        if self.pool is not None:
            if self.stopping.state < Stop.COLD:
                self._drain_running()
            self.pool.stop(cold=self.stopping.state >= Stop.COLD)
            self._collect_outcomes(self.pool.collect())
        self._try_db(self._flush)
        if self.unwritten or self.redeliveries or self.buffer:
            self._wait_for_database()
        if self.unwritten or self.redeliveries or self.buffer:
            logger.error("%d outcome(s) could not be written and %d claimed task(s) not "
                         "handed back; other workers will recover those tasks",
                         len(self.unwritten), len(self.buffer))
        if self.scheduler is not None:
            self.scheduler.stop()
        if self.maintenance is not None:
            self.maintenance.stop()
        dispatcher = self.events
        if dispatcher is not None:  # after the last heartbeat, with what is still buffered
            self._try_db(lambda: dispatcher.worker_event(self.conn, "worker-offline", self))
        self._try_db(lambda: broker.stop_worker(self.conn, self.worker_id,
                                                        self.tally.to_json()))
        if self.conn is not None:
            self.conn.close()
        if self.listener is not None:
            self.listener.close()
        signals.send(signals.worker_shutdown, sender=self)

    def _wait_for_database(self) -> None:
        """Shutdown with the database away: retry, for at most one lease, to write the
        kept outcomes and hand claimed rows back."""
        deadline = time.monotonic() + self.lease
        logger.warning("Database unavailable at shutdown: waiting up to %.0fs to store %d "
                       "outcome(s) and hand back %d claimed task(s)", self.lease,
                       len(self.unwritten), len(self.buffer))
        backoff = 0.2
        while ((self.unwritten or self.redeliveries or self.buffer)
               and self.stopping.state < Stop.COLD):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._wait(min(backoff, remaining))
            backoff = min(backoff * 2, backoff_cap(self.lease))
            self._try_db(self._release_buffer)
            self._try_db(self._flush)

    def _release_buffer(self) -> None:
        if self.buffer:
            released = broker.release(self.conn, self.worker_id, [c.id for c in self.buffer])
            logger.info("Handed %d claimed task(s) back to the queue", released)
            self.buffer.clear()

    def _try_db(self, action: Any) -> None:
        """Run a shutdown step, reconnecting once; log (do not raise) database errors."""
        for attempt in (1, 2):
            try:
                if self.conn is None or self.conn.closed:
                    self.conn = self._connect()
                action()
                return
            except psycopg.Error as exc:
                self.conn = None
                if attempt == 2:
                    now = time.monotonic()
                    if now >= self._next_db_error_log:  # once a few seconds, not per try
                        self._next_db_error_log = now + 5.0
                        logger.error("Shutdown step failed, database unavailable: %s", exc)

    def _drain_running(self) -> None:
        """Warm shutdown: let running tasks finish, writing each outcome as it comes."""
        assert self.pool is not None
        while self.pool.running() and self.stopping.state < Stop.COLD:
            self._wait(0.5)
            self._enforce_time_limits()
            self._collect_outcomes(self.pool.collect())
            if self.unwritten or self.redeliveries:
                self._try_db(self._flush)


def _received_fields(row: broker.Claimed) -> dict[str, Any]:
    """What ``task_received`` receivers learn of a claimed row beyond its id and name."""
    argsrepr, kwargsrepr = _reprs(row)
    return {
        "argsrepr": argsrepr, "kwargsrepr": kwargsrepr, "retries": row.retries,
        "eta": row.eta.isoformat() if row.eta else None,
        "expires": row.expires.isoformat() if row.expires else None,
        "root_id": str(row.root_id) if row.root_id else None,
        "parent_id": str(row.parent_id) if row.parent_id else None,
        "delivery_info": {"exchange": "", "routing_key": row.queue, "priority": row.priority,
                          "redelivered": False},
    }


def _reprs(row: broker.Claimed) -> tuple[str, str]:
    """The arguments as Celery shows them (``argsrepr``/``kwargsrepr``): the reprs given
    at call time, else ``repr()`` of the decoded values (their JSON text if that fails)."""
    try:
        options = serialization.loads_options(row.options)
        args = options.get("argsrepr") or repr(tuple(serialization.loads(row.args) or ()))
        kwargs = options.get("kwargsrepr") or repr(serialization.loads(row.kwargs) or {})
    except Exception:  # noqa: BLE001 - a row that does not decode fails when it runs
        return row.args, row.kwargs
    return str(args), str(kwargs)


class EventsExtras:
    """Events' share of what travels with a task to a prefork pool process and back
    (:class:`~djq.worker.pools.Extras`): the worker's Lamport clock out; the events the
    process buffered while running it, and its clock, back (``Finished.extras``, which
    :meth:`Worker._collect_outcomes` hands to events)."""

    def stamp(self, row: dict[str, Any]) -> None:
        events.to_child(row)

    def received(self, row: dict[str, Any]) -> None:
        events.from_parent(row)

    def extras(self) -> Any:
        return events.to_parent()


def _tracking() -> broker.Tracking:
    """Which tasks show STARTED: the setting, and the registered tasks that differ."""
    default = bool(conf.task_track_started)
    return broker.Tracking(default, tuple(sorted(
        name for name, task in registry.items() if bool(task.option("track_started")) != default
    )))


__all__ = ["Worker", "default_hostname"]
