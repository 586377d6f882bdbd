"""All of djq's queue SQL: enqueue, claim (SKIP LOCKED), start, finish, release, recover, prune.

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

from . import states
from .conf import conf
from .exceptions import LeaseLost

# Row status (``djq_task.status``): what the queue does with a row, whatever its state.
WAITING, CLAIMED, STARTED, DONE = 0, 1, 2, 3
# A canvas row (chain step, chord callback) that exists but is not claimable yet: the
# database trigger of migration 0002 starts or fails it when what it waits on ends.
DEFERRED = 4

#: NOTIFY channel a worker listens on; the payload is the queue name.
ENQUEUE_CHANNEL = "djq_enqueue"
#: NOTIFY channel ``AsyncResult.get()`` listens on; the payload is comma-separated task ids.
DONE_CHANNEL = "djq_done"
#: NOTIFY channel for control messages to workers (revoke with terminate).
CONTROL_CHANNEL = "djq_control"

# A NOTIFY payload must stay under 8000 bytes: 36-char ids plus commas.
_NOTIFY_IDS = 200


@dataclasses.dataclass(frozen=True, slots=True)
class Message:
    """A task row as it is enqueued."""

    id: uuid.UUID
    name: str
    queue: str
    priority: int
    args: str
    kwargs: str
    options: str
    run_at: datetime.datetime
    date_created: datetime.datetime
    eta: datetime.datetime | None = None
    expires: datetime.datetime | None = None
    retries: int = 0
    parent_id: uuid.UUID | None = None
    root_id: uuid.UUID | None = None
    group_id: uuid.UUID | None = None
    status: int = WAITING  # DEFERRED rows go through enqueue_canvas()
    waiting_on: uuid.UUID | None = None  # a task id or a chord's group id
    canvas: str | None = None  # a canvas row's flags (JSON), read by the canvas trigger


@dataclasses.dataclass(frozen=True, slots=True)
class Claimed:
    """A row a worker has claimed: everything needed to run it."""

    id: uuid.UUID
    name: str
    queue: str
    priority: int
    args: str
    kwargs: str
    options: str
    retries: int
    eta: datetime.datetime | None
    expires: datetime.datetime | None
    parent_id: uuid.UUID | None
    root_id: uuid.UUID | None
    group_id: uuid.UUID | None
    run_at: datetime.datetime
    state: str
    started: bool = False  # claimed and marked started in one statement


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """How a claimed task ended, to be written by :func:`finish`.

    ``status`` is DONE for a final state, WAITING for a retry (``run_at`` then says
    when), and ``delete`` drops the row (a result nobody asked to keep).
    """

    id: uuid.UUID
    state: str
    result: str | None
    traceback: str | None
    date_done: datetime.datetime
    status: int = DONE
    retries: int | None = None
    run_at: datetime.datetime | None = None
    delete: bool = False
    args: str | None = None
    kwargs: str | None = None


# Many rows travel as one JSON parameter (an array of arrays, in _rows_json's order):
# cheaper to build than typed arrays, and PostgreSQL takes it apart in one pass.
_ROWS_FROM_JSON = """
SELECT (e->>0)::uuid AS id, e->>1 AS name, e->>2 AS queue, (e->>3)::int AS priority,
    e->>4 AS args, e->>5 AS kwargs, e->>6 AS options, (e->>7)::int AS retries,
    (e->>8)::timestamptz AS eta, (e->>9)::timestamptz AS run_at,
    (e->>10)::timestamptz AS expires, (e->>11)::uuid AS parent_id, (e->>12)::uuid AS root_id,
    (e->>13)::uuid AS group_id, (e->>14)::timestamptz AS date_created,
    (e->>15)::smallint AS status, (e->>16)::uuid AS waiting_on, (e->>17)::jsonb AS canvas
FROM json_array_elements(%s::json) AS e
"""


def _rows_json(messages: Sequence[Message]) -> str:
    def iso(value: datetime.datetime | None) -> str | None:
        return None if value is None else value.isoformat()

    def text(value: uuid.UUID | None) -> str | None:
        return None if value is None else str(value)

    return json.dumps([
        [str(m.id), m.name, m.queue, m.priority, m.args, m.kwargs, m.options, m.retries,
         iso(m.eta), m.run_at.isoformat(), iso(m.expires), text(m.parent_id),
         text(m.root_id), text(m.group_id), m.date_created.isoformat(), m.status,
         text(m.waiting_on), m.canvas]
        for m in messages
    ])


# An id that names a finished task re-queues it; one still waiting or running is left
# alone (and the statement returns no row for it).
_ON_CONFLICT = f"""
ON CONFLICT (id) DO UPDATE SET
        name = excluded.name, state = excluded.state, status = excluded.status,
        queue = excluded.queue, priority = excluded.priority, args = excluded.args,
        kwargs = excluded.kwargs, options = excluded.options, retries = excluded.retries,
        eta = excluded.eta, run_at = excluded.run_at, expires = excluded.expires,
        parent_id = excluded.parent_id, root_id = excluded.root_id,
        group_id = excluded.group_id, date_created = excluded.date_created,
        result = NULL, traceback = NULL, worker = NULL, claimed_by = NULL,
        date_claimed = NULL, date_started = NULL, date_done = NULL
    WHERE t.status = {DONE}
"""

_ENQUEUE = f"""
WITH ins AS (
    INSERT INTO djq_task AS t (id, name, state, status, queue, priority, args, kwargs, options,
        retries, eta, run_at, expires, parent_id, root_id, group_id, date_created)
    SELECT v.id, v.name, '{states.PENDING}', {WAITING}, v.queue, v.priority, v.args, v.kwargs,
        v.options, v.retries, v.eta, v.run_at, v.expires, v.parent_id, v.root_id, v.group_id,
        v.date_created
    FROM ({_ROWS_FROM_JSON}) AS v
    {_ON_CONFLICT}
    RETURNING t.queue
), notified AS (
    SELECT pg_notify('{ENQUEUE_CHANNEL}', q.queue) FROM (SELECT DISTINCT queue FROM ins) q
)
SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM notified)
"""


_ENQUEUE_ONE = f"""
WITH ins AS (
    INSERT INTO djq_task AS t (id, name, state, status, queue, priority, args, kwargs, options,
        retries, eta, run_at, expires, parent_id, root_id, group_id, date_created)
    VALUES (%s, %s, '{states.PENDING}', {WAITING}, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
            %s, %s, %s)
    {_ON_CONFLICT}
    RETURNING t.queue
)
SELECT pg_notify('{ENQUEUE_CHANNEL}', queue) FROM ins
"""


def _values(m: Message) -> tuple[Any, ...]:
    return (m.id, m.name, m.queue, m.priority, m.args, m.kwargs, m.options, m.retries,
            m.eta, m.run_at, m.expires, m.parent_id, m.root_id, m.group_id, m.date_created)


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
            cursor.execute(_ENQUEUE_ONE, _values(messages[0]))
            return 1 if cursor.fetchone() is not None else 0
        cursor.execute(_ENQUEUE, [_rows_json(messages)])
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
    claimed = [Claimed(*row) for row in rows]
    claimed.sort(key=lambda c: (-c.priority, c.run_at))
    return claimed


# The worker's round trip as one server-side function: a single statement (so a single
# commit, whose WAL flush is the real cost of a queue) with plans cached by PL/pgSQL.
# Versioned: a change to it is a new function and a new migration. Version 1 stays in the
# database (migration 0003, which keeps its text) for workers of older releases during a
# rolling upgrade.
CYCLE_FUNCTION_V2 = f"""
-- djq_cycle_v2: one worker round trip in one statement (and so one commit).
--
-- First the lease. The worker's row is locked (FOR KEY SHARE), so
-- recovery, which locks a dead worker's row FOR UPDATE, never runs half-way through a
-- cycle. A worker declared dead (stopped_at set, or its row gone) gets a single row of
-- kind 'L' back and nothing is written: its rows were recovered when it was declared
-- dead, and claiming more under that id would run tasks others think lost. A worker
-- whose lease ran out but that nobody declared dead yet (e.g. back from a database
-- outage) renews it here, before anyone else recovers its rows: it is evidently alive.
-- Less than half a lease left also renews, so a claim never happens at the lease's edge.
--
-- Then, as in version 1: write the outcomes of finished tasks, mark buffered rows
-- started, claim (and start) more. Rows come back as (kind, ...): 's' = a buffered row
-- now started (only id set), 'c' = a newly claimed row (started says whether it was
-- started too). Queues are read in the order given (the caller rotates them); within a
-- queue, highest priority, then oldest, first.
CREATE OR REPLACE FUNCTION djq_cycle_v2(
    p_worker bigint, p_hostname text, p_outcomes json, p_start uuid[], p_queues text[],
    p_limit int, p_start_n int, p_track_default boolean, p_track_exceptions text[],
    p_lease double precision
) RETURNS TABLE (
    kind text, id uuid, name varchar, queue varchar, priority int, args text, kwargs text,
    options text, retries int, eta timestamptz, expires timestamptz, parent_id uuid,
    root_id uuid, group_id uuid, run_at timestamptz, state varchar, started boolean
) LANGUAGE plpgsql AS $fn$
DECLARE
    q text;
    v_rows int;
    v_to_start int := p_start_n;
    v_notified bigint;
    v_beat timestamptz;
BEGIN
    SELECT w.last_heartbeat INTO v_beat FROM djq_worker w
    WHERE w.id = p_worker AND w.stopped_at IS NULL FOR KEY SHARE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'L'::text, NULL::uuid, NULL::varchar, NULL::varchar, NULL::int,
            NULL::text, NULL::text, NULL::text, NULL::int, NULL::timestamptz,
            NULL::timestamptz, NULL::uuid, NULL::uuid, NULL::uuid, NULL::timestamptz,
            NULL::varchar, false;
        RETURN;
    END IF;
    IF v_beat < now() - make_interval(secs => p_lease / 2) THEN
        UPDATE djq_worker w SET last_heartbeat = now() WHERE w.id = p_worker;
    END IF;

    IF p_outcomes IS NOT NULL THEN
        WITH v AS (
            SELECT (e->>0)::uuid AS id, e->>1 AS state, e->>2 AS result, e->>3 AS traceback,
                (e->>4)::timestamptz AS date_done, (e->>5)::smallint AS status,
                (e->>6)::int AS retries, (e->>7)::timestamptz AS run_at, e->>8 AS args,
                e->>9 AS kwargs, (e->>10)::boolean AS drop
            FROM json_array_elements(p_outcomes) AS e
        ), upd AS (
            UPDATE djq_task t SET
                state = v.state, result = v.result, traceback = v.traceback, status = v.status,
                retries = coalesce(v.retries, t.retries), run_at = coalesce(v.run_at, t.run_at),
                args = coalesce(v.args, t.args), kwargs = coalesce(v.kwargs, t.kwargs),
                date_done = CASE WHEN v.status = {DONE} THEN v.date_done END,
                claimed_by = CASE WHEN v.status = {DONE} THEN t.claimed_by END,
                date_claimed = CASE WHEN v.status = {DONE} THEN t.date_claimed END,
                date_started = CASE WHEN v.status = {DONE} THEN t.date_started END
            FROM v
            WHERE t.id = v.id AND NOT v.drop AND t.claimed_by = p_worker
                AND t.status IN ({CLAIMED}, {STARTED})
            RETURNING t.id, t.status, t.queue
        ), del AS (
            DELETE FROM djq_task t USING v
            WHERE t.id = v.id AND v.drop AND t.claimed_by = p_worker
                AND t.status IN ({CLAIMED}, {STARTED})
            RETURNING t.id
        ), done_notify AS (
            SELECT pg_notify('{DONE_CHANNEL}', string_agg(d.id::text, ','))
            FROM (SELECT u.id FROM upd u WHERE u.status = {DONE}
                  UNION ALL SELECT x.id FROM del x) d
            HAVING count(*) > 0
        ), wake_notify AS (
            SELECT pg_notify('{ENQUEUE_CHANNEL}', w.queue)
            FROM (SELECT DISTINCT u.queue FROM upd u WHERE u.status = {WAITING}) w
        )
        SELECT (SELECT count(*) FROM done_notify) + (SELECT count(*) FROM wake_notify)
        INTO v_notified;
    END IF;

    IF p_start IS NOT NULL AND cardinality(p_start) > 0 THEN
        RETURN QUERY
        UPDATE djq_task t SET status = {STARTED}, date_started = now(),
            state = CASE WHEN (p_track_default <> (t.name = ANY(p_track_exceptions)))
                         THEN '{states.STARTED}' ELSE t.state END
        WHERE t.id = ANY(p_start) AND t.claimed_by = p_worker AND t.status = {CLAIMED}
        RETURNING 's'::text, t.id, NULL::varchar, NULL::varchar, NULL::int, NULL::text,
            NULL::text, NULL::text, NULL::int, NULL::timestamptz, NULL::timestamptz,
            NULL::uuid, NULL::uuid, NULL::uuid, NULL::timestamptz, NULL::varchar, true;
    END IF;

    IF p_limit > 0 THEN
        FOREACH q IN ARRAY p_queues LOOP
            EXIT WHEN p_limit <= 0;
            RETURN QUERY
            WITH c AS (
                SELECT x.id, x.priority, x.run_at FROM djq_task x
                WHERE x.status = {WAITING} AND x.queue = q AND x.run_at <= now()
                ORDER BY x.priority DESC, x.run_at
                LIMIT p_limit FOR UPDATE SKIP LOCKED
            ), r AS (
                SELECT c.id, row_number() OVER (ORDER BY c.priority DESC, c.run_at) AS rn FROM c
            )
            UPDATE djq_task t SET
                status = CASE WHEN r.rn <= v_to_start THEN {STARTED} ELSE {CLAIMED} END,
                date_started = CASE WHEN r.rn <= v_to_start THEN now() END,
                state = CASE WHEN r.rn <= v_to_start
                                  AND (p_track_default <> (t.name = ANY(p_track_exceptions)))
                             THEN '{states.STARTED}' ELSE t.state END,
                claimed_by = p_worker, worker = p_hostname, date_claimed = now()
            FROM r WHERE t.id = r.id
            RETURNING 'c'::text, t.id, t.name, t.queue, t.priority, t.args, t.kwargs,
                t.options, t.retries, t.eta, t.expires, t.parent_id, t.root_id, t.group_id,
                t.run_at, t.state, t.status = {STARTED};
            GET DIAGNOSTICS v_rows = ROW_COUNT;
            p_limit := p_limit - v_rows;
            v_to_start := greatest(0, v_to_start - v_rows);
        END LOOP;
    END IF;
END
$fn$;
"""

_CYCLE = """
SELECT * FROM djq_cycle_v2(%s, %s, %s::json, %s::uuid[], %s::text[], %s, %s, %s, %s::text[],
                           %s)
"""


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
        if len(outcomes) > _NOTIFY_IDS:  # keep each NOTIFY payload under its size limit
            finish(conn, worker_id, outcomes[:-_NOTIFY_IDS])
            outcomes = outcomes[-_NOTIFY_IDS:]
        done = _finish_params(worker_id, list(outcomes))[0]
    params = [
        worker_id, hostname, done, list(start_ids), list(queues), claim_limit, claim_start,
        tracking.default, list(tracking.exceptions), float(lease),
    ]
    if hold:
        with conn.pipeline():
            conn.execute("BEGIN")
            if notify:
                conn.execute(_NOTIFY, _notify_params(notify))
            cursor = conn.execute(_CYCLE, params)
        rows = cursor.fetchall()
    elif notify:
        # Events (``notify``: (channel, payload) pairs) ride in the same transaction and
        # round trip: a NOTIFY of its own would cost a commit of its own.
        with conn.pipeline(), conn.transaction():
            conn.execute(_NOTIFY, _notify_params(notify))
            cursor = conn.execute(_CYCLE, params)
        rows = cursor.fetchall()
    else:
        rows = conn.execute(_CYCLE, params).fetchall()
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


_NOTIFY = "SELECT count(pg_notify(n->>0, n->>1)) FROM json_array_elements(%s::json) AS n"


def _notify_params(notify: Sequence[tuple[str, str]]) -> list[Any]:
    # One JSON parameter: text[] arrays of JSON payloads cost a regex pass per quote.
    return [json.dumps(notify)]


def notify(conn: Any, notifications: Sequence[tuple[str, str]]) -> None:
    """Send (channel, payload) NOTIFYs in one statement on a psycopg connection."""
    if notifications:
        conn.execute(_NOTIFY, _notify_params(notifications))


_NEXT_RUN_AT = f"""
SELECT min(run_at) FROM djq_task WHERE status = {WAITING} AND queue = ANY(%s)
"""


def next_run_at(conn: Any, queues: Sequence[str]) -> datetime.datetime | None:
    """When the earliest waiting row of ``queues`` becomes claimable."""
    row = conn.execute(_NEXT_RUN_AT, [list(queues)]).fetchone()
    return row[0] if row else None


_FINISH = f"""
WITH v AS (
    SELECT (e->>0)::uuid AS id, e->>1 AS state, e->>2 AS result, e->>3 AS traceback,
        (e->>4)::timestamptz AS date_done, (e->>5)::smallint AS status,
        (e->>6)::int AS retries, (e->>7)::timestamptz AS run_at, e->>8 AS args,
        e->>9 AS kwargs, (e->>10)::boolean AS drop
    FROM json_array_elements(%s::json) AS e
), upd AS (
    UPDATE djq_task t SET
        state = v.state, result = v.result, traceback = v.traceback, status = v.status,
        retries = coalesce(v.retries, t.retries),
        run_at = coalesce(v.run_at, t.run_at),
        args = coalesce(v.args, t.args), kwargs = coalesce(v.kwargs, t.kwargs),
        date_done = CASE WHEN v.status = {DONE} THEN v.date_done END,
        claimed_by = CASE WHEN v.status = {DONE} THEN t.claimed_by END,
        date_claimed = CASE WHEN v.status = {DONE} THEN t.date_claimed END,
        date_started = CASE WHEN v.status = {DONE} THEN t.date_started END
    FROM v
    WHERE t.id = v.id AND NOT v.drop AND t.claimed_by = %s
        AND t.status IN ({CLAIMED}, {STARTED})
    RETURNING t.id, t.status, t.queue
), del AS (
    DELETE FROM djq_task t USING v
    WHERE t.id = v.id AND v.drop AND t.claimed_by = %s AND t.status IN ({CLAIMED}, {STARTED})
    RETURNING t.id
), done_notify AS (
    SELECT pg_notify('{DONE_CHANNEL}', string_agg(id::text, ','))
    FROM (SELECT id FROM upd WHERE status = {DONE} UNION ALL SELECT id FROM del) d
    HAVING count(*) > 0
), wake_notify AS (
    SELECT pg_notify('{ENQUEUE_CHANNEL}', q.queue)
    FROM (SELECT DISTINCT queue FROM upd WHERE status = {WAITING}) q
)
SELECT ARRAY(SELECT id FROM upd UNION ALL SELECT id FROM del),
       (SELECT count(*) FROM done_notify), (SELECT count(*) FROM wake_notify)
"""


def finish(conn: Any, worker_id: int, outcomes: Iterable[Outcome]) -> list[Outcome]:
    """Write the outcomes of rows this worker holds, in batches; wake waiting readers.

    Returns the outcomes that were not written: their rows are no longer held by this
    worker (recovered by others after it was declared dead), and are left untouched.
    """
    refused: list[Outcome] = []
    for batch in _batches(outcomes):
        written = set(conn.execute(_FINISH, _finish_params(worker_id, batch)).fetchone()[0])
        refused.extend(o for o in batch if o.id not in written)
    return refused


def _batches(outcomes: Iterable[Outcome]) -> Iterable[list[Outcome]]:
    # Each batch's finished ids go out in one NOTIFY, whose payload has a size limit.
    batch: list[Outcome] = []
    for outcome in outcomes:
        batch.append(outcome)
        if len(batch) >= _NOTIFY_IDS:
            yield batch
            batch = []
    if batch:
        yield batch


def _finish_params(worker_id: int, batch: list[Outcome]) -> list[Any]:
    # The whole batch travels as one JSON parameter: far cheaper to build than ten
    # typed arrays, and PostgreSQL takes it apart in one pass.
    rows = json.dumps([
        [str(o.id), o.state, o.result, o.traceback, o.date_done.isoformat(), o.status,
         o.retries, o.run_at.isoformat() if o.run_at else None, o.args, o.kwargs, o.delete]
        for o in batch
    ])
    return [rows, worker_id, worker_id]


_RELEASE = f"""
WITH rel AS (
    UPDATE djq_task SET status = {WAITING}, claimed_by = NULL, worker = NULL,
        date_claimed = NULL
    WHERE id = ANY(%s::uuid[]) AND claimed_by = %s AND status = {CLAIMED}
    RETURNING queue
), woke AS (
    SELECT pg_notify('{ENQUEUE_CHANNEL}', q.queue) FROM (SELECT DISTINCT queue FROM rel) q
)
SELECT (SELECT count(*) FROM rel), (SELECT count(*) FROM woke)
"""


def release(conn: Any, worker_id: int, ids: Sequence[uuid.UUID]) -> int:
    """Hand claimed-but-unstarted rows back to the queue (warm shutdown)."""
    if not ids:
        return 0
    row = conn.execute(_RELEASE, [list(ids), worker_id]).fetchone()
    return int(row[0])


_RELEASE_UNSTARTED = f"""
WITH rel AS (
    UPDATE djq_task SET status = {WAITING}, claimed_by = NULL, worker = NULL,
        date_claimed = NULL, date_started = NULL
    WHERE claimed_by = %s AND status IN ({CLAIMED}, {STARTED}) AND NOT (id = ANY(%s::uuid[]))
    RETURNING queue
), woke AS (
    SELECT pg_notify('{ENQUEUE_CHANNEL}', q.queue) FROM (SELECT DISTINCT queue FROM rel) q
)
SELECT (SELECT count(*) FROM rel), (SELECT count(*) FROM woke)
"""


def release_unstarted(conn: Any, worker_id: int, running: Sequence[uuid.UUID]) -> int:
    """After a lost connection: every row this worker holds but is not running goes
    back to the queue (a start whose answer was lost never reached the pool)."""
    row = conn.execute(_RELEASE_UNSTARTED, [worker_id, list(running)]).fetchone()
    return int(row[0])


# --- workers and their leases -------------------------------------------------------

_REGISTER = """
INSERT INTO djq_worker (hostname, pid, pool, concurrency, queues, started_at, last_heartbeat,
    processed, failed, active, loadavg, sw_ver, registered)
VALUES (%s, %s, %s, %s, %s, now(), now(), 0, 0, 0, %s, %s, %s)
RETURNING id
"""


def register_worker(conn: Any, hostname: str, pid: int, pool: str, concurrency: int,
                    queues: Sequence[str], loadavg: str, sw_ver: str,
                    registered: Sequence[str] = ()) -> int:
    """Take a lease for a starting worker, with the task names it can run."""
    row = conn.execute(_REGISTER, [hostname, pid, pool, concurrency, ",".join(queues),
                                   loadavg, sw_ver, list(registered)]).fetchone()
    return int(row[0])


_HEARTBEAT = """
UPDATE djq_worker SET last_heartbeat = now(), processed = %s, failed = %s, active = %s,
    loadavg = %s, counters = COALESCE(%s::jsonb, counters)
WHERE id = %s AND stopped_at IS NULL
RETURNING id
"""


def heartbeat(conn: Any, worker_id: int, processed: int, failed: int, active: int,
              loadavg: str, counters: dict[str, Any] | None = None) -> bool:
    """Renew this worker's lease (and store its counters); False if others already
    declared it dead."""
    row = conn.execute(_HEARTBEAT, [processed, failed, active, loadavg,
                                    None if counters is None else Jsonb(counters),
                                    worker_id]).fetchone()
    return row is not None


_STOP_WORKER = """
UPDATE djq_worker SET stopped_at = now(), counters = COALESCE(%s::jsonb, counters)
WHERE id = %s
"""


def stop_worker(conn: Any, worker_id: int, counters: dict[str, Any] | None = None) -> None:
    conn.execute(_STOP_WORKER, [None if counters is None else Jsonb(counters), worker_id])


# --- metrics ---------------------------------------------------------------------------
# Each reads one partial index (waiting rows, in-flight rows, live workers), so a scrape
# costs what is unfinished, never the history the table keeps.

METRIC_QUEUES_WAITING = f"""
SELECT queue, count(*) FILTER (WHERE run_at <= now()),
    count(*) FILTER (WHERE run_at > now()),
    COALESCE(EXTRACT(EPOCH FROM now() - min(run_at) FILTER (WHERE run_at <= now())), 0)
FROM djq_task WHERE status = {WAITING} GROUP BY queue
"""

METRIC_QUEUES_INFLIGHT = f"""
SELECT queue, count(*) FILTER (WHERE status = {CLAIMED}),
    count(*) FILTER (WHERE status = {STARTED})
FROM djq_task WHERE status IN ({CLAIMED}, {STARTED}) GROUP BY queue
"""

# Workers not yet pruned (stopped ones keep their final counters until then), and
# whether each is alive (not stopped, lease current).
METRIC_WORKERS = """
SELECT id, hostname, queues, stopped_at IS NULL
    AND last_heartbeat >= now() - make_interval(secs => %s), counters
FROM djq_worker
"""


@dataclasses.dataclass(frozen=True, slots=True)
class QueueGauges:
    """One queue's figures for the metrics endpoint."""

    queue: str
    waiting: int = 0  # runnable now
    scheduled: int = 0  # waiting for its eta, countdown or retry delay
    reserved: int = 0  # claimed by a worker, not started
    running: int = 0  # started
    oldest_waiting_age: float = 0.0  # seconds since the oldest runnable row became so


def queue_gauges(conn: Any) -> list[QueueGauges]:
    """Per queue: waiting, scheduled, reserved, running, oldest waiting age."""
    figures: dict[str, dict[str, Any]] = {}
    for queue, waiting, scheduled, age in conn.execute(METRIC_QUEUES_WAITING).fetchall():
        figures.setdefault(queue, {}).update(waiting=int(waiting), scheduled=int(scheduled),
                                             oldest_waiting_age=float(age))
    for queue, reserved, running in conn.execute(METRIC_QUEUES_INFLIGHT).fetchall():
        figures.setdefault(queue, {}).update(reserved=int(reserved), running=int(running))
    return [QueueGauges(queue, **figures[queue]) for queue in sorted(figures)]


def metric_workers(conn: Any, lease: float) -> list[tuple[int, str, str, bool, Any]]:
    """(id, hostname, queues, alive, counters) of every worker row."""
    return [(int(r[0]), str(r[1]), str(r[2]), bool(r[3]), _json(r[4]))
            for r in conn.execute(METRIC_WORKERS, [lease]).fetchall()]


# Recovery runs in one transaction: declare dead the workers whose lease ran out (their
# rows locked FOR UPDATE, so no cycle of theirs is half-way through), then take every
# in-flight row held by no live worker, whether its worker was declared dead now, before,
# or has no row at all. A worker's rows are therefore never "held" by a dead worker: once
# it is declared dead, its next cycle finds nothing of its own to write.
_EXPIRE_WORKERS = """
UPDATE djq_worker SET stopped_at = now()
WHERE id IN (
    SELECT id FROM djq_worker
    WHERE stopped_at IS NULL AND last_heartbeat < now() - make_interval(secs => %s)
    FOR UPDATE SKIP LOCKED
) AND stopped_at IS NULL
RETURNING id, hostname
"""

_ORPHANS = f"""
SELECT t.id, t.name, t.status, t.options
FROM djq_task t LEFT JOIN djq_worker w ON w.id = t.claimed_by
WHERE t.status IN ({CLAIMED}, {STARTED}) AND (w.id IS NULL OR w.stopped_at IS NOT NULL)
FOR UPDATE OF t SKIP LOCKED
"""


@dataclasses.dataclass(frozen=True, slots=True)
class Orphan:
    """An in-flight row held by no live worker."""

    id: uuid.UUID
    name: str
    status: int
    options: str


def expire_workers(conn: Any, lease: float) -> list[tuple[int, str]]:
    """Declare dead every worker whose lease ran out; return (id, hostname) of each."""
    return [(int(r[0]), r[1]) for r in conn.execute(_EXPIRE_WORKERS, [lease]).fetchall()]


def orphans(conn: Any) -> list[Orphan]:
    """In-flight rows held by no live worker, locked until the transaction ends."""
    return [Orphan(r[0], r[1], int(r[2]), r[3])
            for r in conn.execute(_ORPHANS).fetchall()]


_NOT_HELD = """NOT EXISTS (
    SELECT 1 FROM djq_worker w WHERE w.id = djq_task.claimed_by AND w.stopped_at IS NULL)"""

_REQUEUE_ORPHANS = f"""
WITH r AS (
    UPDATE djq_task SET status = {WAITING}, claimed_by = NULL, worker = NULL,
        date_claimed = NULL, date_started = NULL
    WHERE id = ANY(%s::uuid[]) AND status IN ({CLAIMED}, {STARTED}) AND {_NOT_HELD}
    RETURNING queue
), woke AS (
    SELECT pg_notify('{ENQUEUE_CHANNEL}', q.queue) FROM (SELECT DISTINCT queue FROM r) q
)
SELECT (SELECT count(*) FROM r), (SELECT count(*) FROM woke)
"""

_FAIL_ORPHANS = f"""
WITH f AS (
    UPDATE djq_task SET status = {DONE}, state = '{states.FAILURE}', result = %s,
        traceback = %s, date_done = now()
    WHERE id = ANY(%s::uuid[]) AND status = {STARTED} AND {_NOT_HELD}
    RETURNING id
), done AS (
    SELECT pg_notify('{DONE_CHANNEL}', string_agg(id::text, ',')) FROM f HAVING count(*) > 0
)
SELECT (SELECT count(*) FROM f), (SELECT count(*) FROM done)
"""


def requeue_orphans(conn: Any, ids: Sequence[uuid.UUID]) -> int:
    """Put rows held by no live worker back in their queue."""
    if not ids:
        return 0
    return int(conn.execute(_REQUEUE_ORPHANS, [list(ids)]).fetchone()[0])


def fail_orphans(conn: Any, ids: Sequence[uuid.UUID], result: str, traceback: str) -> int:
    """End started rows held by no live worker as FAILURE with the given error."""
    if not ids:
        return 0
    return int(conn.execute(_FAIL_ORPHANS, [result, traceback, list(ids)]).fetchone()[0])


# A started row whose process or worker was lost goes back to its queue, counted on the
# row; the delivery that would pass its limit ends it FAILURE instead, so a task that
# kills whatever runs it can never loop. The error's text carries @N@ (deliveries so
# far) and @MAX@ (the limit), filled in here from the row.
_REDELIVER = f"""
WITH v AS (
    SELECT (e->>0)::uuid AS id, (e->>1)::int AS max_deliveries
    FROM json_array_elements(%s::json) AS e
), r AS (
    UPDATE djq_task t SET
        deliveries = t.deliveries + 1,
        status = CASE WHEN t.deliveries + 1 >= v.max_deliveries THEN {DONE} ELSE {WAITING} END,
        state = CASE WHEN t.deliveries + 1 >= v.max_deliveries THEN '{states.FAILURE}'
                     ELSE '{states.PENDING}' END,
        result = CASE WHEN t.deliveries + 1 >= v.max_deliveries THEN
            replace(replace(%s, '@N@', (t.deliveries + 1)::text), '@MAX@',
                    v.max_deliveries::text) END,
        traceback = CASE WHEN t.deliveries + 1 >= v.max_deliveries THEN
            replace(replace(%s, '@N@', (t.deliveries + 1)::text), '@MAX@',
                    v.max_deliveries::text) END,
        date_done = CASE WHEN t.deliveries + 1 >= v.max_deliveries THEN now() END,
        run_at = CASE WHEN t.deliveries + 1 >= v.max_deliveries THEN t.run_at ELSE now() END,
        claimed_by = CASE WHEN t.deliveries + 1 >= v.max_deliveries THEN t.claimed_by END,
        worker = CASE WHEN t.deliveries + 1 >= v.max_deliveries THEN t.worker END,
        date_claimed = CASE WHEN t.deliveries + 1 >= v.max_deliveries THEN t.date_claimed END,
        date_started = CASE WHEN t.deliveries + 1 >= v.max_deliveries THEN t.date_started END
    FROM v
    WHERE t.id = v.id AND t.status = {STARTED} AND (
        (%s::bigint IS NULL AND NOT EXISTS (
            SELECT 1 FROM djq_worker w WHERE w.id = t.claimed_by AND w.stopped_at IS NULL))
        OR t.claimed_by = %s::bigint)
    RETURNING t.id, t.status, t.queue, t.deliveries
), done AS (
    SELECT pg_notify('{DONE_CHANNEL}', string_agg(id::text, ','))
    FROM r WHERE status = {DONE} HAVING count(*) > 0
), woke AS (
    SELECT pg_notify('{ENQUEUE_CHANNEL}', q.queue)
    FROM (SELECT DISTINCT queue FROM r WHERE status = {WAITING}) q
)
SELECT r.id, r.status, r.deliveries, (SELECT count(*) FROM done), (SELECT count(*) FROM woke)
FROM r
"""


def redeliver(conn: Any, rows: Sequence[tuple[uuid.UUID, int]], result: str, traceback: str,
              worker_id: int | None = None) -> list[tuple[uuid.UUID, bool, int]]:
    """Put started rows whose process or worker was lost back in their queue, counting
    the delivery; a row reaching its limit (``rows``: (id, max deliveries)) ends FAILURE
    with ``result``/``traceback`` (``@N@`` and ``@MAX@`` filled in). Rows held by
    ``worker_id``, or, without it, by no live worker. Returns (id, ended, deliveries)."""
    if not rows:
        return []
    payload = json.dumps([[str(i), int(n)] for i, n in rows])
    found = conn.execute(_REDELIVER, [payload, result, traceback, worker_id, worker_id])
    return [(r[0], int(r[1]) == DONE, int(r[2])) for r in found.fetchall()]


# Failures may be kept longer than the rest (``result_expires_failed``); a NULL age
# keeps those rows for good. The outer bound is the shorter age, for the done index.
_PRUNE = f"""
DELETE FROM djq_task WHERE id IN (
    SELECT id FROM djq_task
    WHERE status = {DONE} AND date_done < now() - make_interval(secs => %(shortest)s)
        AND CASE WHEN state = '{states.FAILURE}'
            THEN date_done < now() - make_interval(secs => %(failed)s::float8)
            ELSE date_done < now() - make_interval(secs => %(others)s::float8) END
    LIMIT %(batch)s FOR UPDATE SKIP LOCKED
)
"""

_PRUNE_WORKERS = """
DELETE FROM djq_worker w WHERE stopped_at < now() - make_interval(secs => %s)
    AND NOT EXISTS (SELECT 1 FROM djq_task t WHERE t.claimed_by = w.id AND t.status IN (1, 2))
RETURNING counters
"""

_RETIRED_COUNTERS = "SELECT counters FROM djq_retired_counters WHERE id = 1"

_RETIRE_COUNTERS = """
INSERT INTO djq_retired_counters (id, counters) VALUES (1, %s)
ON CONFLICT (id) DO UPDATE SET counters = EXCLUDED.counters
"""


def prune_workers(conn: Any, older_than: float) -> int:
    """Delete rows of workers stopped more than ``older_than`` seconds ago, folding their
    counters into ``djq_retired_counters`` in the same transaction."""
    from .worker.tally import merge

    with conn.transaction():
        gone = [_json(r[0]) for r in conn.execute(_PRUNE_WORKERS, [older_than]).fetchall()]
        if any(gone):
            # FOR UPDATE (the row exists from the migration on): two workers pruning at
            # once add their rows one after the other.
            row = conn.execute(_RETIRED_COUNTERS + " FOR UPDATE").fetchone()
            merged = merge(_json(row[0]) if row else None, *gone)
            conn.execute(_RETIRE_COUNTERS, [Jsonb(merged)])
    return len(gone)


def retired_counters(conn: Any) -> dict[str, Any]:
    row = conn.execute(_RETIRED_COUNTERS).fetchone()
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
    cursor = conn.execute(_PRUNE, {"shortest": min(ages), "others": older_than,
                                   "failed": failed_older_than, "batch": batch})
    deleted = int(cursor.rowcount)
    prune_workers(conn, max(older_than or 0.0, 3600.0))
    if deleted < batch and len(ages) == 2:  # once per pass: finished chords, saved groups
        longest = max(ages)
        conn.execute(_PRUNE_CANVAS, [longest, longest])
    return deleted


# --- control ------------------------------------------------------------------------

REVOKE_WAITING = f"""
WITH r AS (
    UPDATE djq_task SET status = {DONE}, state = '{states.REVOKED}', result = %s,
        date_done = now()
    WHERE id = %s AND status IN ({WAITING}, {CLAIMED}, {DEFERRED})
    RETURNING id, name
), n AS (
    SELECT pg_notify('{DONE_CHANNEL}', id::text) FROM r
)
SELECT r.name, (SELECT count(*) FROM n) FROM r
"""

# Kept on the row (so a worker that missed the NOTIFY still finds it) and announced.
# A member of a chord still waiting for others was counted when it ended: un-count it, so
# that it counts once more when it ends again (and the callback waits for the others).
RETRY = f"""
WITH r AS (
    UPDATE djq_task SET status = {WAITING}, state = '{states.PENDING}', result = NULL,
        traceback = NULL, retries = 0, run_at = now(), worker = NULL, claimed_by = NULL,
        date_claimed = NULL, date_started = NULL, date_done = NULL, terminate = NULL,
        deliveries = 0
    WHERE id = %s AND status = {DONE}
    RETURNING id, queue, group_id
), uncounted AS (
    UPDATE djq_chord c SET remaining = c.remaining + 1
    FROM r WHERE c.group_id = r.group_id AND c.remaining > 0 AND r.id = ANY(c.members)
)
SELECT pg_notify('{ENQUEUE_CHANNEL}', queue) FROM r
"""

# Purging a waiting row also drops what could only ever run after it: the deferred canvas
# steps waiting on it (a chain's next steps, transitively), and a chord that loses a
# member, with its counter and callback. As with Celery, whose chain travels inside its
# first message, they would never run; left behind they would wait forever. Counts the
# waiting rows (the messages) purged.
PURGE = f"""
WITH RECURSIVE purged AS (
    DELETE FROM djq_task WHERE status = {WAITING} AND (%s::text[] IS NULL OR queue = ANY(%s))
    RETURNING id, group_id
), after_(id, group_id) AS (
    SELECT t.id, t.group_id FROM purged p JOIN djq_task t
        ON t.status = {DEFERRED} AND (t.waiting_on = p.id OR t.waiting_on = p.group_id)
    UNION
    SELECT t.id, t.group_id FROM after_ a JOIN djq_task t
        ON t.status = {DEFERRED} AND (t.waiting_on = a.id OR t.waiting_on = a.group_id)
), dropped AS (
    DELETE FROM djq_task t USING after_ a WHERE t.id = a.id AND t.status = {DEFERRED}
    RETURNING t.id
), chords AS (
    DELETE FROM djq_chord c
    WHERE c.group_id IN (SELECT group_id FROM purged UNION SELECT group_id FROM after_)
    RETURNING 1
)
SELECT (SELECT count(*) FROM purged), (SELECT count(*) FROM dropped),
       (SELECT count(*) FROM chords)
"""

REQUEST_TERMINATE = f"""
WITH t AS (
    UPDATE djq_task SET terminate = %s WHERE id = %s AND status = {STARTED} RETURNING id
)
SELECT pg_notify('{CONTROL_CHANNEL}', %s) FROM t
"""

_TERMINATIONS = f"""
SELECT id, terminate FROM djq_task
WHERE claimed_by = %s AND status IN ({CLAIMED}, {STARTED}) AND terminate IS NOT NULL
"""


# FOR SHARE: wait for the transaction that marked the row started (or did not) to end.
_HOLDS_STARTED = f"""
SELECT 1 FROM djq_task WHERE id = %s AND claimed_by = %s AND status = {STARTED} FOR SHARE
"""


def holds_started(conn: Any, worker_id: int, task_id: str | uuid.UUID) -> bool:
    """Whether the row is marked started by ``worker_id``: asked by a pool process whose
    worker died while handing the row over, once the worker's transaction has ended."""
    # SET LOCAL: a session-wide SET would stay behind on a pooler's server session.
    with conn.transaction():
        conn.execute("SET LOCAL lock_timeout = '30s'")
        row = conn.execute(_HOLDS_STARTED, [_as_uuid(task_id), worker_id]).fetchone()
    return row is not None


def terminations(conn: Any, worker_id: int) -> list[tuple[uuid.UUID, int]]:
    """Rows this worker runs that someone asked to terminate, with the signal."""
    return [(r[0], int(r[1])) for r in conn.execute(_TERMINATIONS, [worker_id]).fetchall()]


# --- reads and writes from user code (Django's connection) -------------------------

_FETCH = """
SELECT id, name, state, status, queue, args, kwargs, result, traceback, retries, worker,
    date_created, date_started, date_done, parent_id, root_id, group_id, eta, expires,
    options, priority
FROM djq_task WHERE id = %s
"""

FETCH_FIELDS = (
    "id", "name", "state", "status", "queue", "args", "kwargs", "result", "traceback",
    "retries", "worker", "date_created", "date_started", "date_done", "parent_id", "root_id",
    "group_id", "eta", "expires", "options", "priority",
)


def fetch(task_id: str | uuid.UUID, using: str | None = None) -> dict[str, Any] | None:
    """The stored row of ``task_id`` as a dict, or None if djq does not know it."""
    with connections[using or conf.database].cursor() as cursor:
        cursor.execute(_FETCH, [_as_uuid(task_id)])
        row = cursor.fetchone()
    return dict(zip(FETCH_FIELDS, row)) if row else None


async def afetch(conn: Any, task_id: str | uuid.UUID) -> dict[str, Any] | None:
    """:func:`fetch` on an async psycopg connection (``AsyncResult.aget``)."""
    cursor = await conn.execute(_FETCH, [_as_uuid(task_id)])
    row = await cursor.fetchone()
    return dict(zip(FETCH_FIELDS, row)) if row else None


_CHILDREN = "SELECT id FROM djq_task WHERE parent_id = %s ORDER BY date_created"


def children(task_id: str | uuid.UUID, using: str | None = None) -> list[uuid.UUID]:
    with connections[using or conf.database].cursor() as cursor:
        cursor.execute(_CHILDREN, [_as_uuid(task_id)])
        return [row[0] for row in cursor.fetchall()]


_UPDATE_STATE = f"""
UPDATE djq_task SET state = %s, result = %s WHERE id = %s AND status <> {DONE}
"""


def update_state(task_id: str | uuid.UUID, state: str, meta: str | None,
                 using: str | None = None) -> int:
    """Store a custom state and its meta on an unfinished row."""
    with connections[using or conf.database].cursor() as cursor:
        cursor.execute(_UPDATE_STATE, [state, meta, _as_uuid(task_id)])
        return int(cursor.rowcount)




_FORGET = f"DELETE FROM djq_task WHERE id = %s AND status = {DONE}"


def forget(task_id: str | uuid.UUID, using: str | None = None) -> int:
    """Delete the stored result of a finished task; its id then reads PENDING."""
    with connections[using or conf.database].cursor() as cursor:
        cursor.execute(_FORGET, [_as_uuid(task_id)])
        return int(cursor.rowcount)


def _as_uuid(value: str | uuid.UUID) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


# --- canvas: chains, groups, chords ---------------------------------------------------
#
# A canvas is enqueued as rows in one transaction: the steps that can run at once are
# WAITING, the others DEFERRED with ``waiting_on`` naming the task (a chain's previous
# step) or the chord (its group id) they wait for. The database itself moves them on:
# the trigger of migration 0002 starts (or fails) deferred rows when what they wait on
# ends, and counts chord members down in ``djq_chord``, whatever path ended the task.

_INSERT_CHORDS = """
    INSERT INTO djq_chord (group_id, remaining, callback_id, members, created)
    SELECT (c->>0)::uuid, (c->>1)::int, (c->>2)::uuid,
        ARRAY(SELECT m::uuid FROM json_array_elements_text(c->3) AS m), now()
    FROM json_array_elements(%s::json) AS c
    RETURNING 1
"""

_ENQUEUE_CANVAS = f"""
WITH ins AS (
    INSERT INTO djq_task AS t (id, name, state, status, queue, priority, args, kwargs, options,
        retries, eta, run_at, expires, parent_id, root_id, group_id, date_created, waiting_on,
        canvas)
    SELECT v.id, v.name, '{states.PENDING}', v.status, v.queue, v.priority, v.args, v.kwargs,
        v.options, v.retries, v.eta, v.run_at, v.expires, v.parent_id, v.root_id, v.group_id,
        v.date_created, v.waiting_on, v.canvas
    FROM ({_ROWS_FROM_JSON}) AS v
    RETURNING t.queue, t.status
), chords AS ({_INSERT_CHORDS}), notified AS (
    SELECT pg_notify('{ENQUEUE_CHANNEL}', q.queue)
    FROM (SELECT DISTINCT queue FROM ins WHERE status = {WAITING}) q
)
SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM chords),
       (SELECT count(*) FROM notified)
"""

# A large canvas goes by COPY instead: PostgreSQL's bulk path, several times cheaper per
# row than the statement above (whose INSERT takes each row apart from the JSON
# parameter), then the chord counters and the NOTIFY, in one transaction. Its three more
# round trips pay off from about this many rows (measured: 2.6 ms against 3.4 for 32 rows,
# 6 against 14 for 256).
_COPY_MIN_ROWS = 32

_COPY_TASKS = """
COPY djq_task (id, name, state, status, queue, priority, args, kwargs, options, retries,
    eta, run_at, expires, parent_id, root_id, group_id, date_created, waiting_on, canvas)
    FROM STDIN
"""

_AFTER_COPY = f"""
WITH chords AS ({_INSERT_CHORDS}), notified AS (
    SELECT pg_notify('{ENQUEUE_CHANNEL}', q) FROM unnest(%s::text[]) AS q
)
SELECT (SELECT count(*) FROM chords), (SELECT count(*) FROM notified)
"""


@dataclasses.dataclass(frozen=True, slots=True)
class ChordRow:
    """A chord's counter: ``members`` (in order) end, then the rows waiting on
    ``group_id`` start with their results."""

    group_id: uuid.UUID
    members: tuple[uuid.UUID, ...]
    callback_id: uuid.UUID | None = None


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
    chord_json = json.dumps([
        [str(c.group_id), len(c.members), str(c.callback_id) if c.callback_id else None,
         [str(i) for i in c.members]] for c in chords
    ])
    wrapper = connections[using or conf.database]
    wrapper.ensure_connection()
    wrapper.validate_no_broken_transaction()
    try:
        with wrapper.wrap_database_errors, psycopg.Cursor(wrapper.connection) as cursor:
            if len(messages) < _COPY_MIN_ROWS:
                cursor.execute(_ENQUEUE_CANVAS, [_rows_json(messages), chord_json])
                row = cursor.fetchone()
                return int(row[0]) if row else 0
            # Django's autocommit: a transaction of our own. In the caller's, nothing
            # more (psycopg would commit it, or add a savepoint Django does not know).
            own = wrapper.get_autocommit()
            with wrapper.connection.transaction() if own else contextlib.nullcontext():
                with cursor.copy(_COPY_TASKS) as copy:
                    for m in messages:
                        copy.write_row((
                            m.id, m.name, states.PENDING, m.status, m.queue, m.priority,
                            m.args, m.kwargs, m.options, m.retries, m.eta, m.run_at,
                            m.expires, m.parent_id, m.root_id, m.group_id, m.date_created,
                            m.waiting_on, m.canvas))
                queues = sorted({m.queue for m in messages if m.status == WAITING})
                cursor.execute(_AFTER_COPY, [chord_json, queues])
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


_FETCH_MANY = f"SELECT {', '.join(FETCH_FIELDS)} FROM djq_task WHERE id = ANY(%s::uuid[])"


def fetch_many(task_ids: Iterable[str | uuid.UUID],
               using: str | None = None) -> dict[str, dict[str, Any]]:
    """The stored rows of ``task_ids`` by id (as text), in one query; unknown ids are
    missing from the answer."""
    ids = [_as_uuid(i) for i in task_ids]
    if not ids:
        return {}
    with connections[using or conf.database].cursor() as cursor:
        cursor.execute(_FETCH_MANY, [ids])
        rows = [dict(zip(FETCH_FIELDS, row)) for row in cursor.fetchall()]
    return {str(r["id"]): r for r in rows}


_GROUP_MEMBERS = """
SELECT members FROM djq_chord WHERE group_id = %s
UNION ALL
SELECT members FROM djq_group WHERE id = %s
LIMIT 1
"""


def group_members(group_id: str | uuid.UUID,
                  using: str | None = None) -> list[uuid.UUID] | None:
    """The member ids of a chord header or a saved group, or None if ``group_id`` names
    neither."""
    gid = _as_uuid(group_id)
    with connections[using or conf.database].cursor() as cursor:
        cursor.execute(_GROUP_MEMBERS, [gid, gid])
        row = cursor.fetchone()
    return list(row[0]) if row else None


_SAVE_GROUPS = """
INSERT INTO djq_group (id, members, date_created)
SELECT (g->>0)::uuid, ARRAY(SELECT m::uuid FROM json_array_elements_text(g->1) AS m), now()
FROM json_array_elements(%s::json) AS g
ON CONFLICT (id) DO UPDATE SET members = excluded.members, date_created = excluded.date_created
"""


def save_groups(groups: Sequence[tuple[str, Sequence[str]]], using: str | None = None) -> None:
    """Store groups as (id, member ids in order); a member id may name another group
    stored in the same call (nested groups)."""
    if not groups:
        return
    payload = json.dumps([[str(gid), [str(m) for m in members]] for gid, members in groups])
    with connections[using or conf.database].cursor() as cursor:
        cursor.execute(_SAVE_GROUPS, [payload])


_RESTORE_GROUP = """
WITH RECURSIVE g(id, members) AS (
    SELECT id, members FROM djq_group WHERE id = %s
    UNION
    SELECT s.id, s.members FROM djq_group s JOIN g ON s.id = ANY(g.members)
)
SELECT id, members FROM g
"""


def restore_groups(group_id: str | uuid.UUID,
                   using: str | None = None) -> dict[str, list[str]]:
    """A saved group and the saved groups nested in it: id -> member ids in order."""
    with connections[using or conf.database].cursor() as cursor:
        cursor.execute(_RESTORE_GROUP, [_as_uuid(group_id)])
        return {str(r[0]): [str(m) for m in r[1]] for r in cursor.fetchall()}


_DELETE_GROUP = "DELETE FROM djq_group WHERE id = %s"


def delete_group(group_id: str | uuid.UUID, using: str | None = None) -> int:
    with connections[using or conf.database].cursor() as cursor:
        cursor.execute(_DELETE_GROUP, [_as_uuid(group_id)])
        return int(cursor.rowcount)


REVOKE_WAITING_MANY = f"""
WITH r AS (
    UPDATE djq_task SET status = {DONE}, state = '{states.REVOKED}', result = %s,
        date_done = now()
    WHERE id = ANY(%s::uuid[]) AND status IN ({WAITING}, {CLAIMED}, {DEFERRED})
    RETURNING id, name
), n AS (
    SELECT pg_notify('{DONE_CHANNEL}', string_agg(id::text, ','))
    FROM (SELECT id, (row_number() OVER ()) / {_NOTIFY_IDS} AS batch FROM r) b
    GROUP BY batch
)
SELECT r.id, r.name, (SELECT count(*) FROM n) FROM r
"""

# Finished chords and saved groups are kept as long as results are.
_PRUNE_CANVAS = """
WITH c AS (
    DELETE FROM djq_chord WHERE remaining = 0 AND created < now() - make_interval(secs => %s)
)
DELETE FROM djq_group WHERE date_created < now() - make_interval(secs => %s)
"""
