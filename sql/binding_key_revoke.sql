{#- Revoking a binding key: transactions already bound with it keep their binding. -#}
DELETE FROM agentcow.binding_keys k WHERE k.label = {{ label|literal }} RETURNING k.label
