-- Named statements of the queue (djq.broker is their one caller). See djq/sql/__init__.py:
-- {DONE} and the like are djq.status's names, {query:NAME} puts another block in place.

-- --- enqueue ------------------------------------------------------------------------

-- name: rows_from_json
-- Many rows travel as one JSON parameter (an array of arrays, in Message.to_json's order):
-- cheaper to build than typed arrays, and PostgreSQL takes it apart in one pass.
SELECT (e->>0)::uuid AS id, e->>1 AS name, e->>2 AS queue, (e->>3)::int AS priority,
    e->>4 AS args, e->>5 AS kwargs, e->>6 AS options, (e->>7)::int AS retries,
    (e->>8)::timestamptz AS eta, (e->>9)::timestamptz AS run_at,
    (e->>10)::timestamptz AS expires, (e->>11)::uuid AS parent_id, (e->>12)::uuid AS root_id,
    (e->>13)::uuid AS group_id, (e->>14)::timestamptz AS date_created,
    (e->>15)::smallint AS status, (e->>16)::uuid AS waiting_on, (e->>17)::jsonb AS canvas
FROM json_array_elements(%s::json) AS e

-- name: requeue_finished
-- An id that names a finished task re-queues it; one still waiting or running is left
-- alone (and the statement returns no row for it).
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

-- name: enqueue
WITH ins AS (
    INSERT INTO djq_task AS t (id, name, state, status, queue, priority, args, kwargs, options,
        retries, eta, run_at, expires, parent_id, root_id, group_id, date_created)
    SELECT v.id, v.name, '{states.PENDING}', {WAITING}, v.queue, v.priority, v.args, v.kwargs,
        v.options, v.retries, v.eta, v.run_at, v.expires, v.parent_id, v.root_id, v.group_id,
        v.date_created
    FROM ({query:rows_from_json}) AS v
    {query:requeue_finished}
    RETURNING t.queue
), notified AS (
    SELECT pg_notify('{ENQUEUE_CHANNEL}', q.queue) FROM (SELECT DISTINCT queue FROM ins) q
)
SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM notified)

-- name: enqueue_one
WITH ins AS (
    INSERT INTO djq_task AS t (id, name, state, status, queue, priority, args, kwargs, options,
        retries, eta, run_at, expires, parent_id, root_id, group_id, date_created, owner)
    VALUES (%s, %s, '{states.PENDING}', {WAITING}, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
            %s, %s, %s, %s)
    {query:requeue_finished}
    RETURNING t.queue
)
SELECT pg_notify('{ENQUEUE_CHANNEL}', queue) FROM ins

-- --- canvas: chains, groups, chords ---------------------------------------------------

-- name: insert_chords
    INSERT INTO djq_chord (group_id, remaining, callback_id, members, created)
    SELECT (c->>0)::uuid, (c->>1)::int, (c->>2)::uuid,
        ARRAY(SELECT m::uuid FROM json_array_elements_text(c->3) AS m), now()
    FROM json_array_elements(%s::json) AS c
    RETURNING 1

-- name: enqueue_canvas
WITH ins AS (
    INSERT INTO djq_task AS t (id, name, state, status, queue, priority, args, kwargs, options,
        retries, eta, run_at, expires, parent_id, root_id, group_id, date_created, waiting_on,
        canvas)
    SELECT v.id, v.name, '{states.PENDING}', v.status, v.queue, v.priority, v.args, v.kwargs,
        v.options, v.retries, v.eta, v.run_at, v.expires, v.parent_id, v.root_id, v.group_id,
        v.date_created, v.waiting_on, v.canvas
    FROM ({query:rows_from_json}) AS v
    RETURNING t.queue, t.status
), chords AS ({query:insert_chords}), notified AS (
    SELECT pg_notify('{ENQUEUE_CHANNEL}', q.queue)
    FROM (SELECT DISTINCT queue FROM ins WHERE status = {WAITING}) q
)
SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM chords),
       (SELECT count(*) FROM notified)

-- name: copy_tasks
-- Columns in Message.to_copy's order.
COPY djq_task (id, name, state, status, queue, priority, args, kwargs, options, retries,
    eta, run_at, expires, parent_id, root_id, group_id, date_created, waiting_on, canvas)
    FROM STDIN

-- name: after_copy
WITH chords AS ({query:insert_chords}), notified AS (
    SELECT pg_notify('{ENQUEUE_CHANNEL}', q) FROM unnest(%s::text[]) AS q
)
SELECT (SELECT count(*) FROM chords), (SELECT count(*) FROM notified)

-- name: group_members
SELECT members FROM djq_chord WHERE group_id = %s
UNION ALL
SELECT members FROM djq_group WHERE id = %s
LIMIT 1

-- name: save_groups
INSERT INTO djq_group (id, members, date_created)
SELECT (g->>0)::uuid, ARRAY(SELECT m::uuid FROM json_array_elements_text(g->1) AS m), now()
FROM json_array_elements(%s::json) AS g
ON CONFLICT (id) DO UPDATE SET members = excluded.members, date_created = excluded.date_created

-- name: restore_group
WITH RECURSIVE g(id, members) AS (
    SELECT id, members FROM djq_group WHERE id = %s
    UNION
    SELECT s.id, s.members FROM djq_group s JOIN g ON s.id = ANY(g.members)
)
SELECT id, members FROM g

-- name: delete_group
DELETE FROM djq_group WHERE id = %s

-- --- the worker's loop ------------------------------------------------------------------

-- name: cycle
SELECT * FROM djq_cycle_v3(%s, %s, %s::json, %s::uuid[], %s::text[], %s, %s, %s, %s::text[],
                           %s)

-- name: notify
SELECT count(pg_notify(n->>0, n->>1)) FROM json_array_elements(%s::json) AS n

-- name: notify_one
SELECT pg_notify(%s, %s)

-- name: next_run_at
SELECT min(run_at) FROM djq_task WHERE status = {WAITING} AND queue = ANY(%s)

-- name: finish
SELECT djq_finish_v1(%s, %s::json)

-- name: release
WITH rel AS (
    UPDATE djq_task SET status = {WAITING}, claimed_by = NULL, worker = NULL,
        date_claimed = NULL
    WHERE id = ANY(%s::uuid[]) AND claimed_by = %s AND status = {CLAIMED}
    RETURNING queue
), woke AS (
    SELECT pg_notify('{ENQUEUE_CHANNEL}', q.queue) FROM (SELECT DISTINCT queue FROM rel) q
)
SELECT (SELECT count(*) FROM rel), (SELECT count(*) FROM woke)

-- name: release_unstarted
WITH rel AS (
    UPDATE djq_task SET status = {WAITING}, claimed_by = NULL, worker = NULL,
        date_claimed = NULL, date_started = NULL
    WHERE claimed_by = %s AND status IN ({CLAIMED}, {STARTED}) AND NOT (id = ANY(%s::uuid[]))
    RETURNING queue
), woke AS (
    SELECT pg_notify('{ENQUEUE_CHANNEL}', q.queue) FROM (SELECT DISTINCT queue FROM rel) q
)
SELECT (SELECT count(*) FROM rel), (SELECT count(*) FROM woke)

-- name: terminations
SELECT id, terminate FROM djq_task
WHERE claimed_by = %s AND status IN ({CLAIMED}, {STARTED}) AND terminate IS NOT NULL

-- name: holds_started
-- FOR SHARE: wait for the transaction that marked the row started (or did not) to end.
SELECT 1 FROM djq_task WHERE id = %s AND claimed_by = %s AND status = {STARTED} FOR SHARE

-- --- workers and their leases -------------------------------------------------------

-- name: register_worker
INSERT INTO djq_worker (hostname, pid, pool, concurrency, queues, started_at, last_heartbeat,
    processed, failed, active, loadavg, sw_ver, registered)
VALUES (%s, %s, %s, %s, %s, now(), now(), 0, 0, 0, %s, %s, %s)
RETURNING id

-- name: heartbeat
UPDATE djq_worker SET last_heartbeat = now(), processed = %s, failed = %s, active = %s,
    loadavg = %s, counters = COALESCE(%s::jsonb, counters)
WHERE id = %s AND stopped_at IS NULL
RETURNING id

-- name: stop_worker
UPDATE djq_worker SET stopped_at = now(), counters = COALESCE(%s::jsonb, counters)
WHERE id = %s

-- --- recovery -------------------------------------------------------------------------
-- Recovery runs in one transaction: declare dead the workers whose lease ran out (their
-- rows locked FOR UPDATE, so no cycle of theirs is half-way through), then take every
-- in-flight row held by no live worker, whether its worker was declared dead now, before,
-- or has no row at all. A worker's rows are therefore never "held" by a dead worker: once
-- it is declared dead, its next cycle finds nothing of its own to write.

-- name: expire_workers
UPDATE djq_worker SET stopped_at = now()
WHERE id IN (
    SELECT id FROM djq_worker
    WHERE stopped_at IS NULL AND last_heartbeat < now() - make_interval(secs => %s)
    FOR UPDATE SKIP LOCKED
) AND stopped_at IS NULL
RETURNING id, hostname

-- name: orphans
SELECT t.id, t.name, t.status, t.options
FROM djq_task t LEFT JOIN djq_worker w ON w.id = t.claimed_by
WHERE t.status IN ({CLAIMED}, {STARTED}) AND (w.id IS NULL OR w.stopped_at IS NOT NULL)
FOR UPDATE OF t SKIP LOCKED

-- name: requeue_orphans
WITH r AS (
    UPDATE djq_task SET status = {WAITING}, claimed_by = NULL, worker = NULL,
        date_claimed = NULL, date_started = NULL
    WHERE id = ANY(%s::uuid[]) AND status IN ({CLAIMED}, {STARTED}) AND NOT EXISTS (
        SELECT 1 FROM djq_worker w WHERE w.id = djq_task.claimed_by AND w.stopped_at IS NULL)
    RETURNING queue
), woke AS (
    SELECT pg_notify('{ENQUEUE_CHANNEL}', q.queue) FROM (SELECT DISTINCT queue FROM r) q
)
SELECT (SELECT count(*) FROM r), (SELECT count(*) FROM woke)

-- name: fail_orphans
WITH f AS (
    UPDATE djq_task SET status = {DONE}, state = '{states.FAILURE}', result = %s,
        traceback = %s, date_done = now()
    WHERE id = ANY(%s::uuid[]) AND status = {STARTED} AND NOT EXISTS (
        SELECT 1 FROM djq_worker w WHERE w.id = djq_task.claimed_by AND w.stopped_at IS NULL)
    RETURNING id
), done AS (
    SELECT pg_notify('{DONE_CHANNEL}', string_agg(id::text, ',')) FROM f HAVING count(*) > 0
)
SELECT (SELECT count(*) FROM f), (SELECT count(*) FROM done)

-- name: redeliver
-- A started row whose process or worker was lost goes back to its queue, counted on the
-- row; the delivery that would pass its limit ends it FAILURE instead, so a task that
-- kills whatever runs it can never loop. The error's text carries @N@ (deliveries so
-- far) and @MAX@ (the limit), filled in here from the row.
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

-- --- pruning ----------------------------------------------------------------------------

-- name: prune
-- Failures may be kept longer than the rest (result_expires_failed); a NULL age keeps
-- those rows for good. The outer bound is the shorter age, for the done index.
DELETE FROM djq_task WHERE id IN (
    SELECT id FROM djq_task
    WHERE status = {DONE} AND date_done < now() - make_interval(secs => %(shortest)s)
        AND CASE WHEN state = '{states.FAILURE}'
            THEN date_done < now() - make_interval(secs => %(failed)s::float8)
            ELSE date_done < now() - make_interval(secs => %(others)s::float8) END
    LIMIT %(batch)s FOR UPDATE SKIP LOCKED
)

-- name: prune_workers
DELETE FROM djq_worker w WHERE stopped_at < now() - make_interval(secs => %s)
    AND NOT EXISTS (SELECT 1 FROM djq_task t WHERE t.claimed_by = w.id
                    AND t.status IN ({CLAIMED}, {STARTED}))
RETURNING counters

-- name: retired_counters
SELECT counters FROM djq_retired_counters WHERE id = 1

-- name: retired_counters_locked
-- FOR UPDATE (the row exists from the migration on): two workers pruning at once add
-- their rows one after the other.
SELECT counters FROM djq_retired_counters WHERE id = 1 FOR UPDATE

-- name: retire_counters
INSERT INTO djq_retired_counters (id, counters) VALUES (1, %s)
ON CONFLICT (id) DO UPDATE SET counters = EXCLUDED.counters

-- name: prune_canvas
-- Finished chords and saved groups are kept as long as results are.
WITH c AS (
    DELETE FROM djq_chord WHERE remaining = 0 AND created < now() - make_interval(secs => %s)
)
DELETE FROM djq_group WHERE date_created < now() - make_interval(secs => %s)

-- --- reads and writes from user code (Django's connection) -------------------------

-- name: fetch
SELECT id, name, state, status, queue, args, kwargs, result, traceback, retries, worker,
    date_created, date_started, date_done, parent_id, root_id, group_id, eta, expires,
    options, priority
FROM djq_task WHERE id = %s

-- name: fetch_many
SELECT id, name, state, status, queue, args, kwargs, result, traceback, retries, worker,
    date_created, date_started, date_done, parent_id, root_id, group_id, eta, expires,
    options, priority
FROM djq_task WHERE id = ANY(%s::uuid[])

-- name: task_status
SELECT status FROM djq_task WHERE id = %s

-- name: children
SELECT id FROM djq_task WHERE parent_id = %s ORDER BY date_created

-- name: update_state
UPDATE djq_task SET state = %s, result = %s WHERE id = %s AND status <> {DONE}

-- name: forget
DELETE FROM djq_task WHERE id = %s AND status = {DONE}

-- --- control --------------------------------------------------------------------------

-- name: revoke_waiting
WITH r AS (
    UPDATE djq_task SET status = {DONE}, state = '{states.REVOKED}', result = %s,
        date_done = now()
    WHERE id = %s AND status IN ({WAITING}, {CLAIMED}, {DEFERRED})
    RETURNING id, name
), n AS (
    SELECT pg_notify('{DONE_CHANNEL}', id::text) FROM r
)
SELECT r.name, (SELECT count(*) FROM n) FROM r

-- name: revoke_waiting_many
WITH r AS (
    UPDATE djq_task SET status = {DONE}, state = '{states.REVOKED}', result = %s,
        date_done = now()
    WHERE id = ANY(%s::uuid[]) AND status IN ({WAITING}, {CLAIMED}, {DEFERRED})
    RETURNING id, name
), n AS (
    SELECT pg_notify('{DONE_CHANNEL}', string_agg(id::text, ','))
    FROM (SELECT id, (row_number() OVER ()) / {NOTIFY_IDS} AS batch FROM r) b
    GROUP BY batch
)
SELECT r.id, r.name, (SELECT count(*) FROM n) FROM r

-- name: request_terminate
-- Kept on the row (so a worker that missed the NOTIFY still finds it) and announced.
WITH t AS (
    UPDATE djq_task SET terminate = %s WHERE id = %s AND status = {STARTED} RETURNING id
)
SELECT pg_notify('{CONTROL_CHANNEL}', %s) FROM t

-- name: retry
-- A member of a chord still waiting for others was counted when it ended: un-count it, so
-- that it counts once more when it ends again (and the callback waits for the others).
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

-- name: purge
-- Purging a waiting row also drops what could only ever run after it: the deferred canvas
-- steps waiting on it (a chain's next steps, transitively), and a chord that loses a
-- member, with its counter and callback. As with Celery, whose chain travels inside its
-- first message, they would never run; left behind they would wait forever. Counts the
-- waiting rows (the messages) purged.
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
