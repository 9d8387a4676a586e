-- The views that read the given tables, directly or through other views, each after the
-- views it reads (depth): (oid, schema, name, owner, reloptions). Views of the given
-- overlay schemas (agentcow's own) are not listed.
WITH RECURSIVE reads (oid, depth) AS (
    SELECT r.ev_class, 1
    FROM pg_catalog.pg_depend d
    JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
    WHERE d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
      AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
      AND d.refobjid = ANY (ARRAY[{% for oid in tables %}{{ oid }}{% if not loop.last %}, {% endif %}{% endfor %}]::pg_catalog.oid[])
      AND r.ev_class <> d.refobjid
    UNION ALL
    SELECT r.ev_class, reads.depth + 1
    FROM reads
    JOIN pg_catalog.pg_depend d ON d.refobjid = reads.oid
    JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
    WHERE d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
      AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
      AND r.ev_class <> reads.oid
)
SELECT c.oid::bigint, n.nspname::text, c.relname::text, pg_catalog.pg_get_userbyid(c.relowner)::text,
       coalesce(c.reloptions, ARRAY[]::text[])
FROM reads
JOIN pg_catalog.pg_class c ON c.oid = reads.oid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'v'
  AND n.nspname <> ALL (ARRAY[{% for s in overlay_schemas %}{{ s|literal }}{% if not loop.last %}, {% endif %}{% endfor %}]::text[])
GROUP BY c.oid, n.nspname, c.relname, c.relowner, c.reloptions
ORDER BY max(reads.depth), 2, 3
