{#- The history a session's commits left in a schema's tables (the caller's tables only: row-
    level security), one JSON object per key and commit, oldest first. -#}
SELECT pg_catalog.jsonb_build_object(
           'history_id', h.history_id, 'table', h.table_name, 'key', h.key,
           'before', h.before, 'after', h.after, 'operations', pg_catalog.to_jsonb(h.operation_ids),
           'undone', h.undone_at IS NOT NULL)::text
FROM agentcow.history h
WHERE h.session_id = {{ session|catalog }} AND h.schema_name = {{ schema|literal }}
ORDER BY h.history_id
