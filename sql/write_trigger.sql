{#- INSTEAD OF INSERT/UPDATE/DELETE on the view. Without a session, writes go to the base table
    exactly as before. In a session, each row write appends a version to the change table:
    kind I (insert), U (update), D (delete) or M (the old key of a row whose key changed).
    Constraint checks run in PostgreSQL's order: NOT NULL and CHECK (evaluated on the version
    just recorded), then keys, then foreign keys (when the statement ends). Their errors are
    PostgreSQL's for the table: same SQLSTATE, message, fields, and a DETAIL that shows only
    what the calling role may read. A session bound to a tenant is kept inside it first, as
    row-level security's WITH CHECK does (check_tenant, refuse_cascade_across_tenants).
    replace: only the function, replacing the one a table already has (upgrades).
    An append-only table (no key) has a trigger of its own: write_trigger_append.sql. -#}
{% if t.append_only %}
{% include 'write_trigger_append.sql' %}
{% else %}
{% from '_macros.sql' import refuse_without_session, refuse_unbound, match, row, any_null, all_null, security_definer, refuse_generated_values,
    insert_without_session, key_index, unique_index, check_tenant, refuse_cascade_across_tenants %}
{% from '_row_errors.sql' import raise_row_error, raise_duplicate, check_declarations, record_checked %}
{% set base = t.base|qualified %}
{% set changes = t.changes|qualified %}
{% set view = t.view|qualified %}
{% set pk = t.pk_columns %}
{#- NOT NULL columns the change table leaves to this trigger, and the CHECK constraints -#}
{% macro record_version(kind, source) -%}
INSERT INTO {{ changes|catalog }} AS c (session_id, operation_id, _cow_kind, _cow_old, {{ t.writable_columns|columns }})
        VALUES (_cow_sid, _cow_op, {{ kind|literal }}, {{ old_row() }}, {{ t.writable_columns|columns(source) }})
{%- endmacro %}
{#- the stored row changed since the statement read it (gone: skipped, as on a table) -#}
{% macro refuse_if_changed() -%}
IF EXISTS (SELECT FROM {{ base|catalog }} AS b WHERE {{ match('b', 'OLD', pk) }}) THEN
                    RAISE EXCEPTION USING ERRCODE = 'serialization_failure',
                        MESSAGE = 'could not serialize access due to concurrent update',
                        DETAIL = {{ ('Another transaction changed a row of ' ~ t.name ~ ' after this statement read it; retry the statement.')|literal }};
                END IF;
{%- endmacro %}
{#- OLD as a row of the row type (the base's, in the rename layout): the view's columns are
    the table's, in its order -#}
{% macro old_row() -%}
ROW({{ t.column_names|columns('OLD') }})::{{ t.row_type|qualified }}
{%- endmacro %}
{% macro references_exist(fk, prefix) -%}
EXISTS (SELECT FROM {{ fk.child_view|qualified }} r
                 WHERE {{ match('r', prefix, fk.child_columns, fk.parent_columns) }})
{%- endmacro %}
{#- ON DELETE / ON UPDATE CASCADE, SET NULL and SET DEFAULT, applied to the children in the
    session. RESTRICT and NO ACTION are checked when the statement ends, or by constraint
    triggers for deferrable keys. -#}
{% macro referential_action(fk, action, new_values) -%}
{% if action in ('c', 'n', 'd') %}
{{ refuse_cascade_across_tenants(t, fk) }}
        IF {{ references_exist(fk, 'OLD') }} THEN
            PERFORM agentcow.require_cow_target({{ fk.child_schema|literal }}, {{ fk.child_table|literal }}, {{ fk.name|literal }});
        END IF;
{% if action == 'c' and new_values %}
        UPDATE {{ fk.child_view|qualified }} r
           SET {% for c in fk.child_columns %}{{ c|ident }} = NEW.{{ fk.parent_columns[loop.index0]|ident }}{% if not loop.last %}, {% endif %}{% endfor %}

         WHERE {{ match('r', 'OLD', fk.child_columns, fk.parent_columns) }};
{% elif action == 'c' %}
        DELETE FROM {{ fk.child_view|qualified }} r
         WHERE {{ match('r', 'OLD', fk.child_columns, fk.parent_columns) }};
{% else %}
        UPDATE {{ fk.child_view|qualified }} r
           SET {% for c in (fk.delete_set_columns if (fk.delete_set_columns and not new_values) else fk.child_columns) %}{{ c|ident }} = {{ ('NULL' if action == 'n' else 'DEFAULT')|catalog }}{% if not loop.last %}, {% endif %}{% endfor %}

         WHERE {{ match('r', 'OLD', fk.child_columns, fk.parent_columns) }};
{% endif %}
{% endif %}
{%- endmacro %}
CREATE {% if replace %}OR REPLACE {% endif %}FUNCTION {{ t.function(names.write_function)|qualified }}() RETURNS trigger
{{ security_definer() }}
AS {{ tag }}
#variable_conflict use_column
DECLARE
    _cow_sid uuid := agentcow.session_id();
    _cow_op uuid;
    _cow_at bigint;
    _cow_tenant text;
{{ check_declarations(t) }}
BEGIN
{{ refuse_generated_values(t) }}
    IF _cow_sid IS NULL THEN
        IF agentcow.session_required() THEN
            {{ refuse_unbound(t) }};
        END IF;
{% if t.overlay_schema %}
        {{ refuse_without_session(t) }};
{% else %}
        -- No session: the table as it always was.
        IF TG_OP = 'INSERT' THEN
            {{ insert_without_session(t) }}
        ELSIF TG_OP = 'UPDATE' THEN
            -- NEW was computed from the row the statement read. Unless the stored row is
            -- still that one (once its lock is ours), writing NEW would undo a concurrent
            -- write, which a table would have re-read: refuse as REPEATABLE READ does.
            UPDATE {{ base|catalog }} AS _cow_b
               SET ({{ t.updatable_columns|columns }}) = {{ row('NEW', t.updatable_columns) }}
             WHERE {{ match('_cow_b', 'OLD', pk) }} AND _cow_b *= {{ old_row() }}
            RETURNING {{ t.column_names|columns('_cow_b') }} INTO NEW;
            IF NOT FOUND THEN
                {{ refuse_if_changed() }}
                RETURN NULL;
            END IF;
            RETURN NEW;
        ELSE
            DELETE FROM {{ base|catalog }} AS _cow_b WHERE {{ match('_cow_b', 'OLD', pk) }} AND _cow_b *= {{ old_row() }};
            IF NOT FOUND THEN
                {{ refuse_if_changed() }}
                RETURN NULL;
            END IF;
            RETURN OLD;
        END IF;
{% endif %}
    END IF;

    _cow_op := agentcow.require_write_operation();
    -- the session's lock (share mode), for the session this row is written in: a commit of it
    -- waits for this transaction, or this write for the commit (agentcow.share_session)
    PERFORM agentcow.share_session(_cow_sid);
{% if t.writes_check_tenants %}
    _cow_tenant := agentcow.session_tenant(_cow_sid);
{{ check_tenant(t) }}
{% endif %}

    IF TG_OP = 'DELETE' THEN
        {{ record_version('D', 'OLD') }};
{% for fk in t.referenced_by %}
{{ referential_action(fk, fk.on_delete, false) }}
{% endfor %}
        RETURN OLD;
    END IF;

    IF TG_OP = 'UPDATE' AND {{ row('NEW', pk) }} IS DISTINCT FROM {{ row('OLD', pk) }} THEN
        {{ record_version('M', 'OLD') }};
    END IF;

    IF {{ any_null('NEW', pk) }} THEN
        {{ raise_row_error(t, false) }}
    END IF;

    -- The check constraints are evaluated on the version recorded, with its generated
    -- columns computed (bare column names are its columns: #variable_conflict use_column).
    INSERT INTO {{ changes|catalog }} AS c (session_id, operation_id, _cow_kind, _cow_old, {{ t.writable_columns|columns }})
    VALUES (_cow_sid, _cow_op, CASE TG_OP WHEN 'INSERT' THEN 'I' ELSE 'U' END::"char",
            CASE WHEN TG_OP = 'UPDATE' AND {{ row('NEW', pk) }} IS NOT DISTINCT FROM {{ row('OLD', pk) }} THEN {{ old_row() }} END,
            {{ t.writable_columns|columns('NEW') }})
{{ record_checked(t) }}

    IF TG_OP = 'INSERT' OR {{ row('NEW', pk) }} IS DISTINCT FROM {{ row('OLD', pk) }} THEN
        -- Was the key live before this write (in the session, else in the base)? A duplicate.
        -- (On the key index, named by its predicate: no other index can serve the probe, so
        -- no plan walks the session through the (session_id, _cow_seq) index.)
        IF coalesce((SELECT p._cow_kind IN ('I', 'U')
                       FROM {{ changes|catalog }} p
                      WHERE p.session_id = _cow_sid AND {{ match('p', 'NEW', pk) }} AND p._cow_seq < _cow_at AND {{ key_index('p') }}
                      ORDER BY p._cow_seq DESC
                      LIMIT 1),
                    EXISTS (SELECT FROM {{ base|catalog }} b WHERE {{ match('b', 'NEW', pk) }})) THEN
            {{ raise_duplicate(t, t.primary_key) }};
        END IF;
    END IF;
{% for key in t.unique_keys %}
{% set key_op = 'IS NOT DISTINCT FROM' if key.nulls_not_distinct else '=' %}

    -- {{ key.name|ident }}: a live row of the session's table other than this one holds the values
    -- (probes by key only: a stored row the session has not changed, or a latest version)
    IF (TG_OP = 'INSERT' OR {{ row('NEW', key.columns) }} IS DISTINCT FROM {{ row('OLD', key.columns) }}
        OR {{ row('NEW', pk) }} IS DISTINCT FROM {{ row('OLD', pk) }})
{% if not key.nulls_not_distinct %}
       AND NOT {{ any_null('NEW', key.columns) }}
{% endif %}
       AND (EXISTS (SELECT FROM {{ base|catalog }} v
                    WHERE {{ match('v', 'NEW', key.columns, op=key_op) }} AND {{ row('v', pk) }} IS DISTINCT FROM {{ row('NEW', pk) }}
                      AND (SELECT 1 FROM {{ changes|catalog }} x
                           WHERE x.session_id = _cow_sid AND {{ match('x', 'v', pk) }} AND {{ key_index('x') }} LIMIT 1) IS NULL)
            OR EXISTS (SELECT FROM {{ changes|catalog }} v
                       WHERE v.session_id = _cow_sid AND {{ match('v', 'NEW', key.columns, op=key_op) }} AND {{ unique_index(loop.index0, 'v') }}
                         AND v._cow_kind IN ('I', 'U') AND {{ row('v', pk) }} IS DISTINCT FROM {{ row('NEW', pk) }}
                         AND v._cow_seq = (SELECT max(l._cow_seq) FROM {{ changes|catalog }} l
                                           WHERE l.session_id = _cow_sid AND {{ match('l', 'v', pk) }} AND {{ key_index('l') }}))) THEN
        {{ raise_duplicate(t, key) }};
    END IF;
{% endfor %}
{% for fk in t.referenced_by if fk.on_update in ('c', 'n', 'd') %}

    IF TG_OP = 'UPDATE' AND {{ row('NEW', fk.parent_columns) }} IS DISTINCT FROM {{ row('OLD', fk.parent_columns) }} THEN
{{ referential_action(fk, fk.on_update, true) }}
    END IF;
{% endfor %}
    RETURN NEW;
END
{{ tag }}
{% if not replace %}
--;
CREATE TRIGGER {{ names.write_trigger|ident }}
    INSTEAD OF INSERT OR UPDATE OR DELETE ON {{ view|catalog }}
    FOR EACH ROW EXECUTE FUNCTION {{ t.function(names.write_function)|qualified }}()
{% endif %}
{% endif %}
