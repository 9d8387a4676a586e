-- Columns that lead a plain btree index of the table (valid, not partial, default operator
-- class, so `=` on the column is the index's equality): what a lookup by value can use;
-- columns of unique indexes first (the most selective), then in table order.
SELECT a.attname::text
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
JOIN pg_catalog.pg_am am ON am.oid = ic.relam
JOIN pg_catalog.pg_opclass oc ON oc.oid = i.indclass[0]
JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
WHERE i.indrelid = {{ oid }}::pg_catalog.oid
  AND i.indisvalid AND i.indpred IS NULL AND i.indkey[0] <> 0
  AND am.amname = 'btree' AND oc.opcdefault
GROUP BY a.attname, a.attnum
ORDER BY bool_or(i.indisunique) DESC, a.attnum
