{#- Registering (add) or removing an agent role: agentcow.add_agent_role / remove_agent_role
    also point the session functions at the bindings, or back at the settings. -#}
SELECT agentcow.{{ ('add_agent_role' if add else 'remove_agent_role')|catalog }}({{ role|literal }})
