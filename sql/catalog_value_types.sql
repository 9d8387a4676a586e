-- The type each column's values have, domains resolved to the type under them (arrays of
-- a domain: an array of that type), as format_type prints it; for decoding rows read as
-- JSON. relations: (schema, name) pairs; position: the pair's index, from 1.
WITH RECURSIVE columns_of(position, name, type, typmod, is_array) AS (
    SELECT r.position, a.attname::text, CASE WHEN t.typcategory = 'A' THEN t.typelem ELSE a.atttypid END,
           a.atttypmod, t.typcategory = 'A'
    FROM (VALUES {% for relation in relations %}({{ loop.index }}, {{ relation|qualified|literal }}){% if not loop.last %}, {% endif %}{% endfor %}) r(position, relation)
    JOIN pg_catalog.pg_attribute a ON a.attrelid = pg_catalog.to_regclass(r.relation)
    JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
    WHERE a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
    SELECT c.position, c.name, t.typbasetype, t.typtypmod, c.is_array
    FROM columns_of c JOIN pg_catalog.pg_type t ON t.oid = c.type
    WHERE t.typtype = 'd'
)
SELECT c.position, c.name,
       pg_catalog.format_type(c.type, c.typmod) || CASE WHEN c.is_array THEN '[]' ELSE '' END
FROM columns_of c JOIN pg_catalog.pg_type t ON t.oid = c.type
WHERE t.typtype <> 'd'
