-- The COW tables of a schema that the current role may read through their views, with the
-- writes it may make there: what an agent is offered (agentcow.mcp). Only the kit's registry
-- names the relations looked at.
SELECT t.table_name::text,
       pg_catalog.has_table_privilege(v.oid, 'INSERT'),
       pg_catalog.has_table_privilege(v.oid, 'UPDATE'),
       pg_catalog.has_table_privilege(v.oid, 'DELETE')
FROM agentcow.cow_tables t
CROSS JOIN LATERAL (
    SELECT pg_catalog.to_regclass(pg_catalog.format('%I.%I',
        COALESCE(t.overlay_schema, t.schema_name), t.table_name))::oid AS oid
) v
WHERE t.schema_name = {{ schema|literal }}
  AND v.oid IS NOT NULL
  AND pg_catalog.has_table_privilege(v.oid, 'SELECT')
ORDER BY t.table_name
