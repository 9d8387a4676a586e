-- The table's own constraints (primary key, unique, exclusion, outgoing foreign keys) and the
-- foreign keys of other tables that reference it (CHECK constraints: catalog_checks.sql). Relation names are mapped back to
-- the logical (view) name when the relation is a COW base table.
-- A self-referencing foreign key appears twice: once as own, once as incoming.
WITH con AS (
    SELECT c.*, 'own' AS side
    FROM pg_catalog.pg_constraint c
    WHERE c.conrelid = {{ oid }}::pg_catalog.oid AND c.contype IN ('p', 'u', 'x', 'f')
    UNION ALL
    SELECT c.*, 'incoming' AS side
    FROM pg_catalog.pg_constraint c
    WHERE c.confrelid = {{ oid }}::pg_catalog.oid AND c.contype = 'f'
)
SELECT con.side,
       con.conname::text,
       con.contype::text,
       ARRAY(SELECT a.attname::text
             FROM pg_catalog.unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
             ORDER BY k.ord) AS columns,
       con.condeferrable,
       con.condeferred,
       -- the other table of a foreign key: the referenced one for own keys, the child for incoming
       on_.nspname::text AS other_schema,
       COALESCE(oreg.table_name, ocl.relname)::text AS other_table,
       oreg.table_name IS NOT NULL AS other_is_cow,
       ARRAY(SELECT a.attname::text
             FROM pg_catalog.unnest(con.confkey) WITH ORDINALITY AS k(attnum, ord)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum
             ORDER BY k.ord) AS ref_columns,
       con.confupdtype::text,
       con.confdeltype::text,
       con.confmatchtype::text,
{% if server_version >= 150000 %}
       ARRAY(SELECT a.attname::text
             FROM pg_catalog.unnest(con.confdelsetcols) AS k(attnum)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum) AS delete_set_columns,
       COALESCE(i.indnullsnotdistinct, false) AS nulls_not_distinct
{% else %}
       ARRAY[]::text[] AS delete_set_columns,
       false AS nulls_not_distinct
{% endif %},
       COALESCE(oreg.pk_cols::text[], ARRAY[]::text[]) AS other_pk_columns,
       oreg.overlay_schema::text AS other_overlay_schema,
       oreg.tenant_column::text AS other_tenant_column,
       -- as catalog_tenant_column.sql prints it
       (SELECT pg_catalog.quote_ident(tn.nspname) || '.' || pg_catalog.quote_ident(ty.typname)
        FROM pg_catalog.pg_attribute a
        JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid
        JOIN pg_catalog.pg_namespace tn ON tn.oid = ty.typnamespace
        WHERE a.attrelid = ocl.oid AND a.attname = oreg.tenant_column) AS other_tenant_type
FROM con
LEFT JOIN pg_catalog.pg_class ocl
       ON ocl.oid = CASE WHEN con.side = 'own' THEN con.confrelid ELSE con.conrelid END
LEFT JOIN pg_catalog.pg_namespace on_ ON on_.oid = ocl.relnamespace
LEFT JOIN agentcow.cow_tables oreg ON oreg.schema_name = on_.nspname AND oreg.base_name = ocl.relname
LEFT JOIN pg_catalog.pg_index i ON i.indexrelid = con.conindid
-- Foreign keys in the order PostgreSQL checks them: by the names of their triggers on this
-- table (RI_ConstraintTrigger_c_* as the child, _a_* as the parent), which follow creation.
ORDER BY con.side,
         (SELECT min(tg.tgname::text COLLATE "C")
          FROM pg_catalog.pg_trigger tg
          WHERE tg.tgconstraint = con.oid AND tg.tgrelid = {{ oid }}::pg_catalog.oid
            AND tg.tgname::text LIKE CASE con.side WHEN 'own' THEN 'RI\_ConstraintTrigger\_c\_%' ELSE 'RI\_ConstraintTrigger\_a\_%' END),
         con.conname
