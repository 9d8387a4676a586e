-- Columns in order, with defaults (identity columns: their sequence, drawn by the table's
-- identity function; see identity_function.sql).
SELECT a.attname::text,
       pg_catalog.format_type(a.atttypid, a.atttypmod) AS type,
       a.attnotnull,
       CASE WHEN a.attidentity = '' AND a.attgenerated = '' THEN pg_catalog.pg_get_expr(d.adbin, d.adrelid)
       END AS default_expr,
       a.attidentity::text,
       a.attgenerated <> '' AS generated,
       CASE WHEN a.attidentity <> '' THEN
           pg_catalog.pg_get_serial_sequence(a.attrelid::regclass::text, a.attname)
       END AS sequence,
       a.attgenerated = 'v' AS virtual
FROM pg_catalog.pg_attribute a
LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = {{ oid }}::pg_catalog.oid AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
