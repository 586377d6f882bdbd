
CREATE OR REPLACE FUNCTION djq_pyrepr(v json) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    s text;
BEGIN
    CASE json_typeof(v)
    WHEN 'string' THEN
        s := v #>> '{}';
        s := replace(s, E'\\', E'\\\\');
        s := replace(replace(replace(s, E'\n', E'\\n'), E'\r', E'\\r'), E'\t', E'\\t');
        IF strpos(s, '''') > 0 AND strpos(s, '"') = 0 THEN
            RETURN '"' || s || '"';
        END IF;
        RETURN '''' || replace(s, '''', E'\\''') || '''';
    WHEN 'number' THEN
        RETURN v::text;
    WHEN 'boolean' THEN
        RETURN CASE WHEN v::text = 'true' THEN 'True' ELSE 'False' END;
    WHEN 'array' THEN
        RETURN '[' || coalesce((SELECT string_agg(djq_pyrepr(e), ', ' ORDER BY n)
                                FROM json_array_elements(v) WITH ORDINALITY AS a(e, n)), '')
            || ']';
    WHEN 'object' THEN
        RETURN '{' || coalesce((SELECT string_agg(djq_pyrepr(to_json(k)) || ': '
                                                  || djq_pyrepr(x), ', ' ORDER BY n)
                                FROM json_each(v) WITH ORDINALITY AS a(k, x, n)), '')
            || '}';
    ELSE
        RETURN 'None';
    END CASE;
END $$;

-- repr() of a stored exception ({"exc_type", "exc_message", "exc_module"}), as Celery
-- puts it in a ChordError: ValueError('boom').
CREATE OR REPLACE FUNCTION djq_exc_repr(result text) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    j json;
    args text := '';
BEGIN
    j := result::json;
    IF json_typeof(j -> 'exc_message') = 'array' THEN
        SELECT coalesce(string_agg(djq_pyrepr(e), ', ' ORDER BY n), '') INTO args
        FROM json_array_elements(j -> 'exc_message') WITH ORDINALITY AS a(e, n);
    ELSIF j -> 'exc_message' IS NOT NULL THEN
        args := djq_pyrepr(j -> 'exc_message');
    END IF;
    RETURN coalesce(j ->> 'exc_type', 'Exception') || '(' || args || ')';
EXCEPTION WHEN OTHERS THEN
    -- Only on a chord's failure path; never let a strange payload stop the statement.
    RETURN coalesce(left(result, 200), 'None');
END $$;

-- args (a JSON list as text) with one more first element, built as text so that the
-- keys of stored objects keep their order.
CREATE OR REPLACE FUNCTION djq_prepend_arg(head text, args text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN args IS NULL OR ltrim(args) NOT LIKE '[%' THEN '[' || head || ']'
        WHEN btrim(substr(ltrim(args), 2)) = ']' THEN '[' || head || ']'
        ELSE '[' || head || ',' || substr(ltrim(args), 2)
    END
$$;

CREATE OR REPLACE FUNCTION djq_notify_done(ids uuid[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    i int := 1;
    n int := coalesce(cardinality(ids), 0);
BEGIN
    -- 200 ids of 36 characters and their commas stay under NOTIFY's 8000 bytes.
    WHILE i <= n LOOP
        PERFORM pg_notify('djq_done', array_to_string(ids[i:i + 199], ','));
        i := i + 200;
    END LOOP;
END $$;

-- The deferred rows waiting on `waited` (a task id or a chord's group id) become
-- WAITING, with `head` (JSON text) prepended to their args unless they are immutable.
CREATE OR REPLACE FUNCTION djq_canvas_start(waited uuid, head text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    queues text[];
    q text;
BEGIN
    WITH s AS (
        UPDATE djq_task t SET
            status = 0,
            args = CASE WHEN starts_with(t.options, '{"canvas":{"immutable":true')
                        THEN t.args ELSE djq_prepend_arg(head, t.args) END,
            run_at = coalesce(now() + make_interval(secs => substring(t.options from
                '^\{"canvas":\{"immutable":(?:true|false),"countdown":([-+.0-9eE]+)')::float8),
                greatest(t.run_at, now())),
            eta = coalesce(now() + make_interval(secs => substring(t.options from
                '^\{"canvas":\{"immutable":(?:true|false),"countdown":([-+.0-9eE]+)')::float8),
                t.eta)
        WHERE t.status = 4 AND t.waiting_on = waited
        RETURNING t.queue
    )
    SELECT array_agg(DISTINCT s.queue) INTO queues FROM s;
    IF queues IS NOT NULL THEN
        FOREACH q IN ARRAY queues LOOP
            PERFORM pg_notify('djq_enqueue', q);
        END LOOP;
    END IF;
END $$;

-- Every deferred row that waits, directly or down a chain, on `waited` ends FAILURE
-- with this error. Rows that belong to a chord count down through the trigger.
CREATE OR REPLACE FUNCTION djq_canvas_fail(waited uuid, res text, tb text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    ids uuid[];
BEGIN
    WITH RECURSIVE dep(id) AS (
        SELECT d.id FROM djq_task d WHERE d.status = 4 AND d.waiting_on = waited
        UNION
        SELECT t.id FROM djq_task t JOIN dep ON t.waiting_on = dep.id WHERE t.status = 4
    ), f AS (
        UPDATE djq_task t SET status = 3, state = 'FAILURE', result = res, traceback = tb,
            date_done = now()
        FROM dep WHERE t.id = dep.id AND t.status = 4
        RETURNING t.id
    )
    SELECT array_agg(f.id) INTO ids FROM f;
    PERFORM djq_notify_done(ids);
END $$;

-- A chord's members that ended: one less to wait for each. At 0 the rows waiting on the
-- chord start with the members' results in member order, or fail with ChordError
-- naming the first member (in order) that did not succeed.
CREATE OR REPLACE FUNCTION djq_chord_count(grp uuid, ended uuid[]) RETURNS void
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
        PERFORM djq_canvas_fail(grp, json_build_object(
            'exc_type', 'ChordError',
            'exc_message', json_build_array(
                'Dependency ' || culprit.id::text || ' raised ' || djq_exc_repr(culprit.result)),
            'exc_module', 'djq.exceptions')::text, culprit.traceback);
    ELSE
        SELECT '[' || coalesce(string_agg(coalesce(t.result, 'null'), ',' ORDER BY m.n), '')
            || ']' INTO joined
        FROM unnest(members_) WITH ORDINALITY AS m(id, n) LEFT JOIN djq_task t ON t.id = m.id;
        PERFORM djq_canvas_start(grp, joined);
    END IF;
END $$;

CREATE OR REPLACE FUNCTION djq_canvas_advance(done_id uuid, grp uuid, ok boolean, res text,
                                              tb text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM djq_task WHERE status = 4 AND waiting_on = done_id) THEN
        IF ok THEN
            PERFORM djq_canvas_start(done_id, res);
        ELSE
            PERFORM djq_canvas_fail(done_id, res, tb);
        END IF;
    END IF;
    IF grp IS NOT NULL THEN
        -- Counted when the statement ends (djq_task_ended_statement), for all its rows
        -- at once, chord by chord in group id order: two workers ending members of the
        -- same chords lock their counters in the same order, and never deadlock.
        PERFORM set_config('djq.ended', coalesce(current_setting('djq.ended', true), '')
                           || grp::text || ' ' || done_id::text || ',', true);
    END IF;
END $$;

CREATE OR REPLACE FUNCTION djq_task_ended() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        -- A running task whose result is not kept (ignore_result): it ended, its value
        -- is not known. Canvas steps that others wait on always keep their result.
        PERFORM djq_canvas_advance(OLD.id, OLD.group_id, true, 'null', NULL);
    ELSE
        PERFORM djq_canvas_advance(NEW.id, NEW.group_id, NEW.state = 'SUCCESS',
                                   coalesce(NEW.result, 'null'), NEW.traceback);
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION djq_task_ended_statement() RETURNS trigger
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
        PERFORM djq_chord_count(c.grp, c.ended);
    END LOOP;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS djq_task_ended ON djq_task;
-- Only canvas rows (their options start with {"canvas":) can have rows waiting on them
-- or belong to a chord: other tasks end without calling anything.
CREATE TRIGGER djq_task_ended AFTER UPDATE OF status ON djq_task
    FOR EACH ROW WHEN (NEW.status = 3 AND OLD.status <> 3
                       AND starts_with(NEW.options, '{"canvas":'))
    EXECUTE FUNCTION djq_task_ended();

DROP TRIGGER IF EXISTS djq_task_dropped ON djq_task;
CREATE TRIGGER djq_task_dropped AFTER DELETE ON djq_task
    FOR EACH ROW WHEN (OLD.status IN (1, 2) AND starts_with(OLD.options, '{"canvas":'))
    EXECUTE FUNCTION djq_task_ended();

-- Statement triggers fire after the row triggers of their statement.
DROP TRIGGER IF EXISTS djq_task_ended_statement ON djq_task;
CREATE TRIGGER djq_task_ended_statement AFTER UPDATE OF status ON djq_task
    FOR EACH STATEMENT EXECUTE FUNCTION djq_task_ended_statement();

DROP TRIGGER IF EXISTS djq_task_dropped_statement ON djq_task;
CREATE TRIGGER djq_task_dropped_statement AFTER DELETE ON djq_task
    FOR EACH STATEMENT EXECUTE FUNCTION djq_task_ended_statement();
