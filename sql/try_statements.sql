{#- Runs each statement in a subtransaction of its own, in order (agentcow.try_statement):
    its error, or NULL. -#}
SELECT s.statement, agentcow.try_statement(s.statement)
FROM pg_catalog.unnest(ARRAY[{% for s in statements %}{{ s|literal }}{% if not loop.last %}, {% endif %}{% endfor %}]::pg_catalog.text[])
     WITH ORDINALITY AS s(statement, n)
ORDER BY s.n
