{#- Entering a session. settings: (name, value) pairs, set transaction-locally in this one
    statement, for a caller that knows a transaction is open (no rows needed). Without them
    (the settings were made by SET LOCAL statements before): the session setting read back,
    which took only inside a transaction. Either way the transaction's search_path becomes
    the session's (agentcow.session_search_path: each overlay schema before its schema), which
    refuses when temporary objects on the connection shadow names the agent's SQL would use,
    or when an overlay view is missing. -#}
{% set search_path -%}
pg_catalog.set_config('search_path', coalesce(agentcow.session_search_path(pg_catalog.current_schemas(false)), pg_catalog.current_setting('search_path')), true)
{%- endset %}
{% if settings %}
SELECT {% for name, value in settings %}pg_catalog.set_config({{ name|literal }}, {{ value|literal }}, true), {% endfor %}
       {{ search_path }}
{% else %}
SELECT pg_catalog.current_setting({{ name|literal }}, true),
       {{ search_path }}
{% endif %}
