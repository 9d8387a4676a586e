-- The relation behind a name, with what decides whether it can be COW-enabled.
SELECT c.oid::bigint,
       c.relkind::text,
       c.relispartition,
       c.relrowsecurity,
       pg_catalog.pg_get_userbyid(c.relowner)::text AS owner,
       EXISTS (SELECT FROM pg_catalog.pg_inherits i WHERE i.inhrelid = c.oid OR i.inhparent = c.oid) AS inherits,
       pg_catalog.current_setting('server_version_num')::int AS server_version
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = {{ schema|literal }} AND c.relname = {{ relation|literal }}
