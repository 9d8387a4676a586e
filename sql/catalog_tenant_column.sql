-- A table's tenant column: its type by schema and name (the session's tenant is cast to it
-- in views and triggers made under a pinned search_path; the type modifier is not needed to
-- compare), whether it is NOT NULL, and whether pg_catalog has an equality for it (its own,
-- its domain's base type's, one it is binary-coercible to, or the polymorphic one of its
-- kind: enums, arrays, ranges). No row: no such column.
SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(t.typname),
       EXISTS (SELECT FROM pg_catalog.pg_operator o
               WHERE o.oprname = '=' AND o.oprnamespace = 'pg_catalog'::pg_catalog.regnamespace
                 AND o.oprleft = o.oprright AND o.oprresult = 'pg_catalog.bool'::pg_catalog.regtype
                 AND (o.oprleft = b.oid
                      OR EXISTS (SELECT FROM pg_catalog.pg_cast c
                                 WHERE c.castsource = b.oid AND c.casttarget = o.oprleft
                                   AND c.castmethod = 'b')
                      OR (o.oprleft = 'pg_catalog.anyenum'::pg_catalog.regtype AND b.typtype = 'e')
                      OR (o.oprleft = 'pg_catalog.anyarray'::pg_catalog.regtype AND b.typcategory = 'A')
                      OR (o.oprleft = 'pg_catalog.anyrange'::pg_catalog.regtype AND b.typtype = 'r')))
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
JOIN pg_catalog.pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
WHERE a.attrelid = {{ oid }}::pg_catalog.oid AND a.attname = {{ column|literal }}
  AND a.attnum > 0 AND NOT a.attisdropped
