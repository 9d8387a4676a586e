-- Plain tables of a schema that are not agentcow's own base or change tables.
SELECT c.relname::text
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = {{ schema|literal }}
  AND c.relkind = 'r'
  AND NOT c.relispartition
  AND NOT EXISTS (SELECT FROM agentcow.cow_tables t
                  WHERE t.schema_name = n.nspname AND c.relname IN (t.base_name, t.changes_name))
ORDER BY c.relname
