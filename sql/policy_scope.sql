{#- The transaction a policy evaluation reads in, rolled back afterwards: its own (begin,
    rollback) or, inside the caller's, a savepoint (savepoint, rollback_to, release). The
    evaluation enters the session first (entering records it in the registry, a write),
    then makes the rest read-only (read_only). -#}
{% if step == 'begin' %}
BEGIN
{% elif step == 'rollback' %}
ROLLBACK
{% elif step == 'savepoint' %}
SAVEPOINT agentcow_policy
{% elif step == 'rollback_to' %}
ROLLBACK TO SAVEPOINT agentcow_policy
{% elif step == 'release' %}
RELEASE SAVEPOINT agentcow_policy
{% elif step == 'read_only' %}
SET LOCAL transaction_read_only = on
{% endif %}
