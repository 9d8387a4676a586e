-- The overlay schemas in use: (schema, overlay schema) pairs.
SELECT DISTINCT t.schema_name::text, t.overlay_schema::text
FROM agentcow.cow_tables t
WHERE t.overlay_schema IS NOT NULL
