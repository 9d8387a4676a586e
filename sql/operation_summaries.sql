{#- Per operation and table of a session: the rows the operation inserted, updated and deleted
    (distinct keys per kind of write; a key change counts as an update) and its first and
    last write in the session's order. An append-only table's versions are rows of their own. -#}
{% macro changes(t) %}{{ t.changes|qualified }}{% endmacro %}
{% for t in tables %}
{% if not loop.first %}
UNION ALL
{% endif %}
{% set key = t.pk_columns if not t.append_only else ['_cow_seq'] %}
SELECT c.operation_id, {{ t.name|literal }}::text AS table_name,
       count(DISTINCT ROW({{ key|columns('c') }})) FILTER (WHERE c._cow_kind = 'I') AS inserted,
       count(DISTINCT ROW({{ key|columns('c') }})) FILTER (WHERE c._cow_kind = 'U') AS updated,
       count(DISTINCT ROW({{ key|columns('c') }})) FILTER (WHERE c._cow_kind = 'D') AS deleted,
       min(c._cow_seq) AS first_write, max(c._cow_seq) AS last_write
FROM {{ changes(t) }} c
WHERE c.session_id = {{ session|catalog }} AND c._cow_seq > 0
GROUP BY c.operation_id
{% endfor %}
ORDER BY first_write
