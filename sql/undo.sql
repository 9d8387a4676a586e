{#- Undoes committed history rows (ids: count of them) of a session, in one block with the
    commit of its undo session (see agentcow/undo.py). First, one version per key goes into
    each change table under the undo session: the row before the earliest chosen commit of the
    key (a D version when there was none), with the row after the latest one as its baseline
    (_cow_old; NULL when the commit removed the row). ``commit`` (sql/commit.sql for the undo
    session) then checks conflicts against that baseline, merges, orders and applies as any
    commit does. Last, the rows are marked undone (refused when another undo took some
    meanwhile) and the undo recorded in the registry. Operators and functions resolve in
    pg_catalog only throughout; the undo session's lock is held from the start, so no write
    can join its versions. -#}
DECLARE
    _cow_caller_path text := pg_catalog.current_setting('search_path');
    _cow_marked bigint;
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    PERFORM agentcow.lock_session({{ undo_session|catalog }}, false);
{% for t in tables %}
    INSERT INTO {{ t.changes|qualified }} AS c (session_id, operation_id, _cow_kind, {{ t.writable_columns|columns }}, _cow_old)
    SELECT {{ undo_session|catalog }}, {{ undo_operation|catalog }},
           CASE WHEN k.before IS NULL THEN 'D' WHEN k.after IS NULL THEN 'I' ELSE 'U' END,
           {{ t.writable_columns|columns('r') }},
           CASE WHEN k.after IS NOT NULL THEN pg_catalog.json_populate_record(NULL::{{ t.row_type|qualified }}, k.after) END
    FROM (SELECT DISTINCT ON (h.key) h.key,
                 pg_catalog.first_value(h.before) OVER w AS before,
                 pg_catalog.last_value(h.after) OVER w AS after
          FROM agentcow.history h
          WHERE h.history_id = ANY ({{ ids|catalog }})
            AND h.relation = {{ t.base|qualified|literal }}::pg_catalog.regclass::pg_catalog.oid
          WINDOW w AS (PARTITION BY h.key ORDER BY h.history_id
                       ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)) k
    CROSS JOIN LATERAL pg_catalog.json_populate_record(NULL::{{ t.row_type|qualified }}, coalesce(k.before, k.after)) r
    WHERE k.before::text IS DISTINCT FROM k.after::text;  -- a key the commits left as it was: nothing to restore
{% endfor %}
{{ commit }};
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    UPDATE agentcow.history h
    SET undone_at = pg_catalog.now(), undone_by = SESSION_USER, undo_session = {{ undo_session|catalog }}
    WHERE h.history_id = ANY ({{ ids|catalog }}) AND h.undone_at IS NULL;
    GET DIAGNOSTICS _cow_marked = ROW_COUNT;
    IF _cow_marked <> {{ count }} THEN
        RAISE EXCEPTION USING ERRCODE = 'serialization_failure', MESSAGE = {{ already_message|literal }},
            HINT = 'Another undo of the session took some of these rows meanwhile.';
    END IF;
    PERFORM agentcow.record_undo({{ session|catalog }}, {{ undo_session|catalog }},
        ARRAY[{% for t in tables %}{{ t.base|qualified|literal }}::pg_catalog.regclass::pg_catalog.oid{% if not loop.last %}, {% endif %}{% endfor %}]::pg_catalog.oid[]);
    PERFORM pg_catalog.set_config('search_path', _cow_caller_path, true);
END
