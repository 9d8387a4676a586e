{#- INSTEAD OF INSERT/UPDATE/DELETE on the view of an append-only table: no primary key and no
    NOT NULL unique key tells its rows apart (included by write_trigger.sql).

    Without a session, writes go to the base table as before. The trigger gets the row the
    statement read only by value, so an UPDATE or DELETE locks the first stored row equal to
    it (binary image, *=) and writes that one by its ctid: one stored row per call, so exact
    duplicates are each written once. When a column leads an index (t.lookup_columns), the
    lookup probes that index by its value (a scan when the value is NULL); else it scans the
    table, which makes a large UPDATE or DELETE of a large table slow. None left means another transaction changed or deleted
    the row meanwhile; without a key the two cannot be told apart, so it is refused (40001)
    rather than skipped, which could lose that transaction's change.

    In a session, an INSERT appends an I version (its own row: _cow_seq is its key, _cow_old
    stays NULL); commit appends it to the base. An UPDATE or DELETE is refused before it
    writes anything (feature_not_supported): nothing would say which row a later version
    replaces, in the session or at commit.

    The generated and identity checks are those of write_trigger.sql. -#}
{% from '_macros.sql' import refuse_without_session, refuse_unbound, match, any_null, security_definer, refuse_generated_values, insert_without_session, check_tenant %}
{% from '_row_errors.sql' import raise_row_error, raise_duplicate, check_declarations, record_checked %}
{% set base = t.base|qualified %}
{% set changes = t.changes|qualified %}
{#- NOT NULL and CHECK are this trigger's to check (changes_table.sql copies neither) -#}
{% set view = t.view|qualified %}
{#- the first stored row equal to OLD, locked; by = a column that leads an index -#}
{% macro find_stored(by) -%}
SELECT _cow_b.ctid INTO _cow_stored
              FROM {{ base|catalog }} AS _cow_b
             WHERE {% if by is not none %}_cow_b.{{ by|ident }} = OLD.{{ by|ident }} AND {% endif %}_cow_b *= ROW({{ t.column_names|columns('OLD') }})::{{ base|catalog }}
             LIMIT 1
               FOR UPDATE OF _cow_b
{%- endmacro %}
CREATE {% if replace %}OR REPLACE {% endif %}FUNCTION {{ t.function(names.write_function)|qualified }}() RETURNS trigger
{{ security_definer() }}
AS {{ tag }}
#variable_conflict use_column
DECLARE
    _cow_sid uuid := agentcow.session_id();
    _cow_op uuid;
    _cow_at bigint;
    _cow_stored tid;
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
        END IF;
{% if t.lookup_columns %}
        IF OLD.{{ t.lookup_columns[0]|ident }} IS NOT NULL THEN
            {{ find_stored(t.lookup_columns[0]) }};
        ELSE
            {{ find_stored(none) }};
        END IF;
{% else %}
        {{ find_stored(none) }};
{% endif %}
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'serialization_failure',
                MESSAGE = 'could not serialize access due to concurrent update',
                DETAIL = {{ ('Another transaction changed or deleted a row of ' ~ t.name ~ ' after this statement read it; retry the statement.')|literal }};
        END IF;
        IF TG_OP = 'UPDATE' THEN
            UPDATE {{ base|catalog }} AS _cow_b
               SET ({{ t.updatable_columns|columns }}) = ROW({{ t.updatable_columns|columns('NEW') }})
             WHERE _cow_b.ctid = _cow_stored
            RETURNING {{ t.column_names|columns('_cow_b') }} INTO NEW;
            RETURN NEW;
        END IF;
        DELETE FROM {{ base|catalog }} AS _cow_b WHERE _cow_b.ctid = _cow_stored;
        RETURN OLD;
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

    IF TG_OP <> 'INSERT' THEN
        RAISE EXCEPTION USING ERRCODE = 'feature_not_supported',
            MESSAGE = 'agentcow: cannot ' || pg_catalog.lower(TG_OP) || {{ (' rows of table ' ~ t.schema ~ '.' ~ t.name ~ ' in a session')|literal }},
            DETAIL = {{ ('Table ' ~ t.schema ~ '.' ~ t.name ~ ' has no primary key (nor a NOT NULL unique key), so nothing tells its rows apart: a session may only insert into it.')|literal }},
            HINT = 'Give the table a primary key (disable COW on it, add the key, enable again), or make this change outside the session.',
            TABLE = {{ t.name|literal }}, SCHEMA = {{ t.schema|literal }};
    END IF;

    INSERT INTO {{ changes|catalog }} AS c (session_id, operation_id, _cow_kind, {{ t.writable_columns|columns }})
    VALUES (_cow_sid, _cow_op, 'I', {{ t.writable_columns|columns('NEW') }})
{{ record_checked(t) }}
{% for key in t.unique_keys %}

    -- {{ key.name|ident }}: no stored row, and no other row of the session, has the values.
    -- The session is compared with IS NOT DISTINCT FROM, which no index can use: else a
    -- plan made while the change table was empty picks any index led by session_id (they
    -- tie), and each row written scans the session. The key leads an index of its own.
    IF {% if not key.nulls_not_distinct %}NOT {{ any_null('NEW', key.columns) }} AND {% endif %}(
           EXISTS (SELECT FROM {{ base|catalog }} b
                   WHERE {{ match('b', 'NEW', key.columns, op=('IS NOT DISTINCT FROM' if key.nulls_not_distinct else '=')) }})
           OR EXISTS (SELECT FROM {{ changes|catalog }} p
                      WHERE {{ match('p', 'NEW', key.columns, op=('IS NOT DISTINCT FROM' if key.nulls_not_distinct else '=')) }}
                        AND p.session_id IS NOT DISTINCT FROM _cow_sid AND p._cow_seq <> _cow_at)) THEN
        {{ raise_duplicate(t, key) }};
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
