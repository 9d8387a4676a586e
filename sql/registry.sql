-- COW-enabled tables of a schema (or one table), as recorded at enable time.
SELECT t.table_name::text, t.base_name::text, t.changes_name::text,
       t.pk_cols::text[], t.deferrable_fks::text[], t.layout,
       t.overlay_schema::text, t.tenant_column::text, t.tenant_read_only
FROM agentcow.cow_tables t
WHERE t.schema_name = {{ schema|literal }}
{% if table is not none %}
  AND t.table_name = {{ table|literal }}
{% endif %}
ORDER BY t.table_name
