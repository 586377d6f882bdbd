-- Named statements of the read side (djq.cluster is their one caller): figures for the
-- metrics, the admin, the API and the monitor. None takes a lock or writes. See
-- djq/sql/__init__.py; {WAITING} and the like are djq's status numbers.

-- name: queue_waiting
-- Per queue and priority among the waiting rows: how many are runnable and how many
-- scheduled, each counted up to the cap (a parameter), and the age of the oldest runnable one.
-- It walks djq_task_ready (queue, priority DESC, run_at) as a skip scan: each queue and
-- each priority is one index descent, the runnable rows of a priority come before its
-- scheduled ones, and each count stops at the cap. So the cost follows the number of
-- queues and priorities and the cap, not the number of waiting rows. A count at the cap is a lower bound: djq.cluster estimates those.
WITH RECURSIVE queues(queue) AS (
    (SELECT queue FROM djq_task WHERE status = {WAITING} ORDER BY queue LIMIT 1)
    UNION ALL
    SELECT (SELECT t.queue FROM djq_task t WHERE t.status = {WAITING} AND t.queue > q.queue
            ORDER BY t.queue LIMIT 1)
    FROM queues q WHERE q.queue IS NOT NULL
), groups(queue, priority) AS (
    SELECT q.queue, (SELECT t.priority FROM djq_task t
                     WHERE t.status = {WAITING} AND t.queue = q.queue
                     ORDER BY t.priority DESC LIMIT 1)
    FROM queues q WHERE q.queue IS NOT NULL
    UNION ALL
    SELECT g.queue, (SELECT t.priority FROM djq_task t
                     WHERE t.status = {WAITING} AND t.queue = g.queue AND t.priority < g.priority
                     ORDER BY t.priority DESC LIMIT 1)
    FROM groups g WHERE g.priority IS NOT NULL
)
SELECT g.queue,
    (SELECT count(*) FROM (SELECT FROM djq_task t WHERE t.status = {WAITING}
        AND t.queue = g.queue AND t.priority = g.priority AND t.run_at <= now()
        LIMIT %(cap)s) AS r),
    (SELECT count(*) FROM (SELECT FROM djq_task t WHERE t.status = {WAITING}
        AND t.queue = g.queue AND t.priority = g.priority AND t.run_at > now()
        LIMIT %(cap)s) AS s),
    COALESCE(EXTRACT(EPOCH FROM now() - (
        SELECT min(t.run_at) FROM djq_task t WHERE t.status = {WAITING}
        AND t.queue = g.queue AND t.priority = g.priority AND t.run_at <= now())), 0)
FROM groups g WHERE g.priority IS NOT NULL

-- name: queue_waiting_estimate
-- The planner's estimate (from the statistics ANALYZE keeps) of a queue's runnable rows.
EXPLAIN (FORMAT JSON)
SELECT FROM djq_task WHERE status = {WAITING} AND queue = %s AND run_at <= now()

-- name: queue_scheduled_estimate
EXPLAIN (FORMAT JSON)
SELECT FROM djq_task WHERE status = {WAITING} AND queue = %s AND run_at > now()

-- name: queue_in_flight
-- Per queue: rows claimed and not started, and rows started (djq_task_inflight).
SELECT queue, count(*) FILTER (WHERE status = {CLAIMED}),
    count(*) FILTER (WHERE status = {STARTED})
FROM djq_task WHERE status IN ({CLAIMED}, {STARTED}) GROUP BY queue

-- name: task_count_estimate
-- A catalog read: the planner's row count of djq_task, kept by autovacuum and ANALYZE.
SELECT reltuples::bigint FROM pg_class WHERE oid = 'djq_task'::regclass
