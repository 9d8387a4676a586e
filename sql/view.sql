{#- The view that replaces the table. Three arms:
    1. no session: the base table alone (a one-time filter, so plans stay those of the table);
    2. in a session: base rows the session has not changed (anti-join on the primary key);
    3. in a session: the latest visible change of each key, unless it removed the row.
       DISTINCT ON finds it without a join (a join to later versions went quadratic when a
       session was newer than the statistics) and without a correlated subquery (which made
       every plan through the view parallel-restricted, sessions or not). A key in the outer
       query still reaches the change table's index: it is a DISTINCT ON column.
    The arms sit in a subquery: a bare UNION ALL view is flattened and loses security_barrier,
    which must keep a caller's functions from ever seeing other sessions' change rows.

    Arms 2 and 3 read the session's rows joined to the floor function's one row
    (floor_function.sql). The
    function is declared to return 1,000 rows, and the planner takes that declaration over
    any statistics. So, whatever the change table's statistics say (never analyzed, analyzed
    empty, analyzed while another session was large) and whenever the plan was made (in the
    session, outside it, generic), the planner sees at least 1,000 session rows behind every
    read of the change table: a plan that would read them again for each row of a large input
    (a nested loop over a sequential scan, or over a Materialize) costs it at least 1,000
    tuples per row, and it hashes or sorts them once instead. (A join, not a UNION ALL with
    an empty function: an Append of small inputs let PostgreSQL 16+ hash the base table in a
    parallel right anti-join.)
    Tenant isolation (t.tenancy.column): arm 2 serves sessions bound to no tenant, and a
    fourth arm, sessions bound to one: its base rows are those of the tenant, an index
    condition on the tenant column (statement_tenant: read once per statement). Both arms
    are gated by one-time filters, so each statement runs one of them. The session's own
    versions are its tenant's (the write trigger refuses any other), and commit checks again.
    An append-only table (no key) has a view of its own: view_append.sql.
    replace: replacing the view a table already has (upgrades), whose grants stay. -#}
{% from '_macros.sql' import match, visible, any_index, statement_tenant %}
{% set view = t.view|qualified %}
{% if t.append_only %}
{% include 'view_append.sql' %}
{% else %}
{% set floor = t.function(names.floor_function)|qualified %}
{#- the session's visible versions, joined to the floor's one row -#}
{% set session_rows %}(SELECT c._cow_kind, c._cow_seq, {{ t.column_names|columns('c') }}
      FROM {{ t.changes|qualified }} c CROSS JOIN {{ floor|catalog }}() f
      WHERE c.session_id = agentcow.session_id() AND {{ any_index('c') }}
        AND {{ visible('c') }}){% endset %}
CREATE {% if replace %}OR REPLACE {% endif %}VIEW {{ view|catalog }} WITH (security_barrier) AS
SELECT {{ t.column_names|columns('merged') }} FROM (
SELECT {{ t.column_names|columns('b') }}
FROM {{ t.base|qualified }} b
WHERE agentcow.session_id() IS NULL
UNION ALL
SELECT {{ t.column_names|columns('b') }}
FROM {{ t.base|qualified }} b
WHERE agentcow.session_id() IS NOT NULL
{% if t.tenancy.column %}
  AND {{ statement_tenant(t) }} IS NULL
{% endif %}
  AND NOT EXISTS (SELECT FROM {{ session_rows }} c
                  WHERE {{ match('c', 'b', t.pk_columns) }})
UNION ALL
{% if t.tenancy.column %}
SELECT {{ t.column_names|columns('b') }}
FROM {{ t.base|qualified }} b
WHERE agentcow.session_id() IS NOT NULL AND {{ statement_tenant(t) }} IS NOT NULL
  AND b.{{ t.tenancy.column|ident }} = {{ statement_tenant(t) }}
  AND NOT EXISTS (SELECT FROM {{ session_rows }} c
                  WHERE {{ match('c', 'b', t.pk_columns) }})
UNION ALL
{% endif %}
SELECT {{ t.column_names|columns('cur') }}
FROM (SELECT DISTINCT ON ({{ t.pk_columns|columns('c') }}) c._cow_kind, {{ t.column_names|columns('c') }}
      FROM {{ session_rows }} c
      ORDER BY {{ t.pk_columns|columns('c') }}, c._cow_seq DESC) cur
WHERE cur._cow_kind IN ('I', 'U')
) merged
{% endif %}
--;
{% include 'view_defaults.sql' %}

{% if not replace %}
PERFORM agentcow.revoke_grants({{ view|literal }}::regclass)
{% endif %}
