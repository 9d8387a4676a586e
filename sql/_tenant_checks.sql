{#- Tenant isolation at commit (commit.sql). The block reads the tenant the session is bound
    to into _cow_tenant (NULL: none); every write it makes to an isolated table's base then
    names the tenant in its WHERE clause (only_tenant), and before any write, recheck refuses
    the commit (SQLSTATE 42501, nothing applied) when a chosen version would leave the
    tenant: a version whose tenant column is another tenant's, over a stored row of another
    tenant, or in a table read-only for tenants. The write triggers refuse such versions as
    they are written; the re-check holds against versions that did not go through them (the
    table owner can write change tables). DETAIL: a JSON array of {table, key}, at most
    limit per table. -#}
{% from '_macros.sql' import match %}

{% macro only_tenant(t, alias) -%}
{% if t.tenancy.column %}
 AND (_cow_tenant IS NULL OR {{ alias|catalog }}.{{ t.tenancy.column|ident }} = _cow_tenant::{{ t.tenant_type|catalog }})
{%- endif %}
{%- endmacro %}

{% macro outside(t, session, operations, limit) -%}
SELECT {{ t.name|literal }}::text AS "table",
       {% if t.append_only %}NULL::jsonb{% else %}pg_catalog.jsonb_build_object({% for column in t.pk_columns %}{{ column|literal }}, c.{{ column|ident }}{% if not loop.last %}, {% endif %}{% endfor %}){% endif %} AS key
FROM {{ t.changes|qualified }} c
{% if t.tenancy.column and not t.append_only %}
LEFT JOIN {{ t.base|qualified }} b ON {{ match('b', 'c', t.pk_columns) }}
{% endif %}
WHERE c.session_id = {{ session|catalog }} AND c._cow_seq > 0{% if operations is not none %} AND c.operation_id = ANY ({{ operations|catalog }}){% endif %}

{% if not t.tenancy.read_only %}
  AND (c.{{ t.tenancy.column|ident }} IS DISTINCT FROM _cow_tenant::{{ t.tenant_type|catalog }}
{% if not t.append_only %}
       OR (b.{{ t.pk_columns[0]|ident }} IS NOT NULL AND b.{{ t.tenancy.column|ident }} IS DISTINCT FROM _cow_tenant::{{ t.tenant_type|catalog }})
{% endif %}
      )
{% endif %}
LIMIT {{ limit }}
{%- endmacro %}

{% macro recheck(tables, session, operations, message, limit) -%}
{% set isolated = tables|selectattr('tenancy.column')|list + tables|rejectattr('tenancy.column')|selectattr('tenancy.read_only')|list %}
{% if isolated %}
    IF _cow_tenant IS NOT NULL THEN
        _cow_outside := (SELECT pg_catalog.jsonb_agg(o) FROM (
{% for t in isolated %}
            ({{ outside(t, session, operations, limit) }}){% if not loop.last %}
            UNION ALL{% endif %}

{% endfor %}
        ) o);
        IF _cow_outside IS NOT NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege', MESSAGE = {{ message|literal }},
                DETAIL = _cow_outside::text,
                HINT = 'Discard the session: a session bound to a tenant may hold only rows of its tenant.';
        END IF;
    END IF;
{% endif %}
{%- endmacro %}
