{#- Limits of one session (session) or defaults of one login role (role; 'public': every
    role), through the kit's function: the tables are out of every other role's reach. -#}
{% macro interval_or_null(value) %}{% if value is none %}NULL{% else %}{{ value|literal }}::pg_catalog.interval{% endif %}{% endmacro %}
SELECT agentcow.set_limits(
    {% if session is none %}NULL{% else %}{{ session }}{% endif %},
    {% if role is none %}NULL{% else %}{{ role|literal }}::pg_catalog.name{% endif %},
    {% if max_rows is none %}NULL{% else %}{{ max_rows }}::pg_catalog.int8{% endif %},
    {{ interval_or_null(statement_timeout) }}, {{ interval_or_null(lock_timeout) }},
    {{ interval_or_null(idle_timeout) }})
