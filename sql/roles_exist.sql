{#- Which of the given roles exist. -#}
SELECT r.rolname::text FROM pg_catalog.pg_roles r
WHERE r.rolname::text = ANY (ARRAY[{% for r in roles %}{{ r|literal }}{% if not loop.last %}, {% endif %}{% endfor %}]::pg_catalog.text[])
