{#- Applies a session's changes to one base table, set-based. The state applied for a key is
    its latest version (among the chosen operations, when operations are given).
    step 'upsert': rows whose latest version is live; 'delete': keys whose latest version
    removed the row; 'cleanup': forget the applied versions. -#}
{% from '_macros.sql' import match %}
{% set base = t.schema|ident ~ '.' ~ t.base_name|ident %}
{% set changes = t.schema|ident ~ '.' ~ t.changes_name|ident %}
{% macro chosen(alias) -%}
{{ alias|catalog }}.session_id = {{ session|catalog }}{% if operations is not none %} AND {{ alias|catalog }}.operation_id = ANY ({{ operations|catalog }}){% endif %}
{%- endmacro %}
{% macro latest(alias) -%}
NOT EXISTS (SELECT FROM {{ changes|catalog }} l
            WHERE {{ chosen('l') }} AND {{ match('l', alias, t.pk_columns) }} AND l._cow_seq > {{ alias|catalog }}._cow_seq)
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
{% else %}
DELETE FROM {{ changes|catalog }} c WHERE {{ chosen('c') }}
{% endif %}
