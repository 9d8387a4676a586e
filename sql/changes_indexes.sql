{#- A change table's indexes (included by changes_table.sql, and by upgrade_table.sql for
    change tables of older layouts). A keyed table's are all partial, each on a predicate of
    its own (key_index and the others in _macros.sql), so that each query names the one index
    it may use. -#}
{% from '_macros.sql' import key_index, seq_index, unique_index, fk_index %}
{% if not t.append_only %}
CREATE INDEX ON {{ t.changes|qualified }} (session_id, {{ t.pk_columns|columns }}, _cow_seq)
    WHERE {{ key_index() }}
--;
{% endif %}
{% for key in t.unique_keys %}
{% if t.append_only %}
{#- append-only: the key first, so the write trigger's probe has one index to use (see there) -#}
CREATE INDEX ON {{ t.changes|qualified }} ({{ key.columns|columns }}, session_id)
{% else %}
CREATE INDEX ON {{ t.changes|qualified }} (session_id, {{ key.columns|columns }})
    WHERE {{ unique_index(loop.index0) }}
{% endif %}
--;
{% endfor %}
{% if (t.parents_checked_per_statement or t.children_checked_per_statement) and not t.append_only %}
CREATE INDEX ON {{ t.changes|qualified }} (session_id, _cow_seq)
    WHERE {{ seq_index() }}
--;
{% endif %}
{% for fk in t.foreign_keys %}
CREATE INDEX ON {{ t.changes|qualified }} (session_id, {{ fk.child_columns|columns }})
{% if not t.append_only %}
    WHERE {{ fk_index(loop.index0) }}
{% endif %}
--;
{% endfor %}
