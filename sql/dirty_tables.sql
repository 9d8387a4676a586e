-- Which of the given COW tables hold changes of the session.
{% for table in tables %}
SELECT {{ table.name|literal }}::text
WHERE EXISTS (SELECT FROM {{ table.changes|qualified }} c WHERE c.session_id = {{ session|catalog }} AND c._cow_seq > 0)
{% if not loop.last %}
UNION ALL
{% endif %}
{% endfor %}
