
-- djq_finish_v1: write the outcomes of finished tasks, for rows the worker p_worker still
-- holds (claimed_by, status claimed or started); a row recovered by others since is left
-- untouched. p_outcomes is a JSON array of djq.rows.Outcome.to_json() arrays. Status 3
-- (done) ends a row, 0 (waiting) puts it back for a retry; "drop" deletes it. Wakes the
-- readers of ended rows (djq_done: ids) and the workers of re-queued ones (djq_enqueue:
-- queue). Returns the ids written. Called by broker.finish and by djq_cycle_v3.
CREATE OR REPLACE FUNCTION djq_finish_v1(p_worker bigint, p_outcomes json) RETURNS uuid[]
LANGUAGE plpgsql AS $fn$
DECLARE
    v_written uuid[];
    v_notified bigint;
BEGIN
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
            date_done = CASE WHEN v.status = 3 THEN v.date_done END,
            claimed_by = CASE WHEN v.status = 3 THEN t.claimed_by END,
            date_claimed = CASE WHEN v.status = 3 THEN t.date_claimed END,
            date_started = CASE WHEN v.status = 3 THEN t.date_started END
        FROM v
        WHERE t.id = v.id AND NOT v.drop AND t.claimed_by = p_worker AND t.status IN (1, 2)
        RETURNING t.id, t.status, t.queue
    ), del AS (
        DELETE FROM djq_task t USING v
        WHERE t.id = v.id AND v.drop AND t.claimed_by = p_worker AND t.status IN (1, 2)
        RETURNING t.id
    ), done_notify AS (
        SELECT pg_notify('djq_done', string_agg(d.id::text, ','))
        FROM (SELECT u.id FROM upd u WHERE u.status = 3 UNION ALL SELECT x.id FROM del x) d
        HAVING count(*) > 0
    ), wake_notify AS (
        SELECT pg_notify('djq_enqueue', w.queue)
        FROM (SELECT DISTINCT u.queue FROM upd u WHERE u.status = 0) w
    )
    SELECT ARRAY(SELECT u.id FROM upd u UNION ALL SELECT x.id FROM del x),
        (SELECT count(*) FROM done_notify) + (SELECT count(*) FROM wake_notify)
    INTO v_written, v_notified;
    RETURN v_written;
END
$fn$;
