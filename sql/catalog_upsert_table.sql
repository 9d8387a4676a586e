-- What an upsert through a COW view needs (agentcow.agent.upserts): the view that _name
-- resolves to under the caller's search_path, if it is a COW table's merged view, with its
-- columns (the view's defaults, the table's NOT NULL, identity and generated flags), the
-- table's unique indexes and CHECK constraints. Expressions are deparsed while only
-- pg_catalog is on the search_path, so every name outside pg_catalog comes out qualified (as
-- catalog_checks.sql does); the caller's search_path is put back before the statement ends.
-- Reads the catalog and the registry only, which every role may read. One row: the server's
-- version, then nulls when _name is no COW view.
WITH saved AS MATERIALIZED (
    SELECT pg_catalog.current_setting('search_path') AS path,
           pg_catalog.to_regclass({{ name|literal }}) AS oid
), narrowed AS MATERIALIZED (
    SELECT pg_catalog.set_config('search_path', 'pg_catalog', true) AS path, s.oid FROM saved s
), target AS MATERIALIZED (
    SELECT v.oid AS view_oid, vn.nspname::text AS view_schema, v.relname::text AS view_name,
           b.oid AS base_oid, r.pk_cols::text[] AS pk_cols
    FROM narrowed s
    JOIN pg_catalog.pg_class v ON v.oid = s.oid AND v.relkind = 'v'
    JOIN pg_catalog.pg_namespace vn ON vn.oid = v.relnamespace
    JOIN agentcow.cow_tables r
      ON coalesce(r.overlay_schema, r.schema_name) = vn.nspname AND r.table_name = v.relname
    JOIN pg_catalog.pg_namespace bn ON bn.nspname = r.schema_name
    JOIN pg_catalog.pg_class b ON b.relnamespace = bn.oid AND b.relname = r.base_name
    WHERE s.path IS NOT NULL
), described AS MATERIALIZED (
    SELECT t.view_schema, t.view_name, t.pk_cols,
           (SELECT pg_catalog.json_agg(pg_catalog.json_build_array(
                       a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod),
                       pg_catalog.pg_get_expr(d.adbin, d.adrelid), ba.attnotnull,
                       ba.attidentity::text, ba.attgenerated <> '') ORDER BY a.attnum)
            FROM pg_catalog.pg_attribute a
            JOIN pg_catalog.pg_attribute ba ON ba.attrelid = t.base_oid AND ba.attname = a.attname
            LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
            WHERE a.attrelid = t.view_oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
           (SELECT pg_catalog.json_agg(pg_catalog.json_build_array(
                       ic.relname::text, con.conname::text,
                       ARRAY(SELECT a.attname::text
                             FROM pg_catalog.unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
                             JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                             ORDER BY k.ord),
                       coalesce((pg_catalog.to_jsonb(i) ->> 'indnullsnotdistinct')::boolean, false),
                       i.indexprs IS NULL AND i.indpred IS NULL AND 0 <> ALL (i.indkey::int2[]))
                   ORDER BY ic.relname COLLATE "C")
            FROM pg_catalog.pg_index i
            JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
            LEFT JOIN pg_catalog.pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid
            WHERE i.indrelid = t.base_oid AND i.indisunique AND i.indimmediate) AS keys,
           (SELECT pg_catalog.json_agg(pg_catalog.json_build_array(
                       c.conname::text, pg_catalog.pg_get_expr(c.conbin, c.conrelid))
                   ORDER BY c.conname COLLATE "C")
            FROM pg_catalog.pg_constraint c
            WHERE c.conrelid = t.base_oid AND c.contype = 'c'
              AND coalesce((pg_catalog.to_jsonb(c) ->> 'conenforced')::boolean, true)) AS checks
    FROM target t
), restored AS MATERIALIZED (
    SELECT pg_catalog.set_config('search_path', s.path, true) AS path
    FROM saved s, (SELECT count(*) FROM described) AS n
)
SELECT pg_catalog.current_setting('server_version_num')::int, d.view_schema, d.view_name,
       d.pk_cols, d.columns::text, d.keys::text, d.checks::text
FROM restored LEFT JOIN described d ON true
