{#- Around a statement whose expressions PostgreSQL binds for good when it runs (a view's
    operators): pin resolves operators and functions in pg_catalog only, so that nothing an
    agent created in a schema on the owner's search_path (a closer match, such as an = for
    varchar) becomes part of the object; restore puts the caller's search_path back.
    path: another search_path to pin (a view twin's, twin.sql). -#}
{% if step == 'pin' %}
PERFORM pg_catalog.set_config('agentcow.caller_search_path', pg_catalog.current_setting('search_path'), true)
--;
PERFORM pg_catalog.set_config('search_path', {{ path|default('pg_catalog, pg_temp')|literal }}, true)
{% else %}
PERFORM pg_catalog.set_config('search_path', pg_catalog.current_setting('agentcow.caller_search_path'), true)
{% endif %}
