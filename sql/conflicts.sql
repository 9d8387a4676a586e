{#- The conflicts a commit of the chosen operations (all when operations is none) would meet;
    row images as JSON text, so every driver returns them alike. -#}
{% from '_conflicts.sql' import conflict_rows %}
SELECT k.table_name, k.key::text, k.base_then::text, k.base_now::text, k.session_row::text,
       k.columns, k.mergeable
FROM (
{% for t in tables %}
{% if not loop.first %}
UNION ALL
{% endif %}
{{ conflict_rows(t, session, operations) }}
{% endfor %}
) k
ORDER BY k.table_name, k._cow_seq
