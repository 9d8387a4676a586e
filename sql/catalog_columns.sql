-- Columns in order, with defaults and how each one is filled when an INSERT omits it.
SELECT a.attname::text,
       pg_catalog.format_type(a.atttypid, a.atttypmod) AS type,
       a.attnotnull,
       CASE
           WHEN a.attidentity = 'a' THEN pg_catalog.format(
               'agentcow.identity_default(%L::regclass, %s)',
               pg_catalog.pg_get_serial_sequence(a.attrelid::regclass::text, a.attname),
               a.attrelid::bigint)
           WHEN a.attidentity = 'd' THEN pg_catalog.format(
               'nextval(%L::regclass)',
               pg_catalog.pg_get_serial_sequence(a.attrelid::regclass::text, a.attname))
           WHEN a.attgenerated = '' THEN pg_catalog.pg_get_expr(d.adbin, d.adrelid)
       END AS default_expr,
       a.attidentity::text,
       a.attgenerated <> '' AS generated,
       a.attgenerated = 'v' AS virtual
FROM pg_catalog.pg_attribute a
LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = {{ oid }} AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
