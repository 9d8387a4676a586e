{#- Applies a session's changes to one base table, set-based. The state applied for a key is
    its latest version (among the chosen operations, when operations are given). Steps:
    'delete_unreferenced': first, rows that no stored row references and that the session
        removed, or whose unique values it changed (re-inserted by the upsert), so that unique
        values are free whatever order they moved in (a key moved, a row replaced, a swap);
    'upsert': rows whose latest version is live;
    'delete': the other removed rows, once children have been re-pointed;
    'cleanup': forget the applied versions. -#}
{% from '_macros.sql' import match, row %}
{% set base = t.schema|ident ~ '.' ~ t.base_name|ident %}
{% set changes = t.schema|ident ~ '.' ~ t.changes_name|ident %}
{% macro chosen(alias) -%}
{{ alias|catalog }}.session_id = {{ session|catalog }}{% if operations is not none %} AND {{ alias|catalog }}.operation_id = ANY ({{ operations|catalog }}){% endif %}
{%- endmacro %}
{#- the latest chosen version of its key (max() per key: an index probe, see is_latest) -#}
{% macro latest(alias) -%}
{{ alias|catalog }}._cow_seq = (SELECT max(l._cow_seq) FROM {{ changes|catalog }} l
                     WHERE {{ chosen('l') }} AND {{ match('l', alias, t.pk_columns) }})
{%- endmacro %}
{% if step == 'upsert' %}
{% set non_key = t.updatable_columns|reject('in', t.pk_columns)|list %}
INSERT INTO {{ base|catalog }} AS b ({{ t.writable_columns|columns }})
{% if t.always_identity_columns %}
OVERRIDING SYSTEM VALUE
{% endif %}
SELECT {{ t.writable_columns|columns('c') }}
FROM {{ changes|catalog }} c
WHERE {{ chosen('c') }} AND c._cow_kind IN ('I', 'U') AND {{ latest('c') }}
ORDER BY c._cow_seq
ON CONFLICT ({{ t.pk_columns|columns }}) DO {% if non_key %}UPDATE
SET ({{ non_key|columns }}) = ROW({{ non_key|columns('EXCLUDED') }}){% else %}NOTHING{% endif %}

{% elif step == 'delete' %}
DELETE FROM {{ base|catalog }} AS b
USING {{ changes|catalog }} c
WHERE {{ chosen('c') }} AND c._cow_kind IN ('D', 'M') AND {{ latest('c') }}
  AND {{ match('b', 'c', t.pk_columns) }}
{% elif step == 'delete_unreferenced' %}
DELETE FROM {{ base|catalog }} AS b
USING {{ changes|catalog }} c
WHERE {{ chosen('c') }} AND {{ latest('c') }}
  AND {{ match('b', 'c', t.pk_columns) }}
  AND (c._cow_kind IN ('D', 'M')
{% for key in t.unique_keys %}
       OR {{ row('b', key.columns) }} IS DISTINCT FROM {{ row('c', key.columns) }}
{% endfor %}
      )
{% for fk in t.referenced_by %}
  AND NOT EXISTS (SELECT FROM {{ fk.child_schema|ident }}.{{ fk.child_relation|ident }} r
                  WHERE {{ match('r', 'b', fk.child_columns, fk.parent_columns) }})
{% endfor %}
{% else %}
DELETE FROM {{ changes|catalog }} c WHERE {{ chosen('c') }}
{% endif %}
