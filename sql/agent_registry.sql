{#- Whether the kit keeps a registry of agent roles (agentcow.agent_roles). -#}
SELECT pg_catalog.to_regclass('agentcow.agent_roles') IS NOT NULL
