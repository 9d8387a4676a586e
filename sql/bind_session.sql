{#- Binding the current transaction to a session and operation (agentcow.bind_session), and
    taking the session's search_path as enter_session.sql does. Every value is a parameter:
    placeholders are the driver's ($1.. or %s), so that no id and no key appears in any
    statement text the server shows. -#}
SELECT agentcow.bind_session({{ placeholders[0]|catalog }}::pg_catalog.uuid, {{ placeholders[1]|catalog }}::pg_catalog.uuid,
                             {{ placeholders[2]|catalog }}::pg_catalog.text, {{ placeholders[3]|catalog }}::pg_catalog.text,
                             {{ placeholders[4]|catalog }}::pg_catalog.text),
       pg_catalog.set_config('search_path', coalesce(agentcow.session_search_path(pg_catalog.current_schemas(false)), pg_catalog.current_setting('search_path')), true)
