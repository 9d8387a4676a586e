{#- Forgets a session's changes (or the chosen operations' changes) in the given tables, under
    the session's lock (see _session_state.sql), so that exactly the versions the caller
    planned for go, and a commit of the session never runs at the same time. -#}
{% from '_session_state.sql' import begin_exclusive, end_exclusive %}
{% from '_history.sql' import end_session %}
DECLARE
    _cow_path text := pg_catalog.current_setting('search_path');
BEGIN
{{ begin_exclusive(session, watched, expected, [], changed_message) }}
{% for t in tables %}
    DELETE FROM {{ t.changes|qualified }} c
    WHERE c.session_id = {{ session|catalog }} AND c._cow_seq > 0{% if operations is not none %} AND c.operation_id = ANY ({{ operations|catalog }}){% endif %};
{% endfor %}
{{ end_session(session, tables, false) }}
{{ end_exclusive(tables, reclaim) }}
END
