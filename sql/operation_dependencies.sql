{#- (depends_on, operation_id) pairs of a session: operation B depends on operation A when a
    write of B came after a write of A and
      same row:      both wrote the same key (a key freed or taken by a key change included);
      new parent:    B's row took a reference to a parent value that A's write created
                     (A inserted the parent, or changed it so that it has that value);
      freed parent:  B removed a parent value (deleted the row or changed the value) after A
                     removed a reference to it (deleted or re-pointed a child);
      unique value:  B's row took a unique value that A's write released.
    A version's row before the write is _cow_old (NULL when the key was free); its row after
    is its own columns when it is an I or U version, none for D and M. Each rule looks only at
    writes that made the change (a version that kept a reference does not need its parent).

    An append-only table (no key) has only inserted rows, each its own: its rows depend on
    the operations that created their parents (new parent), and on nothing else.

    tables: every COW table of the schema; by_name: the same by name (for foreign keys). -#}
{% from '_macros.sql' import match, row %}
{% macro changes(t) %}{{ t.changes|qualified }}{% endmacro %}
{#- a version's row before the write, as a record prefix -#}
{% macro old(alias) %}({{ alias|catalog }}._cow_old){% endmacro %}
{#- the key was free before the write (a stored row never has a NULL primary-key column);
    always, for an append-only table -#}
{% macro was_free(t, alias) %}{% if t.append_only %}true{% else %}{{ old(alias) }}.{{ t.pk_columns[0]|ident }} IS NULL{% endif %}{% endmacro %}
{#- the write gave its row these column values (it had other values, or no row, before) -#}
{% macro took(t, alias, cols) -%}
({{ alias|catalog }}._cow_kind IN ('I', 'U') AND ({{ was_free(t, alias) }} OR {{ row(alias, cols) }} IS DISTINCT FROM {{ row(old(alias), cols) }}))
{%- endmacro %}
{#- the write took these column values away from its row (removed it, or changed them) -#}
{% macro released(t, alias, cols) -%}
(NOT {{ was_free(t, alias) }} AND ({{ alias|catalog }}._cow_kind IN ('D', 'M') OR {{ row(alias, cols) }} IS DISTINCT FROM {{ row(old(alias), cols) }}))
{%- endmacro %}
{% macro later_write(b) -%}
b.session_id = {{ session|catalog }} AND b._cow_seq > 0 AND a.session_id = b.session_id AND a._cow_seq > 0 AND a._cow_seq < b._cow_seq AND a.operation_id <> b.operation_id
{%- endmacro %}
WITH pairs (depends_on, operation_id) AS (
{% for t in tables %}
{% if not loop.first %}
    UNION
{% endif %}
{% if t.append_only %}
    -- {{ t.name|literal }}: append-only, no row is written twice
    SELECT NULL::uuid, NULL::uuid WHERE false
{% else %}
    -- {{ t.name|literal }}: same row (DISTINCT: a table may have no other rule to UNION with)
    SELECT DISTINCT a.operation_id, b.operation_id
    FROM {{ changes(t) }} b JOIN {{ changes(t) }} a ON {{ match('a', 'b', t.pk_columns) }}
    WHERE {{ later_write('b') }}
{% endif %}
{% for key in t.unique_keys if not t.append_only %}
    UNION
    -- {{ key.name|literal }}: unique value
    SELECT a.operation_id, b.operation_id
    FROM {{ changes(t) }} b JOIN {{ changes(t) }} a
      ON {{ match(old('a'), 'b', key.columns, op=('IS NOT DISTINCT FROM' if key.nulls_not_distinct else '=')) }}
    WHERE {{ later_write('b') }} AND {{ took(t, 'b', key.columns) }} AND {{ released(t, 'a', key.columns) }}
{% endfor %}
{% for fk in t.foreign_keys if fk.parent_schema == t.schema and fk.parent_table in by_name %}
{% set parent = by_name[fk.parent_table] %}
    UNION
    -- {{ fk.name|literal }}: new parent
    SELECT a.operation_id, b.operation_id
    FROM {{ changes(t) }} b JOIN {{ changes(parent) }} a ON {{ match('a', 'b', fk.parent_columns, fk.child_columns) }}
    WHERE {{ later_write('b') }} AND {{ took(t, 'b', fk.child_columns) }} AND {{ took(parent, 'a', fk.parent_columns) }}
{% endfor %}
{% for fk in t.referenced_by if fk.child_schema == t.schema and fk.child_table in by_name
      and not t.append_only and not by_name[fk.child_table].append_only %}
{% set child = by_name[fk.child_table] %}
    UNION
    -- {{ fk.name|literal }}: freed parent
    SELECT a.operation_id, b.operation_id
    FROM {{ changes(t) }} b JOIN {{ changes(child) }} a
      ON {{ match(old('a'), old('b'), fk.child_columns, fk.parent_columns) }}
    WHERE {{ later_write('b') }} AND {{ released(t, 'b', fk.parent_columns) }} AND {{ released(child, 'a', fk.child_columns) }}
{% endfor %}
{% endfor %}
),
first_write (operation_id, seq) AS (
{% for t in tables %}
{% if not loop.first %}
    UNION ALL
{% endif %}
    SELECT c.operation_id, min(c._cow_seq) FROM {{ changes(t) }} c
    WHERE c.session_id = {{ session|catalog }} AND c._cow_seq > 0 GROUP BY c.operation_id
{% endfor %}
),
op_order AS (SELECT operation_id, min(seq) AS seq FROM first_write GROUP BY operation_id)
SELECT p.depends_on, p.operation_id
FROM pairs p
JOIN op_order b ON b.operation_id = p.operation_id
JOIN op_order a ON a.operation_id = p.depends_on
ORDER BY b.seq, a.seq
