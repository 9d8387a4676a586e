-- The overlay-layout tables: (schema, table, overlay schema, the table's oid).
SELECT t.schema_name::text, t.table_name::text, t.overlay_schema::text, c.oid::bigint
FROM agentcow.cow_tables t
JOIN pg_catalog.pg_namespace n ON n.nspname = t.schema_name
JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = t.base_name
WHERE t.overlay_schema IS NOT NULL
ORDER BY 1, 2
