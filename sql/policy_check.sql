{#- A policy check: the team's query (checked to be one query, nothing else) run in the
    session; its first rows (show) as JSON objects, each with how many it returns in all. -#}
SELECT pg_catalog.to_jsonb(q)::text, pg_catalog.count(*) OVER ()
FROM (
{{ query }}
) AS q
LIMIT {{ show }}
