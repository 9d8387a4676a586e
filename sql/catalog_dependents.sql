-- Views, materialized views and SQL-bodied functions that name the table: after the rename
-- they would silently read the base table and bypass sessions.
SELECT DISTINCT pg_catalog.pg_describe_object(d.classid, d.objid, 0)
FROM pg_catalog.pg_depend d
LEFT JOIN pg_catalog.pg_rewrite r ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass::pg_catalog.oid AND r.oid = d.objid
WHERE d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass::pg_catalog.oid
  AND d.refobjid = {{ oid }}::pg_catalog.oid
  AND d.deptype = 'n'
  AND (d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass::pg_catalog.oid
       OR (r.oid IS NOT NULL AND r.ev_class <> {{ oid }}::pg_catalog.oid))
ORDER BY 1
