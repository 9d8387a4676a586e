{#- Applies a session's changes (or the chosen operations' changes) to the base tables, set-based,
    in one PL/pgSQL block. The state applied for a key is its latest chosen version.

    Foreign keys and unique constraints of the base tables are checked as each statement runs,
    so the order matters: a child may have to stop referencing a parent before the parent goes,
    a row may have to go before another takes its unique value, and such needs chain across
    tables. The block therefore repeats, until nothing moves:
      - move rows whose unique value the session has under a key not stored yet, while their
        own key gives it up (the session changed the row's key, or deleted the row or changed
        the value and then gave it to a row under a new key): the stored row is updated in
        place, as on a plain table, so children referencing that value stay satisfied, and
        its own key is left free for the session's version there;
      - delete rows the session removed (or whose unique values it changed: they come back
        with the upsert) that no stored row references;
      - upsert live rows that are ready: their parents are stored for good (or the stored row
        references them already: writing it pins nothing new, and may free another parent
        the schedule waits for), no other stored row holds their unique values, and no stored
        child still references a value they change;
    then applies whatever remains unconditionally (parents' upserts first, children's deletes
    first), which raises the error a plain table would if no order can work, and forgets the
    applied versions. Rows already stored as the session has them are left alone.
    A session bound to a tenant is re-checked, and its writes kept, inside the tenant
    (_tenant_checks.sql).

    Tables without unique or foreign keys need no schedule: they get the final pass only.
    So do append-only tables (no key): their chosen rows are appended, in session order, in
    the final pass (after their parents' upserts); they have no conflicts and no deletes.

    Before any of it, the session and the base tables are locked (begin_exclusive: no agent
    write of the session is in flight or can start, other writers of the tables wait, and the
    locks are taken so that the commit never deadlocks), the session is checked to be the
    one the caller planned for (so the versions applied, and then forgotten, are exactly
    those that existed when the commit began), and the base is checked for conflicts: a base
    row changed since the session first wrote its key. on_conflict 'fail' refuses the commit
    with SQLSTATE 40001; 'merge' takes the base's value for every column the session left as
    it was (and refuses when both changed a column differently, or a row's presence differs);
    'overwrite' applies the session's rows as they are. Locked first, checked after: a base
    write racing the commit either lands before the check (and is seen) or waits for the
    commit to end. The error's DETAIL is a JSON array of the conflicts (at most
    conflict_limit per table), which the Python API turns into CommitConflictError. Unless
    allow_cascades, a commit that removes or changes a referenced value that stored rows no
    chosen version shows reference through a cascading key (ON DELETE / ON UPDATE CASCADE,
    SET NULL, SET DEFAULT: they would be written unseen, e.g. an order production added under
    a customer the session deleted) is refused the same way, with cascade_message.

    tables: the dirty tables, parents first; dirty: the same by name; watched, expected: the
    change tables whose versions of the session the caller planned for, and their digest. -#}
{% from '_macros.sql' import match, row, any_null, key_index, any_index %}
{% import '_conflicts.sql' as conflicts %}
{% from '_session_state.sql' import begin_exclusive, end_exclusive %}
{% import '_tenant_checks.sql' as tenants %}
{% import '_history.sql' as history %}
{% macro base(t) %}{{ t.base|qualified }}{% endmacro %}
{% macro changes(t) %}{{ t.changes|qualified }}{% endmacro %}
{% macro chosen(alias) -%}
{{ alias|catalog }}.session_id = {{ session|catalog }} AND {{ any_index(alias) }}{% if operations is not none %} AND {{ alias|catalog }}.operation_id = ANY ({{ operations|catalog }}){% endif %}
{%- endmacro %}
{#- the latest chosen version of its key (max() per key: an index probe, see is_latest) -#}
{% macro latest(t, alias) -%}
{{ alias|catalog }}._cow_seq = (SELECT max(l._cow_seq) FROM {{ changes(t) }} l
                     WHERE {{ chosen('l') }} AND {{ match('l', alias, t.pk_columns) }} AND {{ key_index('l') }})
{%- endmacro %}
{#- base row b will not keep the values of a unique key (columns): the session removes the
    row or changes them at its key, and no version under a key not stored yet has them
    (move_kept_rows moves b there in place, keeping them). -#}
{% macro loses(t, alias, columns) -%}
({{ leaves(t, alias, columns) }}
 AND NOT EXISTS (SELECT FROM {{ changes(t) }} y
                 WHERE {{ chosen('y') }} AND y._cow_kind IN ('I', 'U') AND {{ latest(t, 'y') }}
                   AND {{ match('y', alias, columns) }}
                   AND NOT EXISTS (SELECT FROM {{ base(t) }} o WHERE {{ match('o', 'y', t.pk_columns) }})))
{%- endmacro %}

{#- the session's latest version of stored row b's key does not hold b's values of a unique
    key: they leave that row (for good, or for a row under a new key, see loses); in_place:
    while the row stays at its key (an I or U version), so the values cannot move with it -#}
{% macro leaves(t, alias, columns, in_place=false) -%}
EXISTS (SELECT FROM {{ changes(t) }} x
        WHERE {{ chosen('x') }} AND {{ match('x', alias, t.pk_columns) }} AND {{ latest(t, 'x') }}
          AND {% if in_place %}x._cow_kind IN ('I', 'U') AND {% endif %}{{ gives_up('x', alias, columns) }})
{%- endmacro %}

{#- the latest version x of stored row b's key does not hold b's values of a unique key -#}
{% macro gives_up(x, b, columns) -%}
({{ x|catalog }}._cow_kind IN ('D', 'M') OR {{ row(x, columns) }} IS DISTINCT FROM {{ row(b, columns) }})
{%- endmacro %}

{% macro delete_removable(t) %}
    DELETE FROM {{ base(t) }} AS b
    USING {{ changes(t) }} c
    WHERE {{ chosen('c') }} AND {{ latest(t, 'c') }} AND {{ match('b', 'c', t.pk_columns) }}
      AND (c._cow_kind IN ('D', 'M')
{% for key in t.unique_keys %}
           OR {{ row('b', key.columns) }} IS DISTINCT FROM {{ row('c', key.columns) }}
{% endfor %}
          ){{ tenants.only_tenant(t, 'b') }}
{% for fk in t.referenced_by %}
      AND NOT EXISTS (SELECT FROM {{ fk.child_base|qualified }} r
                      WHERE {{ match('r', 'b', fk.child_columns, fk.parent_columns) }})
{% endfor %}
{% endmacro %}

{#- the conditions for writing change row c over the stored row whose key is stored's: parents
    stored for good (a value a stored row carries to a row under a new key, as its key goes,
    counts: move_kept_rows moves the row with it; a value a stored row that stays at its key
    gives up to a row under a new key is waited for until it is there, since a child written
    first would pin it where it is), or already referenced by that stored row (writing c
    pins nothing new, and may release other parents); unique values free; and no stored
    child left on a value c changes, unless its key follows the change (ON UPDATE CASCADE,
    SET NULL, SET DEFAULT: the base rewrites the child as a plain table's update would; a
    child no chosen version shows was refused before, see unseen_cascades) -#}
{% macro ready_conditions(t, stored) %}
{% for fk in t.foreign_keys %}
{% set parent = dirty.get(fk.parent_table) if fk.parent_schema == t.schema else none %}
      AND ({{ any_null('c', fk.child_columns) }}
           OR EXISTS (SELECT FROM {{ base(t) }} s
                      WHERE {{ match('s', stored, t.pk_columns) }} AND {{ match('s', 'c', fk.child_columns) }})
           OR EXISTS (SELECT FROM {{ fk.parent_base|qualified }} p
                      WHERE {{ match('p', 'c', fk.parent_columns, fk.child_columns) }}
{% if parent and not parent.append_only %}
                        AND NOT {{ loses(parent, 'p', fk.parent_columns) }}
                        AND NOT {{ leaves(parent, 'p', fk.parent_columns, in_place=true) }}
{% endif %}
                     ))
{% endfor %}
{% for key in t.unique_keys %}
      AND NOT EXISTS (SELECT FROM {{ base(t) }} o
                      WHERE {{ match('o', 'c', key.columns) }}
                        AND {{ row('o', t.pk_columns) }} IS DISTINCT FROM {{ row('c', t.pk_columns) }}
                        AND {{ row('o', t.pk_columns) }} IS DISTINCT FROM {{ row(stored, t.pk_columns) }})
{% endfor %}
{% for fk in t.referenced_by if fk.on_update not in ('c', 'n', 'd') %}
      AND NOT EXISTS (SELECT FROM {{ base(t) }} o
                      JOIN {{ fk.child_base|qualified }} r
                        ON {{ match('r', 'o', fk.child_columns, fk.parent_columns) }}
                      WHERE {{ row('o', t.pk_columns) }} = {{ row(stored, t.pk_columns) }}
                        AND {{ row('o', fk.parent_columns) }} IS DISTINCT FROM {{ row('c', fk.parent_columns) }})
{% endfor %}
{% endmacro %}

{#- a stored row whose unique value the session holds under a key not stored yet, while the
    row's own key gives that value up (its row was deleted, moved away, or changed it), is
    updated in place to that key, as on a plain table: children referencing the value stay
    satisfied, and the row's own key is left free for whatever the session has there -#}
{% macro move_kept_rows(t) %}
    UPDATE {{ base(t) }} AS b
    SET ({{ t.updatable_columns|columns }}) = ROW({{ t.updatable_columns|columns('c') }})
    FROM {{ changes(t) }} m, {{ changes(t) }} c
    WHERE {{ chosen('m') }} AND {{ latest(t, 'm') }} AND {{ match('b', 'm', t.pk_columns) }}
      AND {{ chosen('c') }} AND c._cow_kind IN ('I', 'U') AND {{ latest(t, 'c') }}
      AND NOT EXISTS (SELECT FROM {{ base(t) }} o WHERE {{ match('o', 'c', t.pk_columns) }})
      AND ({% for key in t.unique_keys %}({{ match('b', 'c', key.columns) }} AND {{ gives_up('m', 'b', key.columns) }}){% if not loop.last %} OR {% endif %}{% endfor %}){{ tenants.only_tenant(t, 'b') }}
{{ ready_conditions(t, 'b') }}
{% endmacro %}

{% macro append(t) %}
    INSERT INTO {{ base(t) }} AS b ({{ t.writable_columns|columns }})
{% if t.always_identity_columns %}
    OVERRIDING SYSTEM VALUE
{% endif %}
    SELECT {{ t.writable_columns|columns('c') }}
    FROM {{ changes(t) }} c
    WHERE {{ chosen('c') }}
    ORDER BY c._cow_seq
{% endmacro %}

{% macro upsert(t, ready) %}
{% set non_key = t.updatable_columns|reject('in', t.pk_columns)|list %}
    INSERT INTO {{ base(t) }} AS b ({{ t.writable_columns|columns }})
{% if t.always_identity_columns %}
    OVERRIDING SYSTEM VALUE
{% endif %}
    SELECT {{ t.writable_columns|columns('c') }}
    FROM {{ changes(t) }} c
    WHERE {{ chosen('c') }} AND c._cow_kind IN ('I', 'U') AND {{ latest(t, 'c') }}
{% if ready %}
{{ ready_conditions(t, 'c') }}
{% endif %}
    ORDER BY c._cow_seq
    ON CONFLICT ({{ t.pk_columns|columns }}) DO {% if non_key %}UPDATE
    SET ({{ non_key|columns }}) = ROW({{ non_key|columns('EXCLUDED') }})
    {#- compared as text: every type has a text form, not every type has equality (json) #}
    WHERE ROW({{ non_key|columns('b') }})::text IS DISTINCT FROM ROW({{ non_key|columns('EXCLUDED') }})::text{{ tenants.only_tenant(t, 'b') }}
{% else %}NOTHING{% endif %}
{% endmacro %}

{#- stored children, on a key that cascades, of the stored rows of t whose referenced values
    the commit removes, that no chosen version shows: the commit would write them unseen
    (a session only appends to a keyless table: its stored rows are never shown) -#}
{% macro unseen_cascades(t, fk) %}
        SELECT {{ fk.child_table|literal }}::text AS table_name, {{ fk.name|literal }}::text AS constraint_name,
               {{ t.name|literal }}::text AS parent_table,
{% if fk.other_pk_columns %}
               pg_catalog.jsonb_build_object({% for k in fk.other_pk_columns %}{{ k|literal }}::text, r.{{ k|ident }}{% if not loop.last %}, {% endif %}{% endfor %}) AS key,
{% else %}
               NULL::jsonb AS key,
{% endif %}
               pg_catalog.to_jsonb(r.*) AS row
        FROM {{ fk.child_base|qualified }} r
        JOIN {{ base(t) }} p ON {{ match('r', 'p', fk.child_columns, fk.parent_columns) }}
        WHERE {{ loses(t, 'p', fk.parent_columns) }}
{% if fk.other_is_cow and fk.other_pk_columns %}
          AND NOT EXISTS (SELECT FROM {{ fk.child_changes|qualified }} x
                          WHERE {{ chosen('x') }} AND {{ match('x', 'r', fk.other_pk_columns) }} AND {{ key_index('x') }})
{% endif %}
        LIMIT {{ conflict_limit }}
{% endmacro %}

{% set scheduled = tables|selectattr('unique_keys')|list or tables|selectattr('foreign_keys')|list
                   or tables|selectattr('referenced_by')|list %}
DECLARE
    _cow_progress bigint;
    _cow_rows bigint;
    _cow_conflicts jsonb := '[]';
    _cow_cascades jsonb := '[]';
    _cow_path text := pg_catalog.current_setting('search_path');
    _cow_tenant text := agentcow.session_tenant({{ session|catalog }});
    _cow_outside jsonb;
    _cow_commit bigint := pg_catalog.nextval('agentcow.change_seq');
    _cow_history boolean := agentcow.history_on();
{{ history.declare(tables) }}
BEGIN
{{ begin_exclusive(session, watched, expected, tables, changed_message, approved, operations, approval_message) }}
{{ tenants.recheck(tables, session, operations, tenant_message, conflict_limit) }}
{% if on_conflict != 'overwrite' %}
{% for t in tables if not t.append_only %}
{% if on_conflict == 'merge' %}
    UPDATE {{ changes(t) }} AS m
    SET ({{ t.writable_columns|columns }}) = ROW({% for column in t.writable_columns %}CASE WHEN (c.{{ column|ident }})::text IS NOT DISTINCT FROM ((c._cow_baseline).{{ column|ident }})::text THEN (c._cow_now_row).{{ column|ident }} ELSE c.{{ column|ident }} END{% if not loop.last %}, {% endif %}{% endfor %})
    FROM (SELECT c.*, _cow_now AS _cow_now_row
          {{ conflicts.conflict_source(t, session, operations) }}
            AND {{ conflicts.mergeable(t) }}) c
    WHERE m.session_id = c.session_id AND m._cow_seq = c._cow_seq AND {{ match('m', 'c', t.pk_columns) }};
{% endif %}
    _cow_conflicts := _cow_conflicts || coalesce(
        (SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(k) OPERATOR(pg_catalog.-) '_cow_seq'::text ORDER BY k._cow_seq)
         FROM ({{ conflicts.conflict_rows(t, session, operations, on_conflict == 'merge') }}
               LIMIT {{ conflict_limit }}) k), '[]');
{% endfor %}
    IF jsonb_array_length(_cow_conflicts) > 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'serialization_failure',
            MESSAGE = {{ conflict_message|literal }},
            DETAIL = _cow_conflicts::text,
            HINT = 'Commit with on_conflict => merge or overwrite, or discard the operations.';
    END IF;
{% endif %}
{% if not allow_cascades %}
{% for t in tables if not t.append_only %}
{% for fk in t.referenced_by if fk.cascades %}
    _cow_cascades := _cow_cascades || coalesce(
        (SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(k)) FROM ({{ unseen_cascades(t, fk) }}) k), '[]');
{% endfor %}
{% endfor %}
    IF jsonb_array_length(_cow_cascades) > 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'serialization_failure',
            MESSAGE = {{ cascade_message|literal }},
            DETAIL = _cow_cascades::text,
            HINT = 'Review the rows it would reach (they are not in the diff), then commit with allow_cascades, or discard.';
    END IF;
{% endif %}
{% for t in tables %}
{{ history.record_before(t, loop.index, chosen) }}
{% endfor %}
{% if scheduled %}
    LOOP
        _cow_progress := 0;
{% for t in tables|reverse if not t.append_only %}
{% if t.unique_keys %}
{{ move_kept_rows(t) }};
        GET DIAGNOSTICS _cow_rows = ROW_COUNT;
        _cow_progress := _cow_progress + _cow_rows;
{% endif %}
{{ delete_removable(t) }};
        GET DIAGNOSTICS _cow_rows = ROW_COUNT;
        _cow_progress := _cow_progress + _cow_rows;
{{ upsert(t, true) }};
        GET DIAGNOSTICS _cow_rows = ROW_COUNT;
        _cow_progress := _cow_progress + _cow_rows;
{% endfor %}
        EXIT WHEN _cow_progress = 0;
    END LOOP;
{% endif %}
{% for t in tables %}
{% if t.append_only %}{{ append(t) }}{% else %}{{ upsert(t, false) }}{% endif %};
{% endfor %}
{% for t in tables|reverse if not t.append_only %}
    DELETE FROM {{ base(t) }} AS b
    USING {{ changes(t) }} c
    WHERE {{ chosen('c') }} AND c._cow_kind IN ('D', 'M') AND {{ latest(t, 'c') }}
      AND {{ match('b', 'c', t.pk_columns) }}{{ tenants.only_tenant(t, 'b') }};
{% endfor %}
{% for t in tables %}
{{ history.record_after(t, loop.index, session, chosen) }}
    DELETE FROM {{ changes(t) }} c WHERE {{ chosen('c') }};
{% endfor %}
{{ history.end_session(session, tables, true) }}
{{ end_exclusive(tables, reclaim) }}
END
