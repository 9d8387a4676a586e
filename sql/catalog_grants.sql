-- Privileges granted to roles other than the owner, on the table and on its columns.
SELECT CASE WHEN e.grantee = 0::pg_catalog.oid THEN 'PUBLIC' ELSE pg_catalog.pg_get_userbyid(e.grantee)::text END,
       e.privilege_type::text,
       e.is_grantable,
       NULL::text AS column_name
FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) AS e
WHERE c.oid = {{ oid }}::pg_catalog.oid AND e.grantee <> c.relowner
UNION ALL
SELECT CASE WHEN e.grantee = 0::pg_catalog.oid THEN 'PUBLIC' ELSE pg_catalog.pg_get_userbyid(e.grantee)::text END,
       e.privilege_type::text,
       e.is_grantable,
       a.attname::text
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped,
     pg_catalog.aclexplode(a.attacl) AS e
WHERE c.oid = {{ oid }}::pg_catalog.oid AND e.grantee <> c.relowner
ORDER BY 4 NULLS FIRST, 1, 2
