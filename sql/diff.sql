{#- A session's changes as a reviewer sees them: per key of each table, the stored row now
    (old) and the row the commit would write (new) from the latest chosen version, with the
    operations that wrote the key; keys that end as the base has them (inserted then
    deleted, updated back) are left out, as the commit leaves them alone (rows compared as
    text, as the commit does). Rows as JSON (decoded by column type in Python); a last row
    (kind '#') carries the approval fingerprint of the chosen versions, read in the same
    statement, so it covers exactly what the rows show. Rows of an append-only table are
    inserts with an empty key. seq orders the rows in write order. -#}
{% from '_macros.sql' import match, key_index %}
{% from '_versions.sql' import chosen, latest, approval_digest %}
{% set kit_columns = "'{session_id,operation_id,_cow_seq,_cow_kind,_cow_old}'::pg_catalog.text[]" %}
{% for t in tables %}
{% if t.append_only %}
SELECT {{ t.name|literal }}::text AS table_name, 'INSERT'::text AS kind, '{}'::text AS key,
       NULL::text AS old, (pg_catalog.to_jsonb(c.*) OPERATOR(pg_catalog.-) {{ kit_columns|catalog }})::text AS new,
       ARRAY[c.operation_id] AS operations, c._cow_seq AS seq
FROM {{ t.changes|qualified }} c
WHERE {{ chosen('c', session, operations) }}
{% else %}
SELECT {{ t.name|literal }}::text, d.kind, d.key, d.old, d.new, d.operations, d.seq
FROM (SELECT CASE WHEN c._cow_kind IN ('D', 'M') THEN 'DELETE'
                  WHEN b.{{ t.pk_columns[0]|ident }} IS NULL THEN 'INSERT' ELSE 'UPDATE' END AS kind,
             pg_catalog.jsonb_build_object({% for k in t.pk_columns %}{{ k|literal }}::text, c.{{ k|ident }}{% if not loop.last %}, {% endif %}{% endfor %})::text AS key,
             CASE WHEN b.{{ t.pk_columns[0]|ident }} IS NOT NULL THEN pg_catalog.to_jsonb(b.*)::text END AS old,
             CASE WHEN c._cow_kind IN ('I', 'U')
                  THEN (pg_catalog.to_jsonb(c.*) OPERATOR(pg_catalog.-) {{ kit_columns|catalog }})::text END AS new,
             ARRAY(SELECT o.operation_id FROM {{ t.changes|qualified }} o
                   WHERE {{ chosen('o', session, operations) }} AND {{ match('o', 'c', t.pk_columns) }} AND {{ key_index('o') }}
                   GROUP BY o.operation_id ORDER BY pg_catalog.min(o._cow_seq)) AS operations,
             c._cow_seq AS seq,
             c._cow_kind IN ('I', 'U') AND b.{{ t.pk_columns[0]|ident }} IS NOT NULL
                 AND ROW({{ t.writable_columns|columns('b') }})::text IS NOT DISTINCT FROM ROW({{ t.writable_columns|columns('c') }})::text AS unchanged
      FROM {{ t.changes|qualified }} c
      LEFT JOIN {{ t.base|qualified }} b ON {{ match('b', 'c', t.pk_columns) }}
      WHERE {{ chosen('c', session, operations) }} AND {{ latest(t, 'c', session, operations) }}) d
WHERE NOT d.unchanged AND (d.kind <> 'DELETE' OR d.old IS NOT NULL)
{% endif %}
UNION ALL
{% endfor %}
SELECT NULL, '#', NULL, NULL, {{ approval_digest(tables, session, operations) }}, NULL, NULL
ORDER BY 7
