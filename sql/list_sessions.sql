{#- The sessions a reviewer may see (agentcow.session_info) and those that hold versions in
    the given change tables without being in the registry (entered with raw settings), one
    JSON object each: the registry's columns and the versions pending per table. A recorded
    state that pending versions contradict (the agent wrote again after a commit or discard)
    reads as the session stands. Filters: states (text literals), tenant, older_than (an
    interval: last entered before now() minus it; sessions never entered do not match). -#}
SELECT pg_catalog.jsonb_build_object(
           'session_id', coalesce(r.session_id, p.session_id),
           'registered', r.session_id IS NOT NULL,
           'tenant', r.tenant, 'label', r.label,
           'created_at', r.created_at, 'last_active_at', r.last_active_at,
           'state', s.state,
           'committed_by', r.committed_by, 'committed_at', r.committed_at,
           'undone_by', r.undone_by, 'undone_at', r.undone_at,
           'pending', coalesce(p.pending, '{}'))::text
FROM agentcow.session_info() r
FULL JOIN (SELECT v.session_id, pg_catalog.jsonb_object_agg(v.table_name, v.versions) AS pending
           FROM ({% for t in tables %}{% if not loop.first %}
                 UNION ALL {% endif %}SELECT c.session_id, {{ t.name|literal }}::text AS table_name, pg_catalog.count(*) AS versions
                 FROM {{ t.changes|qualified }} c WHERE c._cow_seq > 0 GROUP BY c.session_id{% endfor %}{% if not tables %}SELECT NULL::pg_catalog.uuid, NULL::text, NULL::bigint WHERE false{% endif %}) v
           GROUP BY v.session_id) p ON p.session_id = r.session_id
CROSS JOIN LATERAL (SELECT CASE
           WHEN r.session_id IS NULL THEN 'open'
           WHEN p.session_id IS NOT NULL AND r.state IN ('committed', 'undone') THEN 'partially_committed'
           WHEN p.session_id IS NOT NULL AND r.state = 'discarded' THEN 'open'
           ELSE r.state END AS state) s
WHERE true
{% if states is not none %}
  AND s.state = ANY (ARRAY[{% for state in states %}{{ state|literal }}{% if not loop.last %}, {% endif %}{% endfor %}]::text[])
{% endif %}
{% if tenant is not none %}
  AND r.tenant = {{ tenant|literal }}
{% endif %}
{% if older_than is not none %}
  AND r.last_active_at < pg_catalog.now() - {{ older_than|literal }}::pg_catalog.interval
{% endif %}
ORDER BY r.created_at NULLS LAST, 1
