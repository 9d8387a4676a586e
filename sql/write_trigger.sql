{#- INSTEAD OF INSERT/UPDATE/DELETE on the view. Without a session, writes go to the base table
    exactly as before. In a session, each row write appends a version to the change table:
    kind I (insert), U (update), D (delete) or M (the old key of a row whose key changed).
    Constraint checks run in PostgreSQL's order: NOT NULL and CHECK (evaluated on the version
    just recorded), then keys, then foreign keys (when the statement ends). Their errors are
    PostgreSQL's for the table: same SQLSTATE, message, fields, and a DETAIL that shows only
    what the calling role may read.
    replace: only the function, replacing the one a table already has (upgrades). -#}
{% from '_macros.sql' import match, row, any_null, all_null, key_text, key_visible, security_definer,
    caller_role, value_text, raise_with_detail %}
{% set base = t.schema|ident ~ '.' ~ t.base_name|ident %}
{% set changes = t.schema|ident ~ '.' ~ t.changes_name|ident %}
{% set view = t.schema|ident ~ '.' ~ t.name|ident %}
{% set pk = t.pk_columns %}
{#- NOT NULL columns the change table leaves to this trigger, and the CHECK constraints -#}
{% set not_null = t.columns|selectattr('not_null')|map(attribute='name')|reject('in', pk)|list %}
{% set checked = not_null or t.checks %}
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
{#- OLD as a row of the base table: the view's columns are the table's, in its order -#}
{% macro old_row() -%}
ROW({{ t.column_names|columns('OLD') }})::{{ base|catalog }}
{%- endmacro %}
{% macro references_exist(fk, prefix) -%}
EXISTS (SELECT FROM {{ fk.child_schema|ident }}.{{ fk.child_table|ident }} r
                 WHERE {{ match('r', prefix, fk.child_columns, fk.parent_columns) }})
{%- endmacro %}
{#- ON DELETE / ON UPDATE CASCADE, SET NULL and SET DEFAULT, applied to the children in the
    session. RESTRICT and NO ACTION are checked when the statement ends, or by constraint
    triggers for deferrable keys. -#}
{% macro referential_action(fk, action, new_values) -%}
{% if action in ('c', 'n', 'd') %}
        IF {{ references_exist(fk, 'OLD') }} THEN
            PERFORM agentcow.require_cow_target({{ fk.child_schema|literal }}, {{ fk.child_table|literal }}, {{ fk.name|literal }});
        END IF;
{% if action == 'c' and new_values %}
        UPDATE {{ fk.child_schema|ident }}.{{ fk.child_table|ident }} r
           SET {% for c in fk.child_columns %}{{ c|ident }} = NEW.{{ fk.parent_columns[loop.index0]|ident }}{% if not loop.last %}, {% endif %}{% endfor %}

         WHERE {{ match('r', 'OLD', fk.child_columns, fk.parent_columns) }};
{% elif action == 'c' %}
        DELETE FROM {{ fk.child_schema|ident }}.{{ fk.child_table|ident }} r
         WHERE {{ match('r', 'OLD', fk.child_columns, fk.parent_columns) }};
{% else %}
        UPDATE {{ fk.child_schema|ident }}.{{ fk.child_table|ident }} r
           SET {% for c in (fk.delete_set_columns if (fk.delete_set_columns and not new_values) else fk.child_columns) %}{{ c|ident }} = {{ ('NULL' if action == 'n' else 'DEFAULT')|catalog }}{% if not loop.last %}, {% endif %}{% endfor %}

         WHERE {{ match('r', 'OLD', fk.child_columns, fk.parent_columns) }};
{% endif %}
{% endif %}
{%- endmacro %}
{#- A value as text that tells null from every value, for types without an equality -#}
{% macro as_text(prefix, c) -%}
pg_catalog.concat(pg_catalog.num_nulls({{ prefix|catalog }}.{{ c.name|ident }}), {{ prefix|catalog }}.{{ c.name|ident }})
{%- endmacro %}
{#- Whether the statement gave column c a value: PostgreSQL shows such columns in a failing
    row whatever the role may read. The trigger cannot see the statement's column list, so it
    counts only what is certain: a value an UPDATE changed, a non-null value an INSERT gave a
    column without a default (which would otherwise be null). Unchanged or defaulted values
    the statement named are left out: the DETAIL may show less than the table's, never more. -#}
{% macro provided(c) -%}
{% if c.generated %}false{% else %}(TG_OP = 'UPDATE' AND {{ as_text('NEW', c) }} IS DISTINCT FROM {{ as_text('OLD', c) }}){% if c.default is none %} OR (TG_OP = 'INSERT' AND pg_catalog.num_nulls(NEW.{{ c.name|ident }}) = 0){% endif %}{% endif %}
{%- endmacro %}
{#- The NOT NULL or CHECK error for NEW, as ExecConstraints raises it (recorded: NEW is the
    version recorded, _cow_failed the CHECK it breaks, if any). Its DETAIL is
    ExecBuildSlotValueDescription's: every column for a role with SELECT on the table, else
    "(a, b) = (1, 2)" over the columns it may read or gave a value, else none; values of more
    than 64 bytes are cut at a character boundary and end in "...". Before the version is
    recorded (a key column is null) generated columns are not computed yet: they are not
    reported as null, and show what NEW holds. -#}
{% macro raise_row_error(recorded) -%}
        DECLARE
            _cow_role name := {{ caller_role() }};
            _cow_all boolean := pg_catalog.has_table_privilege(_cow_role, {{ view|literal }}, 'SELECT');
            _cow_names text[] := '{}';
            _cow_values text[] := '{}';
            _cow_value text;
            _cow_detail text;
{% set nullable = t.columns|selectattr('not_null')|list if recorded else t.columns|selectattr('not_null')|rejectattr('generated')|list %}
            _cow_column text := {% if nullable %}CASE{% for c in nullable %} WHEN pg_catalog.num_nulls(NEW.{{ c.name|ident }}) = 1 THEN {{ c.name|literal }}{% endfor %} END{% else %}NULL{% endif %};
        BEGIN
{% for c in t.columns %}
            IF _cow_all OR pg_catalog.has_column_privilege(_cow_role, {{ view|literal }}, {{ c.name|literal }}, 'SELECT')
               OR {{ provided(c) }} THEN
                _cow_names := _cow_names || {{ c.name|literal }}::text;
                _cow_values := _cow_values || {% if c.virtual %}'virtual'::text{% else %}{{ value_text('NEW', c.name) }}{% endif %};
            END IF;
{% endfor %}
            FOR _cow_i IN 1 .. pg_catalog.cardinality(_cow_values) LOOP
                _cow_value := _cow_values[_cow_i];
                IF pg_catalog.octet_length(_cow_value) > 64 THEN
                    _cow_value := pg_catalog.left(_cow_value, 64);
                    WHILE pg_catalog.octet_length(_cow_value) > 64 LOOP
                        _cow_value := pg_catalog.left(_cow_value, -1);
                    END LOOP;
                    _cow_values[_cow_i] := _cow_value || '...';
                END IF;
            END LOOP;
            _cow_detail := 'Failing row contains '
                || CASE WHEN _cow_all THEN ''
                        ELSE '(' || pg_catalog.array_to_string(_cow_names, ', ') || ') = ' END
                || '(' || pg_catalog.array_to_string(_cow_values, ', ') || ').';
            IF pg_catalog.cardinality(_cow_values) = 0 THEN
                _cow_detail := NULL;
            END IF;
            IF _cow_column IS NOT NULL THEN
            {%+ call raise_with_detail('_cow_detail') %}ERRCODE = 'not_null_violation',
                    MESSAGE = 'null value in column "' || _cow_column || {{ ('" of relation "' ~ t.name ~ '" violates not-null constraint')|literal }},
                    COLUMN = _cow_column, TABLE = {{ t.name|literal }}, SCHEMA = {{ t.schema|literal }}{% endcall %};
            END IF;
{% if recorded %}
            {%+ call raise_with_detail('_cow_detail') %}ERRCODE = 'check_violation',
                MESSAGE = {{ ('new row for relation "' ~ t.name ~ '" violates check constraint "')|literal }} || _cow_failed || '"',
                CONSTRAINT = _cow_failed, TABLE = {{ t.name|literal }}, SCHEMA = {{ t.schema|literal }}{% endcall %};
{% endif %}
        END;
{%- endmacro %}
{#- The duplicate-key error of a unique index; the key is shown to a role that may read it. -#}
{% macro raise_duplicate(key) -%}
IF {{ key_visible(view, key.columns) }} THEN
                RAISE EXCEPTION USING ERRCODE = 'unique_violation',
                    MESSAGE = {{ ('duplicate key value violates unique constraint "' ~ key.name ~ '"')|literal }},
                    DETAIL = 'Key ' || {{ key_text('NEW', key.columns, quote_names=true) }} || ' already exists.',
                    CONSTRAINT = {{ key.name|literal }}, TABLE = {{ t.name|literal }}, SCHEMA = {{ t.schema|literal }};
            END IF;
            RAISE EXCEPTION USING ERRCODE = 'unique_violation',
                MESSAGE = {{ ('duplicate key value violates unique constraint "' ~ key.name ~ '"')|literal }},
                CONSTRAINT = {{ key.name|literal }}, TABLE = {{ t.name|literal }}, SCHEMA = {{ t.schema|literal }}
{%- endmacro %}
CREATE {% if replace %}OR REPLACE {% endif %}FUNCTION {{ t.schema|ident }}.{{ names.write_function|ident }}() RETURNS trigger
{{ security_definer() }}
AS {{ tag }}
#variable_conflict use_column
DECLARE
    _cow_sid uuid := agentcow.session_id();
    _cow_op uuid;
    _cow_at bigint;
{% if checked %}
    _cow_nulls integer;  -- of the NOT NULL columns, how many the version leaves null
    _cow_failed text;    -- the first CHECK constraint, by name, that it breaks
{% endif %}
BEGIN
{% for g in t.generated_columns %}
    IF TG_OP = 'INSERT' AND NEW.{{ g|ident }} IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'generated_always',
            MESSAGE = {{ ('cannot insert a non-DEFAULT value into column "' ~ g ~ '"')|literal }},
            DETAIL = {{ ('Column "' ~ g ~ '" is a generated column.')|literal }};
    ELSIF TG_OP = 'UPDATE' AND NEW.{{ g|ident }} IS DISTINCT FROM OLD.{{ g|ident }} THEN
        RAISE EXCEPTION USING ERRCODE = 'generated_always',
            MESSAGE = {{ ('column "' ~ g ~ '" can only be updated to DEFAULT')|literal }},
            DETAIL = {{ ('Column "' ~ g ~ '" is a generated column.')|literal }};
    END IF;
{% endfor %}
{% for a in t.always_identity_columns %}
    IF TG_OP = 'INSERT' AND NOT agentcow.is_drawn_identity(NEW.{{ a|ident }}, {{ t.relation.oid }}) THEN
        RAISE EXCEPTION USING ERRCODE = 'generated_always',
            MESSAGE = {{ ('cannot insert a non-DEFAULT value into column "' ~ a ~ '"')|literal }},
            DETAIL = {{ ('Column "' ~ a ~ '" is an identity column defined as GENERATED ALWAYS.')|literal }},
            HINT = 'Use OVERRIDING SYSTEM VALUE to override.';
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.{{ a|ident }} IS DISTINCT FROM OLD.{{ a|ident }} THEN
        RAISE EXCEPTION USING ERRCODE = 'generated_always',
            MESSAGE = {{ ('column "' ~ a ~ '" can only be updated to DEFAULT')|literal }},
            DETAIL = {{ ('Column "' ~ a ~ '" is an identity column defined as GENERATED ALWAYS.')|literal }};
    END IF;
{% endfor %}
    IF _cow_sid IS NULL THEN
        -- No session: the table as it always was.
        IF TG_OP = 'INSERT' THEN
            INSERT INTO {{ base|catalog }} AS b ({{ t.writable_columns|columns }})
{% if t.always_identity_columns %}
            OVERRIDING SYSTEM VALUE
{% endif %}
            VALUES ({{ t.writable_columns|columns('NEW') }})
            RETURNING {{ t.column_names|columns('b') }} INTO NEW;
            RETURN NEW;
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
    END IF;

    _cow_op := agentcow.require_write_operation();

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
        {{ raise_row_error(false) }}
    END IF;

    -- The check constraints are evaluated on the version recorded, with its generated
    -- columns computed (bare column names are its columns: #variable_conflict use_column).
    INSERT INTO {{ changes|catalog }} AS c (session_id, operation_id, _cow_kind, _cow_old, {{ t.writable_columns|columns }})
    VALUES (_cow_sid, _cow_op, CASE TG_OP WHEN 'INSERT' THEN 'I' ELSE 'U' END::"char",
            CASE WHEN TG_OP = 'UPDATE' AND {{ row('NEW', pk) }} IS NOT DISTINCT FROM {{ row('OLD', pk) }} THEN {{ old_row() }} END,
            {{ t.writable_columns|columns('NEW') }})
    RETURNING c._cow_seq, {{ t.column_names|columns('c') }}{% if checked %},
              {% if not_null %}pg_catalog.num_nulls({{ not_null|columns('c') }}){% else %}0{% endif %},
              {% if t.checks %}CASE{% for check in t.checks %} WHEN ({{ check.expression|catalog }}) IS FALSE THEN {{ check.name|literal }}{% endfor %} END{% else %}NULL{% endif %}{% endif %}

         INTO _cow_at, {{ t.column_names|columns('NEW') }}{% if checked %}, _cow_nulls, _cow_failed{% endif %};
{% if checked %}
    IF _cow_nulls > 0 OR _cow_failed IS NOT NULL THEN
        {{ raise_row_error(true) }}
    END IF;
{% endif %}

    IF TG_OP = 'INSERT' OR {{ row('NEW', pk) }} IS DISTINCT FROM {{ row('OLD', pk) }} THEN
        -- Was the key live before this write (in the session, else in the base)? A duplicate.
        -- (_cow_seq + 0: on the primary key's index, whatever the statistics say; with the
        -- sequence as an index condition, plans made while the change table looked empty
        -- walked the (session_id, _cow_seq) index through the whole session on every write.)
        IF coalesce((SELECT p._cow_kind IN ('I', 'U')
                       FROM {{ changes|catalog }} p
                      WHERE p.session_id = _cow_sid AND {{ match('p', 'NEW', pk) }} AND p._cow_seq + 0 < _cow_at
                      ORDER BY p._cow_seq DESC
                      LIMIT 1),
                    EXISTS (SELECT FROM {{ base|catalog }} b WHERE {{ match('b', 'NEW', pk) }})) THEN
            {{ raise_duplicate(t.primary_key) }};
        END IF;
    END IF;
{% for key in t.unique_keys %}

    IF (TG_OP = 'INSERT' OR {{ row('NEW', key.columns) }} IS DISTINCT FROM {{ row('OLD', key.columns) }}
        OR {{ row('NEW', pk) }} IS DISTINCT FROM {{ row('OLD', pk) }})
{% if not key.nulls_not_distinct %}
       AND NOT {{ any_null('NEW', key.columns) }}
{% endif %}
       AND EXISTS (SELECT FROM {{ view|catalog }} v
                    WHERE {% for c in key.columns %}v.{{ c|ident }} {{ ('IS NOT DISTINCT FROM' if key.nulls_not_distinct else '=')|catalog }} NEW.{{ c|ident }} AND {% endfor %}{{ row('v', pk) }} IS DISTINCT FROM {{ row('NEW', pk) }}) THEN
        {{ raise_duplicate(key) }};
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
    FOR EACH ROW EXECUTE FUNCTION {{ t.schema|ident }}.{{ names.write_function|ident }}()
{% endif %}
