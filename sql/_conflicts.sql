{#- Conflicts between a session and its base table, for the commit block and the listing query.

    A key's baseline is the _cow_old of its first version in the session: the stored row the
    session started from (NULL: the key was free). For the latest chosen version of each key,
    the base row now is compared with that baseline; a key is in conflict when the base changed
    since (updated, deleted, or inserted by someone else), unless the session ended with exactly
    the row the base now has. Whole rows are compared by binary image (*=: every type, no
    equality operator needed); single columns by their text form, which is exact as well. -#}
{% from '_macros.sql' import match %}
{% macro then_present(t) %}(c._cow_baseline).{{ t.pk_columns[0]|ident }} IS NOT NULL{% endmacro %}
{% macro now_present(t) %}_cow_now.{{ t.pk_columns[0]|ident }} IS NOT NULL{% endmacro %}
{% macro session_present() %}c._cow_kind IN ('I', 'U'){% endmacro %}
{% macro session_row(t) %}ROW({{ t.column_names|columns('c') }})::{{ t.row_type|qualified }}{% endmacro %}
{#- the stored row as a row of the row type: in the overlay layout, the columns the overlay
    knows (the table may have more since a migration); in the rename layout, the row itself -#}
{% macro now_row(t) %}{% if t.overlay_schema %}ROW({{ t.column_names|columns('_cow_now') }})::{{ t.row_type|qualified }}{% else %}_cow_now{% endif %}{% endmacro %}

{#- the session and the base both changed the column since the baseline, to different values -#}
{% macro both_changed(column) -%}
((c._cow_baseline).{{ column|ident }}::text IS DISTINCT FROM c.{{ column|ident }}::text
 AND (c._cow_baseline).{{ column|ident }}::text IS DISTINCT FROM _cow_now.{{ column|ident }}::text
 AND c.{{ column|ident }}::text IS DISTINCT FROM _cow_now.{{ column|ident }}::text)
{%- endmacro %}

{#- Conflicting keys of t: the change row c (latest chosen version of its key, with its key's
    baseline as c._cow_baseline) and the stored row _cow_now. One pass over the session's
    versions finds both by window (no probe per key); aliases start with _cow_ or are single
    letters qualified everywhere, so no column of the table can shadow a whole-row reference. -#}
{% macro conflict_source(t, session, operations, unmergeable_only=false) -%}
FROM (SELECT v.*,
             pg_catalog.first_value(v._cow_old) OVER (PARTITION BY {{ t.pk_columns|columns('v') }} ORDER BY v._cow_seq) AS _cow_baseline,
             pg_catalog.max(v._cow_seq) {% if operations is not none %}FILTER (WHERE v.operation_id = ANY ({{ operations|catalog }})) {% endif %}OVER (PARTITION BY {{ t.pk_columns|columns('v') }}) AS _cow_latest
      FROM {{ t.changes|qualified }} v
      WHERE v.session_id = {{ session|catalog }} AND v._cow_seq > 0) c
LEFT JOIN {{ t.base|qualified }} _cow_now ON {{ match('_cow_now', 'c', t.pk_columns) }}
WHERE c._cow_seq = c._cow_latest
  AND (({{ then_present(t) }}) IS DISTINCT FROM ({{ now_present(t) }})
       OR ({{ then_present(t) }} AND NOT (c._cow_baseline OPERATOR(pg_catalog.*=) {{ now_row(t) }})))
  AND NOT (({{ session_present() }}) = ({{ now_present(t) }})
           AND (NOT {{ session_present() }} OR {{ session_row(t) }} OPERATOR(pg_catalog.*=) {{ now_row(t) }}))
{% if unmergeable_only %}
  AND NOT {{ mergeable(t) }}
{% endif %}
{%- endmacro %}

{#- the columns both sides changed differently; empty unless the row exists on all three sides -#}
{% macro clashing_columns(t) -%}
CASE WHEN {{ then_present(t) }} AND {{ now_present(t) }} AND {{ session_present() }} THEN
    pg_catalog.array_remove(ARRAY[{% for column in t.writable_columns %}CASE WHEN {{ both_changed(column) }} THEN {{ column|literal }}::text END{% if not loop.last %}, {% endif %}{% endfor %}], NULL)
ELSE ARRAY[]::text[] END
{%- endmacro %}

{#- merge can resolve it: the row exists on all three sides and no column clashes -#}
{% macro mergeable(t) -%}
({{ then_present(t) }} AND {{ now_present(t) }} AND {{ session_present() }}
 AND pg_catalog.cardinality({{ clashing_columns(t) }}) = 0)
{%- endmacro %}

{% macro conflict_rows(t, session, operations, unmergeable_only=false) -%}
SELECT {{ t.name|literal }}::text AS table_name,
       pg_catalog.jsonb_build_object({% for column in t.pk_columns %}{{ column|literal }}, c.{{ column|ident }}{% if not loop.last %}, {% endif %}{% endfor %}) AS key,
       pg_catalog.to_jsonb(c._cow_baseline) AS base_then,
       pg_catalog.to_jsonb(_cow_now) AS base_now,
       CASE WHEN {{ session_present() }} THEN pg_catalog.to_jsonb({{ session_row(t) }}) END AS session_row,
       {{ clashing_columns(t) }} AS columns,
       {{ mergeable(t) }} AS mergeable,
       c._cow_seq
{{ conflict_source(t, session, operations, unmergeable_only) }}
{%- endmacro %}
