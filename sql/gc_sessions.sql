{#- Discards abandoned sessions (agentcow.discard_idle_sessions): one row per session and
    table with the versions dropped. -#}
SELECT d.session_id, d.table_name, d.versions
FROM agentcow.discard_idle_sessions({{ schema|literal }}, {{ older_than|literal }}::pg_catalog.interval) d
