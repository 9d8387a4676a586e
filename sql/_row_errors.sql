{#- The errors of a row written in a session, as PostgreSQL raises them for the table:
    NOT NULL, CHECK and duplicate keys, with a DETAIL that shows only what the calling role
    may read. Shared by the write triggers (write_trigger.sql, write_trigger_append.sql). -#}
{% from '_macros.sql' import key_text, key_visible, caller_role, value_text, raise_with_detail %}
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
{% macro raise_row_error(t, recorded) -%}
{% set view = t.view|qualified %}
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
{% macro raise_duplicate(t, key) -%}
{% set view = t.view|qualified %}
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

{#- For the RETURNING of the statement that records version c: how many NOT NULL columns it
    leaves null, and the first CHECK constraint (by name) it breaks, if any. Bare column names
    in check expressions are c's (the function has #variable_conflict use_column). -#}
{% macro check_results(t, not_null) -%}
{% if not_null %}pg_catalog.num_nulls({{ not_null|columns('c') }}){% else %}0{% endif %},
              {% if t.checks %}CASE{% for check in t.checks %} WHEN ({{ check.expression|catalog }}) IS FALSE THEN {{ check.name|literal }}{% endfor %} END{% else %}NULL{% endif %}
{%- endmacro %}

{#- The variables record_checked fills (when the table has NOT NULL or CHECK to check) -#}
{% macro check_declarations(t) -%}
{% if t.columns|selectattr('not_null')|map(attribute='name')|reject('in', t.pk_columns)|list or t.checks %}
    _cow_nulls integer;  -- of the NOT NULL columns, how many the version leaves null
    _cow_failed text;    -- the first CHECK constraint, by name, that it breaks
{% endif %}
{%- endmacro %}

{#- The end of the statement that records version c: its row back into NEW, and the NOT NULL
    or CHECK error if the version breaks one (needs check_declarations). -#}
{% macro record_checked(t) -%}
{% set not_null = t.columns|selectattr('not_null')|map(attribute='name')|reject('in', t.pk_columns)|list %}
{% set checked = not_null or t.checks %}
    RETURNING c._cow_seq, {{ t.column_names|columns('c') }}{% if checked %},
              {{ check_results(t, not_null) }}{% endif %}

         INTO _cow_at, {{ t.column_names|columns('NEW') }}{% if checked %}, _cow_nulls, _cow_failed{% endif %};
{% if checked %}
    IF _cow_nulls > 0 OR _cow_failed IS NOT NULL THEN
        {{ raise_row_error(t, true) }}
    END IF;
{% endif %}
{%- endmacro %}
