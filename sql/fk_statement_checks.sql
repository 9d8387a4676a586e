{#- Foreign keys that are not deferrable, checked when each statement on the view ends, as
    PostgreSQL checks them: a statement may insert a child before its parent, or delete a parent
    together with its children. A BEFORE STATEMENT trigger marks the change sequence; the AFTER
    STATEMENT trigger checks, set-based, the rows this statement wrote in this session. Marks are
    kept per trigger depth, so statements run by cascades check their own rows, in
    agentcow.backend_state (agentcow.remember / recall), which no SQL but the owner's
    triggers can change: a mark kept in a setting could be moved by the checked statement
    itself (set_config in its WHERE clause) to skip its checks.
    A session bound to a tenant sees no parent of another tenant (the parent's view hides
    them, and so does the probe of its base), and no value of its own is removed while
    another tenant's children still reference it (the child's base is probed for them: the
    child's view hides them, where PostgreSQL's checks see every row).
    replace: only the function, replacing the one a table already has (upgrades). -#}
{% from '_macros.sql' import match, row, any_null, all_null, is_latest, key_written, prior_version,
    security_definer, raise_missing_parent, raise_mixed_nulls, raise_still_referenced, key_index, seq_index,
    other_tenants_children %}
{% set changes = t.changes|qualified %}
{% set view = t.view|qualified %}
{% set pk = t.pk_columns %}
{% set mark_name = 'mark_' ~ t.relation.oid ~ '_' %}
{#- how many writes of the statement to this view have begun and not yet been checked -#}
{% set open_name = 'open_' ~ t.relation.oid ~ '_' %}
{#- The key values of this table that rows written by the statement took away: for event
    'delete', rows deleted; for 'update', keys changed and referenced non-key columns updated. -#}
{% macro removed_values(fk, event) -%}
        SELECT c._cow_seq AS _cow_at, {{ fk.parent_columns|columns('c') }}
        FROM {{ changes|catalog }} c
        WHERE c.session_id = _cow_sid AND c._cow_seq > _cow_mark AND {{ seq_index('c') }}
          AND c._cow_kind = {{ ('D' if event == 'delete' else 'M')|literal }}
{% if event == 'update' and (fk.parent_columns|reject('in', pk)|list) %}
        UNION ALL
        SELECT c._cow_seq, {{ fk.parent_columns|columns('prev') }}
        FROM {{ changes|catalog }} c
        CROSS JOIN LATERAL ({{ prior_version(t, 'c', fk.parent_columns) }}) prev
        WHERE c.session_id = _cow_sid AND c._cow_seq > _cow_mark AND {{ seq_index('c') }} AND c._cow_kind = 'U'
          AND {{ row('prev', fk.parent_columns) }} IS DISTINCT FROM {{ row('c', fk.parent_columns) }}
{% endif %}
{%- endmacro %}
{#- The checks, in the order PostgreSQL runs them for one row: the keys of children (this
    table as the parent; its RI triggers are named RI_ConstraintTrigger_a_*), then the keys to
    parents (RI_ConstraintTrigger_c_*), each in trigger-name order. PostgreSQL goes row by row,
    so the error is that of the earliest row written that breaks a key: each check finds its
    earliest (by change sequence), and the first check to find the earliest row wins. -#}
{% set ns = namespace(checks=[]) %}
{% for fk in t.children_checked_per_statement %}
{% for event, action in [('delete', fk.on_delete), ('update', fk.on_update)] %}
{% if action == 'r' or (action == 'a' and not fk.deferrable) %}
{% set ns.checks = ns.checks + [('removed', fk, event, action)] %}
{% endif %}
{% endfor %}
{% endfor %}
{% for fk in t.parents_checked_per_statement %}
{% if fk.match_full %}
{% set ns.checks = ns.checks + [('mixed', fk, none, none)] %}
{% endif %}
{% set ns.checks = ns.checks + [('missing', fk, none, none)] %}
{% endfor %}
{% set checks = ns.checks %}
{% set ns.tenants = false %}
{% for kind, fk, event, action in checks if fk.other_tenant_column and kind != 'mixed' %}
{% set ns.tenants = true %}
{% endfor %}
{% if t.parents_checked_per_statement or t.children_checked_per_statement %}
CREATE {% if replace %}OR REPLACE {% endif %}FUNCTION {{ t.function(names.statement_check_function)|qualified }}() RETURNS trigger
{{ security_definer() }}
AS {{ tag }}
DECLARE
    _cow_sid uuid := agentcow.session_id();
    _cow_mark bigint;
    _cow_open bigint;   -- writes of the statement to the view begun and not yet checked
    _cow_first bigint;  -- the earliest version found breaking a key
    _cow_which integer; -- the check that found it
{% if ns.tenants %}
    _cow_tenant text := agentcow.session_tenant(_cow_sid);
{% endif %}
{% for check in checks %}
    _cow_row_{{ loop.index0 }} record;
{% endfor %}
BEGIN
    IF _cow_sid IS NULL THEN
        RETURN NULL;  -- without a session the base table's own constraints apply
    END IF;
    -- A statement may write the view more than once (data-modifying WITH parts, such as an
    -- upsert's update and insert): the first write to begin marks the sequence and every
    -- check covers all of them (a later mark would hide the earlier writes from the checks).
    _cow_open := coalesce(agentcow.recall({{ open_name|literal }} || pg_catalog.pg_trigger_depth()), 0);
    IF TG_WHEN = 'BEFORE' THEN
        IF _cow_open = 0 THEN
            PERFORM agentcow.remember({{ mark_name|literal }} || pg_catalog.pg_trigger_depth(), agentcow.change_mark());
        END IF;
        PERFORM agentcow.remember({{ open_name|literal }} || pg_catalog.pg_trigger_depth(), _cow_open + 1);
        RETURN NULL;
    END IF;
    PERFORM agentcow.remember({{ open_name|literal }} || pg_catalog.pg_trigger_depth(), GREATEST(_cow_open - 1, 0));
    _cow_mark := coalesce(agentcow.recall({{ mark_name|literal }} || pg_catalog.pg_trigger_depth()), 0);
{% for kind, fk, event, action in checks %}
{% set var = '_cow_row_' ~ loop.index0 %}
{% if kind == 'removed' %}

    -- {{ fk.name|ident }} of {{ fk.child_table|ident }}: no child may reference a value removed ({{ event|catalog }})
    SELECT g._cow_at, {{ fk.parent_columns|columns('g') }} INTO {{ var|catalog }}
    FROM (
{{ removed_values(fk, event) }}
    ) g
    WHERE NOT {{ any_null('g', fk.parent_columns) }}
{#- NO ACTION: the value may be present again. And when a row's key changes, a referenced
    non-key value it keeps is not removed (PostgreSQL checks only changed referenced values). -#}
{% if action == 'a' or (event == 'update' and (fk.parent_columns|reject('in', pk)|list)) %}
      AND NOT EXISTS (SELECT FROM {{ view|catalog }} v WHERE {{ match('v', 'g', fk.parent_columns) }})
{% endif %}
      AND (EXISTS (SELECT FROM {{ fk.child_view|qualified }} r
                   WHERE {{ match('r', 'g', fk.child_columns, fk.parent_columns) }})
{% if fk.other_tenant_column %}
           OR {{ other_tenants_children(fk, 'g') }}
{% endif %}
          )
    ORDER BY g._cow_at
    LIMIT 1;
{% elif kind == 'mixed' %}

    -- {{ fk.name|ident }}: MATCH FULL, a key either all null or all set
    SELECT c._cow_seq AS _cow_at INTO {{ var|catalog }}
    FROM {{ changes|catalog }} c
    WHERE c.session_id = _cow_sid AND c._cow_seq > _cow_mark AND {{ seq_index('c') }} AND c._cow_kind IN ('I', 'U')
      AND {{ any_null('c', fk.child_columns) }} AND NOT {{ all_null('c', fk.child_columns) }}
      AND {{ is_latest(t, 'c') }}
      AND {{ key_written(t, fk, 'c') }}
    ORDER BY c._cow_seq
    LIMIT 1;
{% else %}

    -- {{ fk.name|ident }}: the parent of every row written must exist. OFFSET 0 keeps the
    -- lookup a subplan run per row written, where the key reaches the parent view's arms and
    -- their indexes: as an anti-join, the view (a subquery) could only be scanned whole.
    SELECT c._cow_seq AS _cow_at, {{ fk.child_columns|columns('c') }} INTO {{ var|catalog }}
    FROM {{ changes|catalog }} c
    WHERE c.session_id = _cow_sid AND c._cow_seq > _cow_mark AND {{ seq_index('c') }} AND c._cow_kind IN ('I', 'U')
      AND NOT {{ any_null('c', fk.child_columns) }}
      AND {{ is_latest(t, 'c') }}
      AND {{ key_written(t, fk, 'c') }}
{% if fk.references_cow_key %}
      {#- two probes by the parent's key: its latest version in the session, else its base row #}
      AND NOT coalesce(
            (SELECT pc._cow_kind IN ('I', 'U')
             FROM {{ fk.parent_changes|qualified }} pc
             WHERE pc.session_id = _cow_sid AND {{ match('pc', 'c', fk.parent_columns, fk.child_columns) }} AND {{ key_index('pc') }}
             ORDER BY pc._cow_seq DESC
             LIMIT 1),
            EXISTS (SELECT FROM {{ fk.parent_base|qualified }} p
                    WHERE {{ match('p', 'c', fk.parent_columns, fk.child_columns) }}
{% if fk.other_tenant_column %}
                      AND (_cow_tenant IS NULL OR p.{{ fk.other_tenant_column|ident }} = _cow_tenant::{{ fk.other_tenant_type|catalog }})
{% endif %}
                   ))
{% else %}
      AND NOT EXISTS (SELECT FROM {{ fk.parent_view|qualified }} p
                      WHERE {{ match('p', 'c', fk.parent_columns, fk.child_columns) }}
                      OFFSET 0)
{% endif %}
    ORDER BY c._cow_seq
    LIMIT 1;
{% endif %}
    IF FOUND AND (_cow_first IS NULL OR {{ var|catalog }}._cow_at < _cow_first) THEN
        _cow_first := {{ var|catalog }}._cow_at;
        _cow_which := {{ loop.index0 }};
    END IF;
{% endfor %}
{% for kind, fk, event, action in checks %}
{% set var = '_cow_row_' ~ loop.index0 %}

    IF _cow_which = {{ loop.index0 }} THEN
{% if kind == 'removed' %}
        {{ raise_still_referenced(t, fk, var, restrict=(action == 'r')) }};
{% elif kind == 'mixed' %}
        {{ raise_mixed_nulls(t, fk) }};
{% else %}
        {{ raise_missing_parent(t, fk, var) }};
{% endif %}
    END IF;
{% endfor %}
    RETURN NULL;
END
{{ tag }}
--;
{% if not replace %}
CREATE TRIGGER {{ names.statement_start_trigger|ident }}
    BEFORE INSERT OR UPDATE OR DELETE ON {{ view|catalog }}
    FOR EACH STATEMENT EXECUTE FUNCTION {{ t.function(names.statement_check_function)|qualified }}()
--;
CREATE TRIGGER {{ names.statement_end_trigger|ident }}
    AFTER INSERT OR UPDATE OR DELETE ON {{ view|catalog }}
    FOR EACH STATEMENT EXECUTE FUNCTION {{ t.function(names.statement_check_function)|qualified }}()
--;
{% endif %}
{% endif %}
