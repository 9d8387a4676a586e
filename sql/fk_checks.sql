{#- DEFERRABLE foreign keys in a session, checked like PostgreSQL's own: as constraint triggers
    on the change table with the key's deferrability, so INITIALLY DEFERRED keys are checked at
    commit and SET CONSTRAINTS applies. They read the merged views of the session that wrote
    the row. Other keys are checked at the end of each statement (fk_statement_checks.sql).
    Tenant isolation: as there (the views hide other tenants' parents; other tenants'
    children are probed in the child's base).
    replace: only the functions, replacing those a table already has (upgrades). -#}
{% from '_macros.sql' import match, row, any_null, all_null, key_written, security_definer, key_index,
    session_switch_declarations, switch_to_row_session, switch_back, raise_missing_parent, raise_mixed_nulls,
    raise_still_referenced, other_tenants_children %}
{% set base = t.base|qualified %}
{% set changes = t.changes|qualified %}
{% set view = t.view|qualified %}
{% set pk = t.pk_columns %}
{% if t.parents_checked_per_row %}
-- This table as the child: the parent row must exist for every live version written.
CREATE {% if replace %}OR REPLACE {% endif %}FUNCTION {{ t.function(names.parent_check_function)|qualified }}() RETURNS trigger
{{ security_definer() }}
AS {{ tag }}
DECLARE
{{ session_switch_declarations() }}
BEGIN
{% if not t.append_only %}
    IF EXISTS (SELECT FROM {{ changes|catalog }} l
               WHERE l.session_id = NEW.session_id AND {{ match('l', 'NEW', pk) }} AND l._cow_seq > NEW._cow_seq AND {{ key_index('l') }}) THEN
        RETURN NULL;  -- superseded by a later write, which is checked on its own
    END IF;
{% endif %}
{{ switch_to_row_session() }}
    <<checks>>
    BEGIN
{% for fk in t.parents_checked_per_row %}
    IF TG_ARGV[0] = {{ fk.name|literal }} THEN
        IF NOT {{ key_written(t, fk, 'NEW') }} THEN
            EXIT checks;  -- an update that kept the key: PostgreSQL does not check it again
        END IF;
        IF {{ any_null('NEW', fk.child_columns) }} THEN
{% if fk.match_full %}
            IF NOT {{ all_null('NEW', fk.child_columns) }} THEN
                {{ raise_mixed_nulls(t, fk) }};
            END IF;
{% endif %}
            EXIT checks;  -- a NULL in the key: nothing to check (MATCH SIMPLE)
        END IF;
        IF NOT EXISTS (SELECT FROM {{ fk.parent_view|qualified }} p
                       WHERE {{ match('p', 'NEW', fk.parent_columns, fk.child_columns) }}) THEN
            {{ raise_missing_parent(t, fk, 'NEW') }};
        END IF;
        EXIT checks;
    END IF;
{% endfor %}
    END checks;
{{ switch_back() }}
    RETURN NULL;
END
{{ tag }}
--;
{% for fk in t.parents_checked_per_row if not replace %}
CREATE CONSTRAINT TRIGGER {{ fk.name|ident }}
    AFTER INSERT ON {{ changes|catalog }} {{ fk.deferrability|catalog }}
    FOR EACH ROW WHEN (NEW._cow_kind IN ('I', 'U'))
    EXECUTE FUNCTION {{ t.function(names.parent_check_function)|qualified }}({{ fk.name|literal }})
--;
{% endfor %}
{% endif %}
{% set no_action = t.children_checked_per_row %}
{% if no_action %}
-- This table as the parent, NO ACTION keys: a key value this write took away must not be
-- referenced by live children once the check runs (statement end, or commit if deferred).
CREATE {% if replace %}OR REPLACE {% endif %}FUNCTION {{ t.function(names.children_check_function)|qualified }}() RETURNS trigger
{{ security_definer() }}
AS {{ tag }}
DECLARE
    _cow_gone record;
{% if no_action|selectattr('other_tenant_column')|list %}
    _cow_tenant text := agentcow.session_tenant(NEW.session_id);
{% endif %}
{{ session_switch_declarations() }}
BEGIN
{{ switch_to_row_session() }}
    <<checks>>
    BEGIN
{% for fk in no_action %}
    IF TG_ARGV[0] = {{ loop.index0|string|literal }} THEN
{% set refs_pk = fk.parent_columns|reject('in', pk)|list|length == 0 %}
        IF NEW._cow_kind = 'D' THEN
{% if fk.on_delete != 'a' %}
            EXIT checks;
{% else %}
            _cow_gone := NEW;
{% endif %}
        ELSIF NEW._cow_kind = 'M' THEN
{% if fk.on_update != 'a' %}
            EXIT checks;
{% else %}
            _cow_gone := NEW;
{% endif %}
        ELSE
{% if refs_pk or fk.on_update != 'a' %}
            EXIT checks;  -- a live version keeps its key
{% else %}
            SELECT {{ fk.parent_columns|columns('p') }} INTO _cow_gone
              FROM {{ changes|catalog }} p
             WHERE p.session_id = NEW.session_id AND {{ match('p', 'NEW', pk) }} AND p._cow_seq < NEW._cow_seq AND {{ key_index('p') }}
             ORDER BY p._cow_seq DESC LIMIT 1;
            IF NOT FOUND THEN
                SELECT {{ fk.parent_columns|columns('b') }} INTO _cow_gone
                  FROM {{ base|catalog }} b WHERE {{ match('b', 'NEW', pk) }};
                IF NOT FOUND THEN EXIT checks; END IF;
            END IF;
            IF {{ row('_cow_gone', fk.parent_columns) }} IS NOT DISTINCT FROM {{ row('NEW', fk.parent_columns) }} THEN
                EXIT checks;
            END IF;
{% endif %}
        END IF;
        IF {{ any_null('_cow_gone', fk.parent_columns) }}
           OR EXISTS (SELECT FROM {{ view|catalog }} v WHERE {{ match('v', '_cow_gone', fk.parent_columns) }}) THEN
            EXIT checks;  -- nothing to reference, or the key value is present again
        END IF;
        IF EXISTS (SELECT FROM {{ fk.child_view|qualified }} r
                   WHERE {{ match('r', '_cow_gone', fk.child_columns, fk.parent_columns) }})
{% if fk.other_tenant_column %}
           OR {{ other_tenants_children(fk, '_cow_gone') }}
{% endif %}
        THEN
            {{ raise_still_referenced(t, fk, '_cow_gone') }};
        END IF;
        EXIT checks;
    END IF;
{% endfor %}
    END checks;
{{ switch_back() }}
    RETURN NULL;
END
{{ tag }}
--;
{% for fk in no_action if not replace %}
CREATE CONSTRAINT TRIGGER {{ ('_cow_referenced_' ~ loop.index0)|ident }}
    AFTER INSERT ON {{ changes|catalog }} {{ fk.deferrability|catalog }}
    FOR EACH ROW EXECUTE FUNCTION {{ t.function(names.children_check_function)|qualified }}({{ loop.index0|string|literal }})
--;
{% endfor %}
{% endif %}
