{#- Entering a session. settings: (name, value) pairs, set transaction-locally in this one
    statement, for a caller that knows a transaction is open (no rows needed). Without them
    (the settings were made by SET LOCAL statements before): the session setting read back,
    which took only inside a transaction. Either way the session is recorded in the registry
    on first use and its tenant binding checked (agentcow.enter_session: tenant, label), and
    the transaction's search_path becomes the session's (agentcow.session_search_path: each
    overlay schema before its schema), which refuses when temporary objects on the connection
    shadow names the agent's SQL would use, or when an overlay view is missing. -#}
{% set search_path -%}
pg_catalog.set_config('search_path', coalesce(agentcow.session_search_path(pg_catalog.current_schemas(false)), pg_catalog.current_setting('search_path')), true)
{%- endset %}
{% macro text_or_null(value) %}{% if value is none %}NULL{% else %}{{ value|literal }}{% endif %}{% endmacro %}
{% set register -%}
agentcow.enter_session(NULLIF(pg_catalog.current_setting('app.session_id', true), '')::pg_catalog.uuid, {{ text_or_null(tenant) }}, {{ text_or_null(label) }})
{%- endset %}
{% if settings %}
SELECT {% for name, value in settings %}pg_catalog.set_config({{ name|literal }}, {{ value|literal }}, true), {% endfor %}
       {{ register }}, {{ search_path }}
{% else %}
SELECT pg_catalog.current_setting({{ name|literal }}, true),
       {{ register }}, {{ search_path }}
{% endif %}
