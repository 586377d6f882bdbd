-- Canvas, version 2: the trigger that moves chains and chords on whenever a task ends,
-- whatever ended it (a worker, a revoke, the recovery of a dead worker's rows, an
-- expiry). Version 1 (migration 0004) read a canvas row's flags from a text prefix of its
-- options; version 2 reads them from the row's own column, djq_task.canvas (jsonb):
--   immutable  the step takes no partial arguments (the previous result is not prepended)
--   countdown  seconds from when the step becomes ready
--   on_error   the row calls the errbacks of the row it waits on (djq.chord_errbacks):
--              it starts only if that row fails without running (a chord callback
--              failing with ChordError), and is dropped when that row ends otherwise
-- A row written before version 2 (no column, its options starting with the prefix of
-- version 1) is still read, so rows sent by code not yet upgraded move on too.
--
-- The helpers of version 1 (djq_pyrepr, djq_exc_repr, djq_prepend_arg, djq_notify_done)
-- are unchanged and used as they are.

-- A canvas row's flags: its column, or the options prefix of version 1, or NULL.
CREATE OR REPLACE FUNCTION djq_canvas_flags_v2(canvas jsonb, options text) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN canvas IS NOT NULL THEN canvas
        WHEN starts_with(options, '{"canvas":{"immutable":') THEN jsonb_build_object(
            'immutable', starts_with(options, '{"canvas":{"immutable":true'),
            'countdown', substring(options from
                '^\{"canvas":\{"immutable":(?:true|false),"countdown":([-+.0-9eE]+)')::float8)
    END
$$;

-- The deferred rows waiting on `waited` (a task id or a chord's group id) become
-- WAITING, with `head` (JSON text) prepended to their args unless they are immutable.
-- Errback rows (on_error) are not started: what they wait on did not fail.
CREATE OR REPLACE FUNCTION djq_canvas_start_v2(waited uuid, head text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    queues text[];
BEGIN
    WITH s AS (
        UPDATE djq_task t SET
            status = 0,
            args = CASE WHEN (f.flags ->> 'immutable')::boolean
                        THEN t.args ELSE djq_prepend_arg(head, t.args) END,
            run_at = coalesce(now() + make_interval(secs => (f.flags ->> 'countdown')::float8),
                              greatest(t.run_at, now())),
            eta = coalesce(now() + make_interval(secs => (f.flags ->> 'countdown')::float8),
                           t.eta)
        FROM (SELECT d.id, djq_canvas_flags_v2(d.canvas, d.options) AS flags
              FROM djq_task d WHERE d.status = 4 AND d.waiting_on = waited) f
        WHERE t.id = f.id AND NOT coalesce((f.flags ->> 'on_error')::boolean, false)
        RETURNING t.queue
    )
    SELECT array_agg(DISTINCT s.queue) INTO queues FROM s;
    PERFORM pg_notify('djq_enqueue', q) FROM unnest(queues) AS q;
END $$;

-- Every deferred row that waits, directly or down a chain, on `waited` ends FAILURE
-- with this error. Rows that belong to a chord count down through the trigger. An
-- errback row (on_error) of a row failed here starts instead: that row never ran, and
-- its errbacks are called for it.
CREATE OR REPLACE FUNCTION djq_canvas_fail_v2(waited uuid, res text, tb text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    ids uuid[];
    queues text[];
BEGIN
    WITH RECURSIVE dep(id, on_error) AS (
        SELECT d.id, coalesce((d.canvas ->> 'on_error')::boolean, false)
        FROM djq_task d WHERE d.status = 4 AND d.waiting_on = waited
        UNION
        SELECT t.id, coalesce((t.canvas ->> 'on_error')::boolean, false)
        FROM djq_task t JOIN dep ON t.waiting_on = dep.id
        WHERE t.status = 4 AND NOT dep.on_error
    ), f AS (
        UPDATE djq_task t SET
            status = CASE WHEN dep.on_error THEN 0 ELSE 3 END,
            state = CASE WHEN dep.on_error THEN t.state ELSE 'FAILURE' END,
            result = CASE WHEN dep.on_error THEN t.result ELSE res END,
            traceback = CASE WHEN dep.on_error THEN t.traceback ELSE tb END,
            run_at = CASE WHEN dep.on_error THEN greatest(t.run_at, now()) ELSE t.run_at END,
            date_done = CASE WHEN dep.on_error THEN t.date_done ELSE now() END
        FROM dep WHERE t.id = dep.id AND t.status = 4
        RETURNING t.id, t.status, t.queue
    ), n AS (
        SELECT array_agg(f.id) FILTER (WHERE f.status = 3) AS done,
               array_agg(DISTINCT f.queue) FILTER (WHERE f.status = 0) AS woken
        FROM f
    )
    SELECT n.done, n.woken INTO ids, queues FROM n;
    PERFORM djq_notify_done(ids);
    PERFORM pg_notify('djq_enqueue', q) FROM unnest(queues) AS q;
END $$;

-- A chord's members that ended: one less to wait for each. At 0 the rows waiting on the
-- chord start with the members' results in member order, or fail with ChordError
-- naming the first member (in order) that did not succeed.
CREATE OR REPLACE FUNCTION djq_chord_count_v2(grp uuid, ended uuid[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    left_ int;
    members_ uuid[];
    culprit record;
    joined text;
BEGIN
    -- The row lock on the counter serialises members ending at the same time: exactly
    -- one transaction sees it reach 0.
    UPDATE djq_chord c SET remaining = c.remaining - (
        SELECT count(DISTINCT e) FROM unnest(ended) AS e WHERE e = ANY(c.members))
    WHERE c.group_id = grp AND c.remaining > 0
    RETURNING c.remaining, c.members INTO left_, members_;
    IF NOT FOUND OR left_ > 0 THEN
        RETURN;
    END IF;
    SELECT m.id, t.result, t.traceback INTO culprit
    FROM unnest(members_) WITH ORDINALITY AS m(id, n) JOIN djq_task t ON t.id = m.id
    WHERE t.status = 3 AND t.state <> 'SUCCESS'
    ORDER BY m.n LIMIT 1;
    IF FOUND THEN
        PERFORM djq_canvas_fail_v2(grp, json_build_object(
            'exc_type', 'ChordError',
            'exc_message', json_build_array(
                'Dependency ' || culprit.id::text || ' raised ' || djq_exc_repr(culprit.result)),
            'exc_module', 'djq.exceptions')::text, culprit.traceback);
    ELSE
        SELECT '[' || coalesce(string_agg(coalesce(t.result, 'null'), ',' ORDER BY m.n), '')
            || ']' INTO joined
        FROM unnest(members_) WITH ORDINALITY AS m(id, n) LEFT JOIN djq_task t ON t.id = m.id;
        PERFORM djq_canvas_start_v2(grp, joined);
    END IF;
END $$;

CREATE OR REPLACE FUNCTION djq_canvas_advance_v2(done_id uuid, grp uuid, ok boolean,
                                                 res text, tb text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM djq_task WHERE status = 4 AND waiting_on = done_id) THEN
        -- It ended by itself (it ran, or was revoked): its errbacks, if it failed, were
        -- called where it failed, and an errback row for it has nothing left to do.
        DELETE FROM djq_task d
        WHERE d.status = 4 AND d.waiting_on = done_id
            AND coalesce((d.canvas ->> 'on_error')::boolean, false);
        IF ok THEN
            PERFORM djq_canvas_start_v2(done_id, res);
        ELSE
            PERFORM djq_canvas_fail_v2(done_id, res, tb);
        END IF;
    END IF;
    IF grp IS NOT NULL THEN
        -- Counted when the statement ends (djq_task_ended_statement_v2), for all its rows
        -- at once, chord by chord in group id order: two workers ending members of the
        -- same chords lock their counters in the same order, and never deadlock.
        PERFORM set_config('djq.ended', coalesce(current_setting('djq.ended', true), '')
                           || grp::text || ' ' || done_id::text || ',', true);
    END IF;
END $$;

CREATE OR REPLACE FUNCTION djq_task_ended_v2() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        -- A running task whose result is not kept (ignore_result): it ended, its value
        -- is not known. Canvas steps that others wait on always keep their result.
        PERFORM djq_canvas_advance_v2(OLD.id, OLD.group_id, true, 'null', NULL);
    ELSE
        PERFORM djq_canvas_advance_v2(NEW.id, NEW.group_id, NEW.state = 'SUCCESS',
                                      coalesce(NEW.result, 'null'), NEW.traceback);
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION djq_task_ended_statement_v2() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    pending text := current_setting('djq.ended', true);
    c record;
BEGIN
    IF pending IS NULL OR pending = '' THEN
        RETURN NULL;
    END IF;
    PERFORM set_config('djq.ended', '', true);
    FOR c IN
        SELECT split_part(e, ' ', 1)::uuid AS grp,
               array_agg(split_part(e, ' ', 2)::uuid) AS ended
        FROM unnest(string_to_array(pending, ',')) AS e
        WHERE e <> ''
        GROUP BY 1 ORDER BY 1
    LOOP
        PERFORM djq_chord_count_v2(c.grp, c.ended);
    END LOOP;
    RETURN NULL;
END $$;

-- Only canvas rows (with flags, in the column or in the options of version 1) can have
-- rows waiting on them or belong to a chord: other tasks end without calling anything.
-- The triggers fire on the row's change, whoever writes it: a worker of any version.
DROP TRIGGER IF EXISTS djq_task_ended ON djq_task;
DROP TRIGGER IF EXISTS djq_task_ended_v2 ON djq_task;
CREATE TRIGGER djq_task_ended_v2 AFTER UPDATE OF status ON djq_task
    FOR EACH ROW WHEN (NEW.status = 3 AND OLD.status <> 3
                       AND (NEW.canvas IS NOT NULL
                            OR starts_with(NEW.options, '{"canvas":{"immutable":')))
    EXECUTE FUNCTION djq_task_ended_v2();

DROP TRIGGER IF EXISTS djq_task_dropped ON djq_task;
DROP TRIGGER IF EXISTS djq_task_dropped_v2 ON djq_task;
CREATE TRIGGER djq_task_dropped_v2 AFTER DELETE ON djq_task
    FOR EACH ROW WHEN (OLD.status IN (1, 2)
                       AND (OLD.canvas IS NOT NULL
                            OR starts_with(OLD.options, '{"canvas":{"immutable":')))
    EXECUTE FUNCTION djq_task_ended_v2();

-- Statement triggers fire after the row triggers of their statement.
DROP TRIGGER IF EXISTS djq_task_ended_statement ON djq_task;
DROP TRIGGER IF EXISTS djq_task_ended_statement_v2 ON djq_task;
CREATE TRIGGER djq_task_ended_statement_v2 AFTER UPDATE OF status ON djq_task
    FOR EACH STATEMENT EXECUTE FUNCTION djq_task_ended_statement_v2();

DROP TRIGGER IF EXISTS djq_task_dropped_statement ON djq_task;
DROP TRIGGER IF EXISTS djq_task_dropped_statement_v2 ON djq_task;
CREATE TRIGGER djq_task_dropped_statement_v2 AFTER DELETE ON djq_task
    FOR EACH STATEMENT EXECUTE FUNCTION djq_task_ended_statement_v2();
