{#- The registered agent roles, by name. -#}
SELECT a.role_oid::pg_catalog.regrole::pg_catalog.text FROM agentcow.agent_roles a ORDER BY 1
