{#- The row rules of one table over its rows of a review. rules: (predicate, kinds) pairs,
    each predicate one SQL expression (checked by agentcow.review.policy), each applying to
    the kinds of change listed. Per row, its position (from 1) and each rule's result: true
    when the predicate holds, false when it is false or NULL, NULL when the rule does not
    apply to the row's kind. "old" is the stored row (of the base table), "new" the
    session's (of the merged view, read in the session): columns by name, as in a trigger.
    keys: a JSON array with an object per row, its key columns and "_cow_kind" its kind of
    change, in the review's order. An append-only table's rows have no key: they are its
    chosen versions (session, operations), in write order, with no "old". Run through
    agentcow.pinned_query (operators and functions of pg_catalog only). -#}
{% from '_macros.sql' import match %}
{% from '_versions.sql' import chosen %}
{% macro results(position, kind) -%}
SELECT {{ position|catalog }}{% for predicate, kinds in rules %},
       CASE WHEN {{ kind|catalog }} IN ({% for k in kinds %}{{ k|literal }}{% if not loop.last %}, {% endif %}{% endfor %}) THEN (
{{ predicate }}
       ) IS TRUE END
{% endfor %}
{%- endmacro %}
{% if t.append_only %}
{{ results('pg_catalog.row_number() OVER (ORDER BY "new"._cow_seq)', "'INSERT'") }}
FROM (SELECT c._cow_seq, {{ t.column_names|columns('c') }}
      FROM {{ t.changes|qualified }} c WHERE {{ chosen('c', session, operations) }}) AS "new"
LEFT JOIN {{ t.base|qualified }} AS "old" ON false
{% else %}
{{ results('e.i', "e.j OPERATOR(pg_catalog.->>) '_cow_kind'") }}
FROM pg_catalog.jsonb_array_elements({{ keys|literal }}::pg_catalog.jsonb) WITH ORDINALITY AS e(j, i)
CROSS JOIN LATERAL pg_catalog.jsonb_populate_record(NULL::{{ t.base|qualified }}, e.j) AS k
LEFT JOIN {{ t.base|qualified }} AS "old" ON {{ match('"old"', 'k', t.pk_columns) }}
LEFT JOIN {{ t.view|qualified }} AS "new" ON {{ match('"new"', 'k', t.pk_columns) }}
{% endif %}
