"""The queue: enqueue, claim (SKIP LOCKED), start, finish, release, recover, prune.

The one caller of the queue's SQL: the statements are named blocks of
``djq/sql/queue.sql``, the worker's cycle and the finish are server-side functions
(``djq/sql/functions/``); callers get functions, never SQL text. The values that travel
(:class:`~djq.rows.Message`, :class:`~djq.rows.Outcome`, ...) and their encodings live in
:mod:`djq.rows`; the status numbers and NOTIFY channels in :mod:`djq.status`.

Callers on the user side pass a Django ``using`` alias, so an enqueue joins the caller's
``transaction.atomic()``. The worker's loop passes its own psycopg connection (autocommit,
server-side binding, so repeated statements get prepared).

Every statement that changes a claimed row checks ``claimed_by``: a worker can only
start, finish or release rows it still holds, so a row recovered from a worker thought
dead is never written twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from django.db import connections
from psycopg.types.json import Jsonb

from . import sql, states
from .conf import conf
from .exceptions import LeaseLost

# Re-exported (broker.Outcome, broker.DONE_CHANNEL, broker.DONE ...): most of djq names them so.
from .rows import ChordRow as ChordRow
from .rows import Claimed as Claimed
from .rows import Message as Message
from .rows import Orphan as Orphan
from .rows import Outcome as Outcome
from .status import CONTROL_CHANNEL as CONTROL_CHANNEL
from .status import DONE_CHANNEL as DONE_CHANNEL
from .status import ENQUEUE_CHANNEL as ENQUEUE_CHANNEL
from .status import NOTIFY_IDS, Status

WAITING, CLAIMED, STARTED, DONE, DEFERRED = (
    Status.WAITING, Status.CLAIMED, Status.STARTED, Status.DONE, Status.DEFERRED)


def _json_rows(values: Iterable[Message | Outcome | ChordRow]) -> str:
    # Many rows travel as one JSON parameter, each in its type's to_json order: cheaper
    # to build than typed arrays, and PostgreSQL takes it apart in one pass.
    return json.dumps([v.to_json() for v in values])


def enqueue(messages: Sequence[Message], using: str | None = None) -> int:
    """Insert ``messages`` in one statement and wake the workers of their queues.

    Runs on Django's connection, so it joins the caller's transaction: the rows and the
    NOTIFY commit or roll back together. An id that names a finished task re-queues it
    under that id; returns how many rows were written (an id still waiting or running is
    left alone and not counted).
    """
    if not messages:
        return 0
    if any(m.status != WAITING or m.waiting_on is not None for m in messages):
        return enqueue_canvas(messages, (), using=using)
    wrapper = connections[using or conf.database]
    wrapper.ensure_connection()
    wrapper.validate_no_broken_transaction()
    # Server-side binding on Django's own connection (inside its transaction, if any):
    # the parameters travel apart from the text, which is much cheaper than Django's
    # default of quoting them into it.
    with wrapper.wrap_database_errors, psycopg.Cursor(wrapper.connection) as cursor:
        if len(messages) == 1:
            cursor.execute(sql.query("enqueue_one"), messages[0].to_values())
            return 1 if cursor.fetchone() is not None else 0
        cursor.execute(sql.query("enqueue"), [_json_rows(messages)])
        row = cursor.fetchone()
    return int(row[0]) if row else 0


@dataclasses.dataclass(frozen=True, slots=True)
class Tracking:
    """Which tasks show STARTED: the default, and the names that differ from it."""

    default: bool = False
    exceptions: tuple[str, ...] = ()

    def tracks(self, name: str) -> bool:
        return self.default != (name in self.exceptions)


def _claimed(rows: Iterable[Any]) -> list[Claimed]:
    claimed = [Claimed.from_row(row) for row in rows]
    claimed.sort(key=lambda c: (-c.priority, c.run_at))
    return claimed


# The worker's round trip is one server-side function (djq/sql/functions/djq_cycle_v3.sql):
# a single statement, so a single commit (whose WAL flush is the real cost of a queue),
# with plans cached by PL/pgSQL. Versioned: a change is a new function and a new
# migration; the older versions stay for workers of older releases (rolling upgrades).
def cycle(conn: Any, worker_id: int, hostname: str, outcomes: Sequence[Outcome],
          start_ids: Sequence[uuid.UUID], queues: Sequence[str], claim_limit: int,
          claim_start: int, tracking: Tracking, lease: float,
          notify: Sequence[tuple[str, str]] = (),
          hold: bool = False) -> tuple[set[uuid.UUID], list[Claimed]]:
    """A worker's loop in one statement: write ``outcomes``, mark ``start_ids`` started,
    claim up to ``claim_limit`` more rows of ``queues`` (read in that order; the first
    ``claim_start`` claimed are started too). Returns (ids started, rows claimed).

    With ``hold``, the transaction is left open (BEGIN goes in the same round trip): the
    worker hands the started rows to its pool, then calls :func:`commit` (or
    :func:`rollback`). See :mod:`djq.worker.consumer`.

    Raises :class:`~djq.exceptions.LeaseLost`, having written nothing, if this worker
    was declared dead.
    """
    done: str | None = None
    if outcomes:
        if len(outcomes) > NOTIFY_IDS:  # keep each NOTIFY payload under its size limit
            finish(conn, worker_id, outcomes[:-NOTIFY_IDS])
            outcomes = outcomes[-NOTIFY_IDS:]
        done = _json_rows(outcomes)
    params = [
        worker_id, hostname, done, list(start_ids), list(queues), claim_limit, claim_start,
        tracking.default, list(tracking.exceptions), float(lease),
    ]
    if hold:
        with conn.pipeline():
            conn.execute("BEGIN")
            if notify:
                conn.execute(sql.query("notify"), _notify_params(notify))
            cursor = conn.execute(sql.query("cycle"), params)
        rows = cursor.fetchall()
    elif notify:
        # Events (``notify``: (channel, payload) pairs) ride in the same transaction and
        # round trip: a NOTIFY of its own would cost a commit of its own.
        with conn.pipeline(), conn.transaction():
            conn.execute(sql.query("notify"), _notify_params(notify))
            cursor = conn.execute(sql.query("cycle"), params)
        rows = cursor.fetchall()
    else:
        rows = conn.execute(sql.query("cycle"), params).fetchall()
    if rows and rows[0][0] == "L":
        if hold:
            rollback(conn)
        raise LeaseLost(f"Worker id={worker_id} was declared dead by other workers")
    started = {row[1] for row in rows if row[0] == "s"}
    # RETURNING gives no order: put the claimed rows back in claim order (the buffer
    # hands them out in this order).
    claimed = _claimed(row[1:] for row in rows if row[0] == "c")
    return started, claimed


def commit(conn: Any) -> None:
    """End the transaction :func:`cycle` left open with ``hold``."""
    conn.execute("COMMIT")


def rollback(conn: Any) -> None:
    """Abandon the transaction :func:`cycle` left open with ``hold`` (nothing it did
    stays); a broken connection has abandoned it already."""
    if not conn.closed and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        conn.execute("ROLLBACK")


def _notify_params(notify: Sequence[tuple[str, str]]) -> list[Any]:
    # One JSON parameter: text[] arrays of JSON payloads cost a regex pass per quote.
    return [json.dumps(notify)]


def notify(conn: Any, notifications: Sequence[tuple[str, str]]) -> None:
    """Send (channel, payload) NOTIFYs in one statement on a psycopg connection."""
    if notifications:
        conn.execute(sql.query("notify"), _notify_params(notifications))


def announce(channel: str, payload: str, using: str | None = None) -> None:
    """One NOTIFY on Django's connection: it goes out when the caller's transaction
    commits (at once in autocommit), and not at all if it rolls back."""
    with connections[using or conf.database].cursor() as cursor:
        cursor.execute(sql.query("notify_one"), [channel, payload])


def next_run_at(conn: Any, queues: Sequence[str]) -> datetime.datetime | None:
    """When the earliest waiting row of ``queues`` becomes claimable."""
    row = conn.execute(sql.query("next_run_at"), [list(queues)]).fetchone()
    return row[0] if row else None


def finish(conn: Any, worker_id: int, outcomes: Iterable[Outcome]) -> list[Outcome]:
    """Write the outcomes of rows this worker holds, in batches (djq_finish_v1, which the
    cycle calls too); wake waiting readers.

    Returns the outcomes that were not written: their rows are no longer held by this
    worker (recovered by others after it was declared dead), and are left untouched.
    """
    refused: list[Outcome] = []
    for batch in _batches(outcomes):
        params = [worker_id, _json_rows(batch)]
        written = set(conn.execute(sql.query("finish"), params).fetchone()[0])
        refused.extend(o for o in batch if o.id not in written)
    return refused


def _batches(outcomes: Iterable[Outcome]) -> Iterable[list[Outcome]]:
    # Each batch's finished ids go out in one NOTIFY, whose payload has a size limit.
    batch: list[Outcome] = []
    for outcome in outcomes:
        batch.append(outcome)
        if len(batch) >= NOTIFY_IDS:
            yield batch
            batch = []
    if batch:
        yield batch


def release(conn: Any, worker_id: int, ids: Sequence[uuid.UUID]) -> int:
    """Hand claimed-but-unstarted rows back to the queue (warm shutdown)."""
    if not ids:
        return 0
    row = conn.execute(sql.query("release"), [list(ids), worker_id]).fetchone()
    return int(row[0])


def release_unstarted(conn: Any, worker_id: int, running: Sequence[uuid.UUID]) -> int:
    """After a lost connection: every row this worker holds but is not running goes
    back to the queue (a start whose answer was lost never reached the pool)."""
    row = conn.execute(sql.query("release_unstarted"), [worker_id, list(running)]).fetchone()
    return int(row[0])


# --- workers and their leases -------------------------------------------------------


def register_worker(conn: Any, hostname: str, pid: int, pool: str, concurrency: int,
                    queues: Sequence[str], loadavg: str, sw_ver: str,
                    registered: Sequence[str] = ()) -> int:
    """Take a lease for a starting worker, with the task names it can run."""
    row = conn.execute(sql.query("register_worker"), [
        hostname, pid, pool, concurrency, ",".join(queues), loadavg, sw_ver, list(registered),
    ]).fetchone()
    return int(row[0])


def heartbeat(conn: Any, worker_id: int, processed: int, failed: int, active: int,
              loadavg: str, counters: dict[str, Any] | None = None) -> bool:
    """Renew this worker's lease (and store its counters); False if others already
    declared it dead."""
    row = conn.execute(sql.query("heartbeat"), [processed, failed, active, loadavg,
                                    None if counters is None else Jsonb(counters),
                                    worker_id]).fetchone()
    return row is not None


def stop_worker(conn: Any, worker_id: int, counters: dict[str, Any] | None = None) -> None:
    conn.execute(sql.query("stop_worker"),
                 [None if counters is None else Jsonb(counters), worker_id])


def expire_workers(conn: Any, lease: float) -> list[tuple[int, str]]:
    """Declare dead every worker whose lease ran out; return (id, hostname) of each."""
    rows = conn.execute(sql.query("expire_workers"), [lease]).fetchall()
    return [(int(r[0]), r[1]) for r in rows]


def orphans(conn: Any) -> list[Orphan]:
    """In-flight rows held by no live worker, locked until the transaction ends."""
    return [Orphan.from_row(r) for r in conn.execute(sql.query("orphans")).fetchall()]


def requeue_orphans(conn: Any, ids: Sequence[uuid.UUID]) -> int:
    """Put rows held by no live worker back in their queue."""
    if not ids:
        return 0
    return int(conn.execute(sql.query("requeue_orphans"), [list(ids)]).fetchone()[0])


def fail_orphans(conn: Any, ids: Sequence[uuid.UUID], result: str, traceback: str) -> int:
    """End started rows held by no live worker as FAILURE with the given error."""
    if not ids:
        return 0
    row = conn.execute(sql.query("fail_orphans"), [result, traceback, list(ids)]).fetchone()
    return int(row[0])


def redeliver(conn: Any, rows: Sequence[tuple[uuid.UUID, int]], result: str, traceback: str,
              worker_id: int | None = None) -> list[tuple[uuid.UUID, bool, int]]:
    """Put started rows whose process or worker was lost back in their queue, counting
    the delivery; a row reaching its limit (``rows``: (id, max deliveries)) ends FAILURE
    with ``result``/``traceback`` (``@N@`` and ``@MAX@`` filled in). Rows held by
    ``worker_id``, or, without it, by no live worker. Returns (id, ended, deliveries)."""
    if not rows:
        return []
    payload = json.dumps([[str(i), int(n)] for i, n in rows])
    found = conn.execute(sql.query("redeliver"), [payload, result, traceback, worker_id, worker_id])
    return [(r[0], int(r[1]) == DONE, int(r[2])) for r in found.fetchall()]


def prune_workers(conn: Any, older_than: float) -> int:
    """Delete rows of workers stopped more than ``older_than`` seconds ago, folding their
    counters into ``djq_retired_counters`` in the same transaction."""
    from .worker.tally import merge

    with conn.transaction():
        rows = conn.execute(sql.query("prune_workers"), [older_than]).fetchall()
        gone = [_json(r[0]) for r in rows]
        if any(gone):
            row = conn.execute(sql.query("retired_counters_locked")).fetchone()
            merged = merge(_json(row[0]) if row else None, *gone)
            conn.execute(sql.query("retire_counters"), [Jsonb(merged)])
    return len(gone)


def retired_counters(conn: Any) -> dict[str, Any]:
    row = conn.execute(sql.query("retired_counters")).fetchone()
    return _json(row[0]) if row else {}


def _json(value: Any) -> Any:
    # Django's cursors leave jsonb as text (its JSONField decodes); psycopg's decode it.
    return json.loads(value) if isinstance(value, str) else value


def prune(conn: Any, older_than: float | None, batch: int,
          failed_older_than: float | None = None) -> int:
    """Delete up to ``batch`` finished rows: FAILURE rows older than
    ``failed_older_than`` seconds, the others older than ``older_than`` (None: never)."""
    ages = [a for a in (older_than, failed_older_than) if a is not None]
    if not ages:
        return 0
    cursor = conn.execute(sql.query("prune"), {"shortest": min(ages), "others": older_than,
                                   "failed": failed_older_than, "batch": batch})
    deleted = int(cursor.rowcount)
    prune_workers(conn, max(older_than or 0.0, 3600.0))
    if deleted < batch and len(ages) == 2:  # once per pass: finished chords, saved groups
        longest = max(ages)
        conn.execute(sql.query("prune_canvas"), [longest, longest])
    return deleted


# --- control (djq.control: revoke, retry, purge) ---------------------------------------


def revoke_waiting(task_id: str | uuid.UUID, result: str, using: str | None = None) -> str | None:
    """End a row that has not started (waiting, claimed, deferred) as REVOKED with
    ``result``, and wake its readers; the task's name, or None if it had started or
    ended, or is unknown."""
    with connections[using or conf.database].cursor() as cursor:
        cursor.execute(sql.query("revoke_waiting"), [result, _as_uuid(task_id)])
        row = cursor.fetchone()
    return None if row is None else str(row[0])


def revoke_waiting_many(task_ids: Sequence[uuid.UUID], result: str,
                        using: str | None = None) -> list[tuple[uuid.UUID, str]]:
    """:func:`revoke_waiting` for many rows in one statement: (id, name) of each revoked."""
    with connections[using or conf.database].cursor() as cursor:
        cursor.execute(sql.query("revoke_waiting_many"), [result, list(task_ids)])
        return [(row[0], str(row[1])) for row in cursor.fetchall()]


def task_status(task_id: str | uuid.UUID, using: str | None = None) -> int | None:
    """The row's :class:`~djq.status.Status`, or None if djq does not know the id."""
    with connections[using or conf.database].cursor() as cursor:
        cursor.execute(sql.query("task_status"), [_as_uuid(task_id)])
        row = cursor.fetchone()
    return None if row is None else int(row[0])


def request_terminate(task_id: str | uuid.UUID, signum: int, message: str,
                      using: str | None = None) -> bool:
    """Ask the worker running the row to kill it with ``signum``: kept on the row and
    announced with ``message`` on the control channel. False if it is not running."""
    with connections[using or conf.database].cursor() as cursor:
        cursor.execute(sql.query("request_terminate"), [signum, _as_uuid(task_id), message])
        return cursor.fetchone() is not None


def retry(task_id: str | uuid.UUID, using: str | None = None) -> bool:
    """Re-queue a finished row under its id, its result cleared; False if the row is
    unknown or has not finished."""
    with connections[using or conf.database].cursor() as cursor:
        cursor.execute(sql.query("retry"), [_as_uuid(task_id)])
        return cursor.fetchone() is not None


def purge(queues: Sequence[str] | None = None, using: str | None = None) -> int:
    """Delete the waiting rows of ``queues`` (None: every queue), and the canvas steps and
    chords that could only have run after them; how many waiting rows went."""
    names = None if queues is None else list(queues)
    with connections[using or conf.database].cursor() as cursor:
        cursor.execute(sql.query("purge"), [names, names])
        row = cursor.fetchone()
    return int(row[0]) if row else 0


# --- the worker's pool processes --------------------------------------------------------


def holds_started(conn: Any, worker_id: int, task_id: str | uuid.UUID) -> bool:
    """Whether the row is marked started by ``worker_id``: asked by a pool process whose
    worker died while handing the row over, once the worker's transaction has ended."""
    # SET LOCAL: a session-wide SET would stay behind on a pooler's server session.
    with conn.transaction():
        conn.execute("SET LOCAL lock_timeout = '30s'")
        row = conn.execute(sql.query("holds_started"), [_as_uuid(task_id), worker_id]).fetchone()
    return row is not None


def terminations(conn: Any, worker_id: int) -> list[tuple[uuid.UUID, int]]:
    """Rows this worker runs that someone asked to terminate, with the signal."""
    rows = conn.execute(sql.query("terminations"), [worker_id]).fetchall()
    return [(r[0], int(r[1])) for r in rows]


# --- reads and writes from user code (Django's connection) -------------------------


FETCH_FIELDS = (
    "id", "name", "state", "status", "queue", "args", "kwargs", "result", "traceback",
    "retries", "worker", "date_created", "date_started", "date_done", "parent_id", "root_id",
    "group_id", "eta", "expires", "options", "priority",
)


def fetch(task_id: str | uuid.UUID, using: str | None = None) -> dict[str, Any] | None:
    """The stored row of ``task_id`` as a dict, or None if djq does not know it."""
    with connections[using or conf.database].cursor() as cursor:
        cursor.execute(sql.query("fetch"), [_as_uuid(task_id)])
        row = cursor.fetchone()
    return dict(zip(FETCH_FIELDS, row)) if row else None


async def afetch(conn: Any, task_id: str | uuid.UUID) -> dict[str, Any] | None:
    """:func:`fetch` on an async psycopg connection (``AsyncResult.aget``)."""
    cursor = await conn.execute(sql.query("fetch"), [_as_uuid(task_id)])
    row = await cursor.fetchone()
    return dict(zip(FETCH_FIELDS, row)) if row else None


def children(task_id: str | uuid.UUID, using: str | None = None) -> list[uuid.UUID]:
    with connections[using or conf.database].cursor() as cursor:
        cursor.execute(sql.query("children"), [_as_uuid(task_id)])
        return [row[0] for row in cursor.fetchall()]


def update_state(task_id: str | uuid.UUID, state: str, meta: str | None,
                 using: str | None = None) -> int:
    """Store a custom state and its meta on an unfinished row."""
    with connections[using or conf.database].cursor() as cursor:
        cursor.execute(sql.query("update_state"), [state, meta, _as_uuid(task_id)])
        return int(cursor.rowcount)


def forget(task_id: str | uuid.UUID, using: str | None = None) -> int:
    """Delete the stored result of a finished task; its id then reads PENDING."""
    with connections[using or conf.database].cursor() as cursor:
        cursor.execute(sql.query("forget"), [_as_uuid(task_id)])
        return int(cursor.rowcount)


def _as_uuid(value: str | uuid.UUID) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


# --- canvas: chains, groups, chords ---------------------------------------------------
#
# A canvas is enqueued as rows in one transaction: the steps that can run at once are
# WAITING, the others DEFERRED with ``waiting_on`` naming the task (a chain's previous
# step) or the chord (its group id) they wait for. The database itself moves them on:
# the trigger of migration 0004 starts (or fails) deferred rows when what they wait on
# ends, and counts chord members down in ``djq_chord``, whatever path ended the task.


# A large canvas goes by COPY instead: PostgreSQL's bulk path, several times cheaper per
# row than the statement above (whose INSERT takes each row apart from the JSON
# parameter), then the chord counters and the NOTIFY, in one transaction. Its three more
# round trips pay off from about this many rows (measured: 2.6 ms against 3.4 for 32 rows,
# 6 against 14 for 256).
_COPY_MIN_ROWS = 32


def enqueue_canvas(messages: Sequence[Message], chords: Sequence[ChordRow] = (),
                   using: str | None = None) -> int:
    """Insert a canvas's rows (WAITING and DEFERRED) and its chord counters at once, on
    Django's connection: inside the caller's transaction if there is one, else in one of
    their own, so that they, and the NOTIFY, are stored all together or not at all.

    Ids are fresh: an id already stored raises :class:`~djq.exceptions.DuplicateTaskError`
    and nothing is stored. Returns how many task rows were written.
    """
    from django.db import IntegrityError

    from .exceptions import DuplicateTaskError

    if not messages:
        return 0
    chord_json = _json_rows(chords)
    wrapper = connections[using or conf.database]
    wrapper.ensure_connection()
    wrapper.validate_no_broken_transaction()
    try:
        with wrapper.wrap_database_errors, psycopg.Cursor(wrapper.connection) as cursor:
            if len(messages) < _COPY_MIN_ROWS:
                cursor.execute(sql.query("enqueue_canvas"), [_json_rows(messages), chord_json])
                row = cursor.fetchone()
                return int(row[0]) if row else 0
            # Django's autocommit: a transaction of our own. In the caller's, nothing
            # more (psycopg would commit it, or add a savepoint Django does not know).
            own = wrapper.get_autocommit()
            with wrapper.connection.transaction() if own else contextlib.nullcontext():
                with cursor.copy(sql.query("copy_tasks")) as copy:
                    for m in messages:
                        copy.write_row(m.to_copy(states.PENDING))
                queues = sorted({m.queue for m in messages if m.status == WAITING})
                cursor.execute(sql.query("after_copy"), [chord_json, queues])
            return len(messages)
    except IntegrityError as exc:
        raise DuplicateTaskError(
            f"A task or chord id of this canvas is already stored; nothing was sent ({exc})"
        ) from exc


def enqueue_fresh(messages: Sequence[Message], using: str | None = None) -> int:
    """Insert rows with fresh ids, many at once (``Task.delay_many``): by ``COPY`` from
    32 rows on, in the caller's transaction if there is one, and wake their queues' workers.
    An id already stored raises :class:`~djq.exceptions.DuplicateTaskError` and nothing
    is stored."""
    return enqueue_canvas(messages, (), using=using)


def fetch_many(task_ids: Iterable[str | uuid.UUID],
               using: str | None = None) -> dict[str, dict[str, Any]]:
    """The stored rows of ``task_ids`` by id (as text), in one query; unknown ids are
    missing from the answer."""
    ids = [_as_uuid(i) for i in task_ids]
    if not ids:
        return {}
    with connections[using or conf.database].cursor() as cursor:
        cursor.execute(sql.query("fetch_many"), [ids])
        rows = [dict(zip(FETCH_FIELDS, row)) for row in cursor.fetchall()]
    return {str(r["id"]): r for r in rows}


def group_members(group_id: str | uuid.UUID,
                  using: str | None = None) -> list[uuid.UUID] | None:
    """The member ids of a chord header or a saved group, or None if ``group_id`` names
    neither."""
    gid = _as_uuid(group_id)
    with connections[using or conf.database].cursor() as cursor:
        cursor.execute(sql.query("group_members"), [gid, gid])
        row = cursor.fetchone()
    return list(row[0]) if row else None


def save_groups(groups: Sequence[tuple[str, Sequence[str]]], using: str | None = None) -> None:
    """Store groups as (id, member ids in order); a member id may name another group
    stored in the same call (nested groups)."""
    if not groups:
        return
    payload = json.dumps([[str(gid), [str(m) for m in members]] for gid, members in groups])
    with connections[using or conf.database].cursor() as cursor:
        cursor.execute(sql.query("save_groups"), [payload])


def restore_groups(group_id: str | uuid.UUID,
                   using: str | None = None) -> dict[str, list[str]]:
    """A saved group and the saved groups nested in it: id -> member ids in order."""
    with connections[using or conf.database].cursor() as cursor:
        cursor.execute(sql.query("restore_group"), [_as_uuid(group_id)])
        return {str(r[0]): [str(m) for m in r[1]] for r in cursor.fetchall()}


def delete_group(group_id: str | uuid.UUID, using: str | None = None) -> int:
    with connections[using or conf.database].cursor() as cursor:
        cursor.execute(sql.query("delete_group"), [_as_uuid(group_id)])
        return int(cursor.rowcount)


