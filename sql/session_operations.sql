-- A session's operations in the order of their first write, across the given tables.
SELECT w.operation_id
FROM (
{% for table in tables %}
    SELECT c.operation_id, min(c._cow_seq) AS first_seq
    FROM {{ table.changes|qualified }} c
    WHERE c.session_id = {{ session|catalog }} AND c._cow_seq > 0
    GROUP BY c.operation_id
{% if not loop.last %}
    UNION ALL
{% endif %}
{% endfor %}
) w
GROUP BY w.operation_id
ORDER BY min(w.first_seq)
