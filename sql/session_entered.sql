{#- Read right after entering a session: the session setting (whether it took: only inside a
    transaction), and the temporary objects that shadow, for unqualified names, a relation
    of a schema on the search_path or a type of pg_catalog or of such a schema. Temporary
    objects outlive the request that made them on a pooled connection (asyncpg's reset
    does not drop them), and the temporary schema is searched before every other for
    relations and types: an earlier request's view named like a COW table (or a domain named
    text) would read this request's SQL, settings included (its session id), or run code
    in it. Everything here is schema-qualified and every operator pg_catalog's, so nothing
    such an object defines runs in this check. -#}
WITH path AS MATERIALIZED (
    SELECT n.oid FROM pg_catalog.pg_namespace n
    WHERE n.nspname OPERATOR(pg_catalog.=) ANY (pg_catalog.current_schemas(false))
       OR n.nspname OPERATOR(pg_catalog.=) 'pg_catalog'
)
SELECT pg_catalog.current_setting({{ name|literal }}, true),
       ARRAY(SELECT DISTINCT x.name
             FROM (SELECT c.relname::pg_catalog.text AS name
                   FROM pg_catalog.pg_class c
                   WHERE c.relnamespace OPERATOR(pg_catalog.=) pg_catalog.pg_my_temp_schema()
                     AND EXISTS (SELECT FROM pg_catalog.pg_class o
                                 WHERE o.relname OPERATOR(pg_catalog.=) c.relname
                                   AND o.relnamespace OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT p.oid FROM path p)))
                   UNION ALL
                   SELECT t.typname::pg_catalog.text
                   FROM pg_catalog.pg_type t
                   WHERE t.typnamespace OPERATOR(pg_catalog.=) pg_catalog.pg_my_temp_schema()
                     AND NOT EXISTS (SELECT FROM pg_catalog.pg_type e WHERE e.typarray OPERATOR(pg_catalog.=) t.oid)
                     AND EXISTS (SELECT FROM pg_catalog.pg_type o
                                 WHERE o.typname OPERATOR(pg_catalog.=) t.typname
                                   AND o.typnamespace OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT p.oid FROM path p)))) x
             ORDER BY x.name)
