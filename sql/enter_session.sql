{#- Entering a session. settings: (name, value) pairs, set transaction-locally in this one
    statement, for a caller that knows a transaction is open (no rows needed). Without them
    (the settings were made by SET LOCAL statements before): the session setting read back,
    which took only inside a transaction. Either way agentcow.refuse_shadowing raises when
    temporary objects on the connection shadow names the agent's SQL would use. -#}
{% if settings %}
SELECT {% for name, value in settings %}pg_catalog.set_config({{ name|literal }}, {{ value|literal }}, true), {% endfor %}
       agentcow.refuse_shadowing(pg_catalog.current_schemas(false))
{% else %}
SELECT pg_catalog.current_setting({{ name|literal }}, true),
       agentcow.refuse_shadowing(pg_catalog.current_schemas(false))
{% endif %}
