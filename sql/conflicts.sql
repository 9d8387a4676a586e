{#- The conflicts a commit of the chosen operations (all when operations is none) would meet,
    one JSON object each (as in the commit's error DETAIL), so every driver returns them alike. -#}
{% from '_conflicts.sql' import conflict_rows %}
SELECT (pg_catalog.to_jsonb(k) OPERATOR(pg_catalog.-) '_cow_seq'::text)::text
FROM (
{% for t in tables %}
{% if not loop.first %}
UNION ALL
{% endif %}
{{ conflict_rows(t, session, operations) }}
{% endfor %}
) k
ORDER BY k.table_name, k._cow_seq
