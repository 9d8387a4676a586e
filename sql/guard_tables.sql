-- Every COW table, for the SQL guard: (schema, table, overlay schema or NULL).
SELECT t.schema_name::text, t.table_name::text, t.overlay_schema::text
FROM agentcow.cow_tables t
ORDER BY 1, 2
