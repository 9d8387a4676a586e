{#- The view of an append-only table (no key tells its rows apart; included by view.sql).
    A session only adds rows, so every base row is in every reader's view, and the session's
    visible rows come on top: two arms, no anti-join. The change arm is gated by a one-time
    filter, so without a session it is not even scanned. In a subquery to keep the
    security_barrier (see view.sql). -#}
{% from '_macros.sql' import visible %}
CREATE VIEW {{ t.view|qualified }} WITH (security_barrier) AS
SELECT {{ t.column_names|columns('merged') }} FROM (
SELECT {{ t.column_names|columns('b') }}
FROM {{ t.base|qualified }} b
UNION ALL
SELECT {{ t.column_names|columns('c') }}
FROM {{ t.changes|qualified }} c
WHERE agentcow.session_id() IS NOT NULL
  AND c.session_id = agentcow.session_id()
  AND {{ visible('c') }}
) merged
