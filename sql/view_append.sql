{#- The view of an append-only table (no key tells its rows apart; included by view.sql).
    A session only adds rows, so every base row is in every reader's view, and the session's
    visible rows come on top: two arms, no anti-join. The change arm is gated by a one-time
    filter, so without a session it is not even scanned. In a subquery to keep the
    security_barrier (see view.sql). Tenant isolation: the base arm is split as in view.sql,
    for readers bound to no tenant (no session included) and for the session's tenant. -#}
{% from '_macros.sql' import visible, statement_tenant %}
CREATE VIEW {{ t.view|qualified }} WITH (security_barrier) AS
SELECT {{ t.column_names|columns('merged') }} FROM (
SELECT {{ t.column_names|columns('b') }}
FROM {{ t.base|qualified }} b
{% if t.tenancy.column %}
WHERE {{ statement_tenant(t) }} IS NULL
UNION ALL
SELECT {{ t.column_names|columns('b') }}
FROM {{ t.base|qualified }} b
WHERE {{ statement_tenant(t) }} IS NOT NULL
  AND b.{{ t.tenancy.column|ident }} = {{ statement_tenant(t) }}
{% endif %}
UNION ALL
SELECT {{ t.column_names|columns('c') }}
FROM {{ t.changes|qualified }} c
WHERE agentcow.session_id() IS NOT NULL
  AND c.session_id = agentcow.session_id()
  AND {{ visible('c') }}
) merged
