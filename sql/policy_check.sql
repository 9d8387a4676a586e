{#- A policy check: the team's query (checked to be one query that only reads) run in the
    session, through agentcow.policy_query (one statement, however the driver sends it);
    its first rows (show) as JSON objects, each with how many it returns in all. -#}
{% set statement %}
SELECT pg_catalog.to_jsonb(q.*)::text, pg_catalog.count(*) OVER ()
FROM (
{{ query }}
) AS q
LIMIT {{ show }}
{% endset %}
SELECT * FROM agentcow.policy_query({{ statement|literal }}) AS r(found pg_catalog.text, total pg_catalog.int8)
