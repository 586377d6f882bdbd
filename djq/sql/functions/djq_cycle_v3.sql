
-- djq_cycle_v3: one worker round trip in one statement (and so one commit). As version 2,
-- but the outcomes are written by djq_finish_v1, the finish broker.finish calls too.
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
-- Then: write the outcomes of finished tasks (djq_finish_v1), mark buffered rows
-- started, claim (and start) more. Rows come back as (kind, ...): 's' = a buffered row
-- now started (only id set), 'c' = a newly claimed row (started says whether it was
-- started too). Queues are read in the order given (the caller rotates them); within a
-- queue, highest priority, then oldest, first.
CREATE OR REPLACE FUNCTION djq_cycle_v3(
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
        PERFORM djq_finish_v1(p_worker, p_outcomes);
    END IF;

    IF p_start IS NOT NULL AND cardinality(p_start) > 0 THEN
        RETURN QUERY
        UPDATE djq_task t SET status = 2, date_started = now(),
            state = CASE WHEN (p_track_default <> (t.name = ANY(p_track_exceptions)))
                         THEN 'STARTED' ELSE t.state END
        WHERE t.id = ANY(p_start) AND t.claimed_by = p_worker AND t.status = 1
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
                WHERE x.status = 0 AND x.queue = q AND x.run_at <= now()
                ORDER BY x.priority DESC, x.run_at
                LIMIT p_limit FOR UPDATE SKIP LOCKED
            ), r AS (
                SELECT c.id, row_number() OVER (ORDER BY c.priority DESC, c.run_at) AS rn FROM c
            )
            UPDATE djq_task t SET
                status = CASE WHEN r.rn <= v_to_start THEN 2 ELSE 1 END,
                date_started = CASE WHEN r.rn <= v_to_start THEN now() END,
                state = CASE WHEN r.rn <= v_to_start
                                  AND (p_track_default <> (t.name = ANY(p_track_exceptions)))
                             THEN 'STARTED' ELSE t.state END,
                claimed_by = p_worker, worker = p_hostname, date_claimed = now()
            FROM r WHERE t.id = r.id
            RETURNING 'c'::text, t.id, t.name, t.queue, t.priority, t.args, t.kwargs,
                t.options, t.retries, t.eta, t.expires, t.parent_id, t.root_id, t.group_id,
                t.run_at, t.state, t.status = 2;
            GET DIAGNOSTICS v_rows = ROW_COUNT;
            p_limit := p_limit - v_rows;
            v_to_start := greatest(0, v_to_start - v_rows);
        END LOOP;
    END IF;
END
$fn$;
