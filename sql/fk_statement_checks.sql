{#- Foreign keys that are not deferrable, checked when each statement on the view ends, as
    PostgreSQL checks them: a statement may insert a child before its parent, or delete a parent
    together with its children. A BEFORE STATEMENT trigger marks the change sequence; the AFTER
    STATEMENT trigger checks, set-based, the rows this statement wrote in this session. Marks are
    kept per trigger depth, so statements run by cascades check their own rows. -#}
{% from '_macros.sql' import match, row, any_null, all_null, is_latest, key_written, prior_version,
    security_definer, raise_missing_parent, raise_mixed_nulls, raise_still_referenced, key_index, seq_index %}
{% set changes = t.schema|ident ~ '.' ~ t.changes_name|ident %}
{% set view = t.schema|ident ~ '.' ~ t.name|ident %}
{% set pk = t.pk_columns %}
{% set mark_setting = 'agentcow.mark_' ~ t.relation.oid ~ '_' %}
{#- The key values of this table that rows written by the statement took away: for event
    'delete', rows deleted; for 'update', keys changed and referenced non-key columns updated. -#}
{% macro removed_values(fk, event) -%}
        SELECT {{ fk.parent_columns|columns('c') }}
        FROM {{ changes|catalog }} c
        WHERE c.session_id = _cow_sid AND c._cow_seq > _cow_mark AND {{ seq_index('c') }}
          AND c._cow_kind = {{ ('D' if event == 'delete' else 'M')|literal }}
{% if event == 'update' and (fk.parent_columns|reject('in', pk)|list) %}
        UNION ALL
        SELECT {{ fk.parent_columns|columns('prev') }}
        FROM {{ changes|catalog }} c
        CROSS JOIN LATERAL ({{ prior_version(t, 'c', fk.parent_columns) }}) prev
        WHERE c.session_id = _cow_sid AND c._cow_seq > _cow_mark AND {{ seq_index('c') }} AND c._cow_kind = 'U'
          AND {{ row('prev', fk.parent_columns) }} IS DISTINCT FROM {{ row('c', fk.parent_columns) }}
{% endif %}
{%- endmacro %}
{% if t.parents_checked_per_statement or t.children_checked_per_statement %}
CREATE FUNCTION {{ t.schema|ident }}.{{ names.statement_check_function|ident }}() RETURNS trigger
{{ security_definer() }}
AS {{ tag }}
DECLARE
    _cow_sid uuid := agentcow.session_id();
    _cow_mark bigint;
    _cow_row record;
BEGIN
    IF _cow_sid IS NULL THEN
        RETURN NULL;  -- without a session the base table's own constraints apply
    END IF;
    IF TG_WHEN = 'BEFORE' THEN
        PERFORM pg_catalog.set_config({{ mark_setting|literal }} || pg_catalog.pg_trigger_depth(),
                                      agentcow.change_mark()::text, true);
        RETURN NULL;
    END IF;
    _cow_mark := coalesce(nullif(pg_catalog.current_setting({{ mark_setting|literal }} || pg_catalog.pg_trigger_depth(), true), ''), '0')::bigint;
{% for fk in t.parents_checked_per_statement %}

    -- {{ fk.name|ident }}: the parent of every row written must exist
{% if fk.match_full %}
    SELECT {{ fk.child_columns|columns('c') }} INTO _cow_row
    FROM {{ changes|catalog }} c
    WHERE c.session_id = _cow_sid AND c._cow_seq > _cow_mark AND {{ seq_index('c') }} AND c._cow_kind IN ('I', 'U')
      AND {{ any_null('c', fk.child_columns) }} AND NOT {{ all_null('c', fk.child_columns) }}
      AND {{ is_latest(t, 'c') }}
      AND {{ key_written(t, fk, 'c') }}
    LIMIT 1;
    IF FOUND THEN
        {{ raise_mixed_nulls(t, fk) }};
    END IF;
{% endif %}
    SELECT {{ fk.child_columns|columns('c') }} INTO _cow_row
    FROM {{ changes|catalog }} c
    WHERE c.session_id = _cow_sid AND c._cow_seq > _cow_mark AND {{ seq_index('c') }} AND c._cow_kind IN ('I', 'U')
      AND NOT {{ any_null('c', fk.child_columns) }}
      AND {{ is_latest(t, 'c') }}
      AND {{ key_written(t, fk, 'c') }}
{% if fk.references_cow_key %}
      {#- two probes by the parent's key: its latest version in the session, else its base row #}
      AND NOT coalesce(
            (SELECT pc._cow_kind IN ('I', 'U')
             FROM {{ fk.parent_schema|ident }}.{{ fk.parent_changes_relation|ident }} pc
             WHERE pc.session_id = _cow_sid AND {{ match('pc', 'c', fk.parent_columns, fk.child_columns) }} AND {{ key_index('pc') }}
             ORDER BY pc._cow_seq DESC
             LIMIT 1),
            EXISTS (SELECT FROM {{ fk.parent_schema|ident }}.{{ fk.parent_relation|ident }} p
                    WHERE {{ match('p', 'c', fk.parent_columns, fk.child_columns) }}))
{% else %}
      AND NOT EXISTS (SELECT FROM {{ fk.parent_schema|ident }}.{{ fk.parent_table|ident }} p
                      WHERE {{ match('p', 'c', fk.parent_columns, fk.child_columns) }})
{% endif %}
    LIMIT 1;
    IF FOUND THEN
        {{ raise_missing_parent(t, fk, '_cow_row') }};
    END IF;
{% endfor %}
{% for fk in t.children_checked_per_statement %}
{% for event, action in [('delete', fk.on_delete), ('update', fk.on_update)] %}
{% if action == 'r' or (action == 'a' and not fk.deferrable) %}

    -- {{ fk.name|ident }} of {{ fk.child_table|ident }}: no child may reference a value removed ({{ event|catalog }})
    SELECT {{ fk.parent_columns|columns('g') }} INTO _cow_row
    FROM (
{{ removed_values(fk, event) }}
    ) g
    WHERE NOT {{ any_null('g', fk.parent_columns) }}
{#- NO ACTION: the value may be present again. And when a row's key changes, a referenced
    non-key value it keeps is not removed (PostgreSQL checks only changed referenced values). -#}
{% if action == 'a' or (event == 'update' and (fk.parent_columns|reject('in', pk)|list)) %}
      AND NOT EXISTS (SELECT FROM {{ view|catalog }} v WHERE {{ match('v', 'g', fk.parent_columns) }})
{% endif %}
      AND EXISTS (SELECT FROM {{ fk.child_schema|ident }}.{{ fk.child_table|ident }} r
                  WHERE {{ match('r', 'g', fk.child_columns, fk.parent_columns) }})
    LIMIT 1;
    IF FOUND THEN
        {{ raise_still_referenced(t, fk, '_cow_row', restrict=(action == 'r')) }};
    END IF;
{% endif %}
{% endfor %}
{% endfor %}
    RETURN NULL;
END
{{ tag }}
--;
CREATE TRIGGER {{ names.statement_start_trigger|ident }}
    BEFORE INSERT OR UPDATE OR DELETE ON {{ view|catalog }}
    FOR EACH STATEMENT EXECUTE FUNCTION {{ t.schema|ident }}.{{ names.statement_check_function|ident }}()
--;
CREATE TRIGGER {{ names.statement_end_trigger|ident }}
    AFTER INSERT OR UPDATE OR DELETE ON {{ view|catalog }}
    FOR EACH STATEMENT EXECUTE FUNCTION {{ t.schema|ident }}.{{ names.statement_check_function|ident }}()
--;
{% endif %}
