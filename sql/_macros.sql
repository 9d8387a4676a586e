{#- Shared fragments. Every name goes through |ident; record prefixes are NEW, OLD or aliases. -#}
{#- left.cols op right.right_cols, column by column; op '=' or 'IS NOT DISTINCT FROM' -#}
{% macro match(left, right, cols, right_cols=None, op='=') -%}
{% for c in cols %}{{ left|catalog }}.{{ c|ident }} {{ op|catalog }} {{ right|catalog }}.{{ (right_cols or cols)[loop.index0]|ident }}{% if not loop.last %} AND {% endif %}{% endfor %}
{%- endmacro %}

{% macro row(prefix, cols) -%}
ROW({{ cols|columns(prefix) }})
{%- endmacro %}

{% macro any_null(prefix, cols) -%}
({% for c in cols %}{{ prefix|catalog }}.{{ c|ident }} IS NULL{% if not loop.last %} OR {% endif %}{% endfor %})
{%- endmacro %}

{% macro all_null(prefix, cols) -%}
({% for c in cols %}{{ prefix|catalog }}.{{ c|ident }} IS NULL{% if not loop.last %} AND {% endif %}{% endfor %})
{%- endmacro %}

{#- The role whose privileges decide what a constraint error may show, as PostgreSQL decides
    it for a table: the current role of the statement. The trigger functions run as the
    table's owner, but the role setting still holds what SET ROLE chose (only SET ROLE, which
    checks membership, changes it), else the role is the session user: no SQL the caller can
    run makes this a role it could not become anyway. -#}
{% macro caller_role() -%}
(CASE pg_catalog.current_setting('role') WHEN 'none' THEN SESSION_USER ELSE pg_catalog.current_setting('role')::name END)
{%- endmacro %}

{#- A value as PostgreSQL prints it in error details: its type's output function, or null. -#}
{% macro value_text(prefix, column) -%}
CASE WHEN pg_catalog.num_nulls({{ prefix|catalog }}.{{ column|ident }}) = 1 THEN 'null' ELSE pg_catalog.concat({{ prefix|catalog }}.{{ column|ident }}) END
{%- endmacro %}

{#- "(a, b)=(1, x)" as PostgreSQL prints keys: names quoted as needed for unique keys
    (pg_get_indexdef_columns), as they are for foreign keys. -#}
{% macro key_text(prefix, cols, quote_names=false) -%}
'(' || {% if quote_names %}{% for c in cols %}pg_catalog.quote_ident({{ c|literal }}) || {% if not loop.last %}', ' || {% endif %}{% endfor %}{% else %}{{ cols|join(', ')|literal }} || {% endif %}')=(' || {% for c in cols %}{{ value_text(prefix, c) }} || {% if not loop.last %}', ' || {% endif %}{% endfor %}')'
{%- endmacro %}

{#- Whether the caller may read every column of a key of ``relation`` (schema.name, quoted):
    PostgreSQL shows a key in an error only then (table SELECT, or SELECT on each column). -#}
{% macro key_visible(relation, cols) -%}
({% for c in cols %}pg_catalog.has_column_privilege({{ caller_role() }}, {{ relation|literal }}, {{ c|literal }}, 'SELECT'){% if not loop.last %} AND {% endif %}{% endfor %})
{%- endmacro %}

{#- RAISE with a DETAIL that may be NULL (RAISE refuses a NULL option): without it then.
    The other options are the body of the call block. -#}
{% macro raise_with_detail(detail) -%}
IF {{ detail|catalog }} IS NULL THEN
                RAISE EXCEPTION USING {{ caller() }};
            ELSE
                RAISE EXCEPTION USING DETAIL = {{ detail|catalog }}, {{ caller() }};
            END IF
{%- endmacro %}

{#- Every index of a change table is partial, on an always-true predicate of its own
    ("_cow_seq <> -n"; versions are numbered from 1). A query can use an index only if its
    WHERE clause implies the index's predicate, so each query of the kit names the one index
    it may use, and no statistics can make the planner read a key's versions through another
    index's prefix (every index begins with session_id, and when a change table is believed
    empty all of them cost the same). Reads through the view say "_cow_seq > 0", which implies
    every predicate: the planner chooses among all indexes. -#}
{% macro key_index(alias=none) -%}
{% if alias %}{{ alias|catalog }}.{% endif %}_cow_seq <> -1
{%- endmacro %}

{% macro seq_index(alias=none) -%}
{% if alias %}{{ alias|catalog }}.{% endif %}_cow_seq <> -2
{%- endmacro %}

{% macro unique_index(position, alias=none) -%}
{% if alias %}{{ alias|catalog }}.{% endif %}_cow_seq <> -{{ 100 + position }}
{%- endmacro %}

{% macro fk_index(position, alias=none) -%}
{% if alias %}{{ alias|catalog }}.{% endif %}_cow_seq <> -{{ 10000 + position }}
{%- endmacro %}

{% macro any_index(alias=none) -%}
{% if alias %}{{ alias|catalog }}.{% endif %}_cow_seq > 0
{%- endmacro %}

{% macro visible(alias) -%}
(agentcow.visible_operations() IS NULL OR {{ alias|catalog }}.operation_id = ANY (agentcow.visible_operations()))
{%- endmacro %}

{#- A change row that is the latest visible change of its key in its session. Written as a
    max() per key, an index probe whatever the statistics say: as NOT EXISTS (a later version),
    the planner turned it into a quadratic join whenever a session was newer than its stats. -#}
{#- Every version of an append-only table (no key) is a row of its own, hence the latest. -#}
{% macro is_latest(t, alias, later='l') -%}
{% if t.append_only %}true{% else %}
{{- alias|catalog }}._cow_seq = (SELECT max({{ later|catalog }}._cow_seq)
                       FROM {{ t.changes|qualified }} {{ later|catalog }}
                       WHERE {{ later|catalog }}.session_id = {{ alias|catalog }}.session_id
                         AND {{ match(later, alias, t.pk_columns) }} AND {{ key_index(later) }}
                         AND {{ visible(later) }})
{%- endif %}
{%- endmacro %}

{#- Trigger functions run as the table's owner with a fixed search_path. Their queries are
    key lookups: enable_seqscan = off keeps their cached plans on the indexes even when the
    plans were made while a change table was empty (else each write scans the session). That
    setting inflates plan costs past jit_above_cost, so JIT (seconds per call on PostgreSQL
    15-17) is turned off with it. -#}
{% macro security_definer() -%}
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET enable_seqscan = off SET jit = off
{%- endmacro %}

{#- Checks that run as triggers on a change table read the merged views as the session that
    wrote the row. Settings made by set_config inside a function outlive it, so the session is
    switched only when needed and always put back. -#}
{% macro session_switch_declarations() -%}
    _cow_saved_sid text;
    _cow_saved_vis text;
    _cow_switched boolean := false;
{%- endmacro %}

{% macro switch_to_row_session() -%}
    IF agentcow.session_id() IS DISTINCT FROM NEW.session_id OR agentcow.visible_operations() IS NOT NULL THEN
        _cow_saved_sid := pg_catalog.current_setting('app.session_id', true);
        _cow_saved_vis := pg_catalog.current_setting('app.visible_operations', true);
        _cow_switched := true;
        PERFORM pg_catalog.set_config('app.session_id', NEW.session_id::text, true),
                pg_catalog.set_config('app.visible_operations', '', true);
    END IF;
{%- endmacro %}

{% macro switch_back() -%}
    IF _cow_switched THEN
        PERFORM pg_catalog.set_config('app.session_id', coalesce(_cow_saved_sid, ''), true),
                pg_catalog.set_config('app.visible_operations', coalesce(_cow_saved_vis, ''), true);
    END IF;
{%- endmacro %}

{#- The given columns of a change row's previous version: the session's earlier change of the
    same key, else the stored row (no row when neither exists). as_row: one ROW value. -#}
{% macro prior_version(t, alias, columns, as_row=false) -%}
SELECT {% if as_row %}{{ row('v', columns) }}{% else %}{{ columns|columns('v') }}{% endif %}

    FROM (SELECT {{ columns|columns('p') }}, p._cow_seq AS _cow_at
          FROM {{ t.changes|qualified }} p
          WHERE p.session_id = {{ alias|catalog }}.session_id AND {{ match('p', alias, t.pk_columns) }}
            AND p._cow_seq < {{ alias|catalog }}._cow_seq AND {{ key_index('p') }}
          UNION ALL
          SELECT {{ columns|columns('b') }}, 0
          FROM {{ t.base|qualified }} b WHERE {{ match('b', alias, t.pk_columns) }}) v
    ORDER BY v._cow_at DESC
    LIMIT 1
{%- endmacro %}

{#- Whether a change row needs its foreign key checked: PostgreSQL checks inserted rows, and
    updated rows only when the key's columns changed from the row's previous version.
    An append-only table has inserted rows only. -#}
{% macro key_written(t, fk, alias) -%}
{% if t.append_only %}true{% else %}
({{ alias|catalog }}._cow_kind = 'I'
 OR {{ row(alias, fk.child_columns) }} IS DISTINCT FROM ({{ prior_version(t, alias, fk.child_columns, as_row=true) }}))
{%- endif %}
{%- endmacro %}

{#- The foreign-key errors PostgreSQL raises, with its messages; prefix holds the key values.
    The key is shown only to a caller who may read it in t (the child for a missing parent,
    the parent for a key still referenced). -#}
{% macro raise_missing_parent(t, fk, prefix) -%}
RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation',
                MESSAGE = {{ ('insert or update on table "' ~ t.name ~ '" violates foreign key constraint "' ~ fk.name ~ '"')|literal }},
                DETAIL = CASE WHEN {{ key_visible(t.view|qualified, fk.child_columns) }}
                              THEN 'Key ' || {{ key_text(prefix, fk.child_columns) }} || {{ (' is not present in table "' ~ fk.parent_table ~ '".')|literal }}
                              ELSE {{ ('Key is not present in table "' ~ fk.parent_table ~ '".')|literal }} END,
                CONSTRAINT = {{ fk.name|literal }}, TABLE = {{ t.name|literal }}, SCHEMA = {{ t.schema|literal }}
{%- endmacro %}

{% macro raise_mixed_nulls(t, fk) -%}
RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation',
                MESSAGE = {{ ('insert or update on table "' ~ t.name ~ '" violates foreign key constraint "' ~ fk.name ~ '"')|literal }},
                DETAIL = 'MATCH FULL does not allow mixing of null and nonnull key values.',
                CONSTRAINT = {{ fk.name|literal }}, TABLE = {{ t.name|literal }}, SCHEMA = {{ t.schema|literal }}
{%- endmacro %}

{#- PostgreSQL 18 reports RESTRICT with a SQLSTATE and wording of its own. -#}
{% macro raise_still_referenced(t, fk, prefix, restrict=false) -%}
{% set own = restrict and t.relation.server_version >= 180000 %}
{% set referenced = ' is referenced from table "' if own else ' is still referenced from table "' %}
RAISE EXCEPTION USING
                ERRCODE = {{ ('restrict_violation' if own else 'foreign_key_violation')|literal }},
                MESSAGE = {{ ('update or delete on table "' ~ t.name ~ '" violates ' ~ ('RESTRICT setting of ' if own else '') ~ 'foreign key constraint "' ~ fk.name ~ '" on table "' ~ fk.child_table ~ '"')|literal }},
                DETAIL = CASE WHEN {{ key_visible(t.view|qualified, fk.parent_columns) }}
                              THEN 'Key ' || {{ key_text(prefix, fk.parent_columns) }} || {{ (referenced ~ fk.child_table ~ '".')|literal }}
                              ELSE {{ ('Key' ~ referenced ~ fk.child_table ~ '".')|literal }} END,
                CONSTRAINT = {{ fk.name|literal }}, TABLE = {{ fk.child_table|literal }}, SCHEMA = {{ fk.child_schema|literal }}
{%- endmacro %}

{#- INSERT/UPDATE through the view of a value PostgreSQL computes itself: generated columns, and
    GENERATED ALWAYS identity columns unless the value is the one the view's default just drew
    for the row (identity_function.sql), which is then used up. -#}
{% macro refuse_generated_values(t) -%}
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
    IF TG_OP = 'INSERT' THEN
        -- the value the view's default drew for this row (identity_function.sql), used up
        IF NEW.{{ a|ident }} IS DISTINCT FROM agentcow.take({{ ('identity_' ~ t.relation.oid ~ '_' ~ a)|literal }}) THEN
            RAISE EXCEPTION USING ERRCODE = 'generated_always',
                MESSAGE = {{ ('cannot insert a non-DEFAULT value into column "' ~ a ~ '"')|literal }},
                DETAIL = {{ ('Column "' ~ a ~ '" is an identity column defined as GENERATED ALWAYS.')|literal }},
                HINT = 'Use OVERRIDING SYSTEM VALUE to override.';
        END IF;
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.{{ a|ident }} IS DISTINCT FROM OLD.{{ a|ident }} THEN
        RAISE EXCEPTION USING ERRCODE = 'generated_always',
            MESSAGE = {{ ('column "' ~ a ~ '" can only be updated to DEFAULT')|literal }},
            DETAIL = {{ ('Column "' ~ a ~ '" is an identity column defined as GENERATED ALWAYS.')|literal }};
    END IF;
{% endfor %}
{%- endmacro %}

{#- The overlay layout's write trigger without a session: the view is how sessions write, and
    an agent connection that lost its session must not write production through it. -#}
{% macro refuse_without_session(t) -%}
RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = {{ ('agentcow: a write through the overlay of ' ~ t.schema ~ '.' ~ t.name ~ ' needs a session')|literal }},
            HINT = 'Enter a session (apply_cow_variables) in this transaction first; production writes go to the table itself.'
{%- endmacro %}

{#- A write without a session by an agent role (agentcow.session_required): its transaction
    was not bound by the application, or its settings name a session, which bind only other
    roles. Failing here keeps the write from the table it would otherwise reach. -#}
{% macro refuse_unbound(t) -%}
RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
            MESSAGE = {{ ('agentcow: a write through ' ~ t.schema ~ '.' ~ t.name ~ ' by an agent role needs a bound session')|literal }},
            HINT = 'The application binds each transaction of an agent (agentcow.bind_session, with its key); settings such as app.session_id do not bind agent roles.'
{%- endmacro %}

{#- A write trigger's INSERT without a session: the row goes to the base table as it is. -#}
{% macro insert_without_session(t) -%}
INSERT INTO {{ t.base|qualified }} AS b ({{ t.writable_columns|columns }})
{% if t.always_identity_columns %}
            OVERRIDING SYSTEM VALUE
{% endif %}
            VALUES ({{ t.writable_columns|columns('NEW') }})
            RETURNING {{ t.column_names|columns('b') }} INTO NEW;
            RETURN NEW;
{%- endmacro %}

{#- Tenant isolation (TableDescription.tenancy). The tenant of the statement's session as the
    tenant column's type (NULL: no session, or one bound to no tenant), read once per
    statement: a scalar subquery becomes an initplan (a probe of the registry's key through
    agentcow.session_binding), and compared with the column it is an index condition. -#}
{% macro statement_tenant(t) -%}
(SELECT s.tenant::{{ t.tenant_type|catalog }} FROM agentcow.session_binding s)
{%- endmacro %}

{#- Rows of fk's child table, in the base, that reference prefix's key values and belong to
    another tenant than _cow_tenant (a tenant-bound session never holds versions of those). -#}
{% macro other_tenants_children(fk, prefix) -%}
(_cow_tenant IS NOT NULL
         AND EXISTS (SELECT FROM {{ fk.child_base|qualified }} r
                     WHERE {{ match('r', prefix, fk.child_columns, fk.parent_columns) }}
                       AND r.{{ fk.other_tenant_column|ident }} IS DISTINCT FROM _cow_tenant::{{ fk.other_tenant_type|catalog }}))
{%- endmacro %}

{% macro raise_read_only(t) -%}
RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
            MESSAGE = {{ ('agentcow: table "' ~ t.name ~ '" is read-only for sessions bound to a tenant')|literal }},
            HINT = 'Shared reference data: write it without a tenant-bound session.',
            TABLE = {{ t.name|literal }}, SCHEMA = {{ t.schema|literal }}
{%- endmacro %}

{#- A row written by a tenant-bound session must belong to its tenant (as row-level
    security's WITH CHECK: before NOT NULL and CHECK); OLD too, for a statement that moved
    app.session_id from its WHERE clause after the view read the row. A read-only table
    refuses every row such a session writes. -#}
{% macro check_tenant(t) -%}
{% if t.tenancy.read_only %}
    IF _cow_tenant IS NOT NULL THEN
        {{ raise_read_only(t) }};
    END IF;
{% endif %}
{% if t.tenancy.column %}
{% set tenant = t.tenancy.column %}
    IF _cow_tenant IS NOT NULL THEN
        IF TG_OP <> 'INSERT' AND OLD.{{ tenant|ident }} IS DISTINCT FROM _cow_tenant::{{ t.tenant_type|catalog }} THEN
            RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
                MESSAGE = {{ ('row of table "' ~ t.name ~ '" belongs to another tenant than the session')|literal }},
                TABLE = {{ t.name|literal }}, SCHEMA = {{ t.schema|literal }};
        END IF;
        IF TG_OP <> 'DELETE' AND NEW.{{ tenant|ident }} IS DISTINCT FROM _cow_tenant::{{ t.tenant_type|catalog }} THEN
            RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
                MESSAGE = {{ ('new row violates tenant isolation for table "' ~ t.name ~ '"')|literal }},
                HINT = {{ ('A session bound to a tenant writes only rows whose ' ~ tenant ~ ' is its tenant.')|literal }},
                TABLE = {{ t.name|literal }}, SCHEMA = {{ t.schema|literal }};
        END IF;
    END IF;
{% endif %}
{%- endmacro %}

{#- A referential action (CASCADE, SET NULL, SET DEFAULT) of a tenant-bound session must not
    reach rows of another tenant: refused at the statement, as its WITH CHECK would. -#}
{% macro refuse_cascade_across_tenants(t, fk) -%}
{% if fk.other_tenant_column %}
        IF {{ other_tenants_children(fk, 'OLD') }} THEN
            RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
                MESSAGE = {{ ('update or delete on table "' ~ t.name ~ '" violates tenant isolation: foreign key "' ~ fk.name ~ '" of table "' ~ fk.child_table ~ '" would reach rows of another tenant')|literal }},
                TABLE = {{ fk.child_table|literal }}, SCHEMA = {{ fk.child_schema|literal }}, CONSTRAINT = {{ fk.name|literal }};
        END IF;
{% endif %}
{%- endmacro %}
