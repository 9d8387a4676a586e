{#- Rebuilding an overlay after its table was altered (refresh_cow), in three steps around
    enable's own templates for the table as it is now (overlay layout only).
    begin: the change table (less its triggers) and the row type step aside under temporary
    names; the view (its triggers with it) and the functions go. copy: the pending versions
    move to the new change table with their sequence numbers, before its triggers exist (they
    were checked when written). A column the overlay did not know gets, in a version of a
    stored row and in the row before the write, the stored row's value (what the base now
    holds, so neither commit nor the conflict check sees a change the session did not make);
    in a version of a new row, the column's default. end: the old change table and row type go.
    kept: the columns the old overlay knew, with the same name and type. -#}
{% from '_macros.sql' import match %}
{% set old_changes = (t.kit_schema, aside) %}
{% set old_row_type = (t.kit_schema, aside ~ '_row') %}
{% if step == 'begin' %}
LOCK TABLE {{ t.changes|qualified }} IN ACCESS EXCLUSIVE MODE
--;
ALTER TABLE {{ t.changes|qualified }} RENAME TO {{ aside|ident }}
--;
ALTER TYPE {{ t.row_type|qualified }} RENAME TO {{ (aside ~ '_row')|ident }}
--;
-- its triggers (the foreign-key checks of deferrable keys) call functions that go next
DECLARE
    _cow_trigger name;
BEGIN
    FOR _cow_trigger IN
        SELECT g.tgname FROM pg_catalog.pg_trigger g
        WHERE g.tgrelid = {{ (old_changes|qualified)|literal }}::pg_catalog.regclass AND NOT g.tgisinternal
    LOOP
        EXECUTE pg_catalog.format('DROP TRIGGER %I ON %s', _cow_trigger, {{ (old_changes|qualified)|literal }});
    END LOOP;
END
--;
DROP VIEW IF EXISTS {{ t.view|qualified }}
--;
{% for function in functions %}
DROP FUNCTION IF EXISTS {{ t.function(function)|qualified }}
--;
{% endfor %}
{% elif step == 'copy' %}
{% macro value(prefix, column) -%}
{% if column.name in kept %}{{ prefix|catalog }}.{{ column.name|ident }}{% elif t.append_only %}{{ (column.default or 'NULL')|catalog }}{% else %}CASE WHEN b.{{ t.pk_columns[0]|ident }} IS NOT NULL THEN b.{{ column.name|ident }} ELSE {{ (column.default or 'NULL')|catalog }} END{% endif %}
{%- endmacro %}
INSERT INTO {{ t.changes|qualified }} (session_id, operation_id, _cow_seq, _cow_kind, _cow_old, {{ t.writable_columns|columns }})
SELECT o.session_id, o.operation_id, o._cow_seq, o._cow_kind,
       CASE WHEN pg_catalog.num_nulls(o._cow_old) = 0
            THEN ROW({% for c in t.columns %}{{ value('(o._cow_old)', c) }}{% if not loop.last %}, {% endif %}{% endfor %})::{{ t.row_type|qualified }} END,
       {% for c in t.columns if c.writable %}{{ value('o', c) }}{% if not loop.last %}, {% endif %}{% endfor %}

FROM {{ old_changes|qualified }} o
{% if not t.append_only %}
LEFT JOIN {{ t.base|qualified }} b ON {{ match('b', 'o', t.pk_columns) }}
{% endif %}
--;
{% else %}
DROP TABLE {{ old_changes|qualified }}
--;
DROP TYPE {{ old_row_type|qualified }}
--;
{% endif %}
