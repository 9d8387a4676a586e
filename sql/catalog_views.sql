-- The views of the given schemas: (schema, view).
SELECT n.nspname::text, c.relname::text
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'v' AND n.nspname = ANY (ARRAY[{% for s in schemas %}{{ s|literal }}{% if not loop.last %}, {% endif %}{% endfor %}]::text[])
ORDER BY 1, 2
