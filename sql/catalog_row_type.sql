-- The columns of a composite type (an overlay's row type), as catalog_columns.sql names them.
SELECT a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod)
FROM pg_catalog.pg_type t
JOIN pg_catalog.pg_attribute a ON a.attrelid = t.typrelid
WHERE t.oid = pg_catalog.to_regtype({{ type|qualified|literal }})
  AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
