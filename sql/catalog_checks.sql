-- The table's CHECK constraints that PostgreSQL enforces, by name (the order in which it
-- evaluates them), with their expressions deparsed while only pg_catalog is on the
-- search_path: every other function, operator, type or collation they use then comes out
-- schema-qualified, as the trigger functions (fixed search_path) must read them. The
-- caller's search_path is put back before the statement ends (each step reads the one
-- before it, which fixes their order).
WITH saved AS MATERIALIZED (
    SELECT pg_catalog.current_setting('search_path') AS path
), narrowed AS MATERIALIZED (
    SELECT pg_catalog.set_config('search_path', 'pg_catalog', true) AS path FROM saved
), checks AS MATERIALIZED (
    SELECT c.conname::text AS name,
           CASE WHEN n.path IS NOT NULL THEN pg_catalog.pg_get_expr(c.conbin, c.conrelid) END AS expression
    FROM pg_catalog.pg_constraint c, narrowed n
    WHERE c.conrelid = {{ oid }}::pg_catalog.oid AND c.contype = 'c'
{% if server_version >= 180000 %}
      AND c.conenforced
{% endif %}
), restored AS MATERIALIZED (
    SELECT pg_catalog.set_config('search_path', s.path, true) AS path
    FROM saved s, (SELECT count(*) FROM checks) AS n
)
SELECT checks.name, checks.expression
FROM checks, restored
ORDER BY checks.name COLLATE "C"
