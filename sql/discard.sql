{#- Forgets a session's changes (or the chosen operations' changes) in the given tables. -#}
{% for t in tables %}
DELETE FROM {{ t.schema|ident }}.{{ t.changes_name|ident }} c
WHERE c.session_id = {{ session|catalog }} AND c._cow_seq > 0{% if operations is not none %} AND c.operation_id = ANY ({{ operations|catalog }}){% endif %}

--;
{% endfor %}
