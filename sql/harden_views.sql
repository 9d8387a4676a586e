{#- The COW tables of a schema: (schema of the view, view name), overlay or not. -#}
SELECT coalesce(t.overlay_schema, t.schema_name)::text, t.table_name::text
FROM agentcow.cow_tables t
WHERE t.schema_name = {{ schema|literal }}
ORDER BY t.table_name
