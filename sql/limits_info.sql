{#- A session's limits (for the requests of login role role; none: a role without defaults) and the rows it wrote while
    limited; times in microseconds, the same in every driver. -#}
SELECT l.max_rows,
       (EXTRACT(epoch FROM l.statement_timeout) * 1000000)::pg_catalog.int8,
       (EXTRACT(epoch FROM l.lock_timeout) * 1000000)::pg_catalog.int8,
       (EXTRACT(epoch FROM l.idle_timeout) * 1000000)::pg_catalog.int8,
       l.rows_written
FROM agentcow.limits_info({{ session }}, {% if role is none %}NULL{% else %}{{ role|literal }}{% endif %}) AS l
