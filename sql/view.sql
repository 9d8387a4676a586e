{#- The view that replaces the table. Three arms:
    1. no session: the base table alone (a one-time filter, so plans stay those of the table);
    2. in a session: base rows the session has not changed (anti-join on the primary key);
    3. in a session: the latest visible change of each key, unless it removed the row.
       DISTINCT ON finds it without a join (a join to later versions went quadratic when a
       session was newer than the statistics) and without a correlated subquery (which made
       every plan through the view parallel-restricted, sessions or not). A key in the outer
       query still reaches the change table's index: it is a DISTINCT ON column.
    The arms sit in a subquery: a bare UNION ALL view is flattened and loses security_barrier,
    which must keep a caller's functions from ever seeing other sessions' change rows. -#}
{% from '_macros.sql' import match, visible %}
{% if t.append_only %}
{% include 'view_append.sql' %}
{% else %}
CREATE VIEW {{ t.schema|ident }}.{{ t.name|ident }} WITH (security_barrier) AS
SELECT {{ t.column_names|columns('merged') }} FROM (
SELECT {{ t.column_names|columns('b') }}
FROM {{ t.schema|ident }}.{{ t.base_name|ident }} b
WHERE agentcow.session_id() IS NULL
UNION ALL
SELECT {{ t.column_names|columns('b') }}
FROM {{ t.schema|ident }}.{{ t.base_name|ident }} b
WHERE agentcow.session_id() IS NOT NULL
  AND NOT EXISTS (SELECT FROM {{ t.schema|ident }}.{{ t.changes_name|ident }} c
                  WHERE c.session_id = agentcow.session_id()
                    AND {{ match('c', 'b', t.pk_columns) }}
                    AND {{ visible('c') }})
UNION ALL
SELECT {{ t.column_names|columns('cur') }}
FROM (SELECT DISTINCT ON ({{ t.pk_columns|columns('c') }}) c._cow_kind, {{ t.column_names|columns('c') }}
      FROM {{ t.schema|ident }}.{{ t.changes_name|ident }} c
      WHERE c.session_id = agentcow.session_id()
        AND {{ visible('c') }}
      ORDER BY {{ t.pk_columns|columns('c') }}, c._cow_seq DESC) cur
WHERE cur._cow_kind IN ('I', 'U')
) merged
{% endif %}
--;
{% include 'view_defaults.sql' %}

PERFORM agentcow.revoke_grants({{ (t.schema|ident ~ '.' ~ t.name|ident)|literal }}::regclass)
