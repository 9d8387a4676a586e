{#- (depends_on, operation_id): an operation depends on the one that wrote the same row (same
    primary key, a moved key included) just before it. -#}
{% from '_macros.sql' import match %}
SELECT DISTINCT d.depends_on, d.operation_id
FROM (
{% for t in tables %}
    SELECT prev.operation_id AS depends_on, c.operation_id
    FROM {{ t.schema|ident }}.{{ t.changes_name|ident }} c
    CROSS JOIN LATERAL (
        SELECT p.operation_id
        FROM {{ t.schema|ident }}.{{ t.changes_name|ident }} p
        WHERE p.session_id = c.session_id AND {{ match('p', 'c', t.pk_columns) }} AND p._cow_seq < c._cow_seq
        ORDER BY p._cow_seq DESC
        LIMIT 1
    ) prev
    WHERE c.session_id = {{ session|catalog }} AND prev.operation_id <> c.operation_id
{% if not loop.last %}
    UNION ALL
{% endif %}
{% endfor %}
) d
ORDER BY 1, 2
