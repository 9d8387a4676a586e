{#- Forgets a session's changes (or the chosen operations' changes) in the given tables. -#}
{% for t in tables %}
DELETE FROM {{ t.schema|ident }}.{{ t.changes_name|ident }} c
WHERE c.session_id = {{ session|catalog }}{% if operations is not none %} AND c.operation_id = ANY ({{ operations|catalog }}){% endif %}

--;
{% endfor %}
