{#- Which versions of a session a review or commit acts on. session: the session id (a
    literal); operations: an array literal of the chosen operations, or none for all. -#}
{% from '_macros.sql' import match, key_index, any_index %}

{#- version alias is one of the session's chosen versions (any index may serve) -#}
{% macro chosen(alias, session, operations) -%}
{{ alias|catalog }}.session_id = {{ session|catalog }} AND {{ any_index(alias) }}{% if operations is not none %} AND {{ alias|catalog }}.operation_id = ANY ({{ operations|catalog }}){% endif %}
{%- endmacro %}

{#- version alias is the latest chosen version of its key (max() per key: an index probe) -#}
{% macro latest(t, alias, session, operations) -%}
{{ alias|catalog }}._cow_seq = (SELECT max(l._cow_seq) FROM {{ t.changes|qualified }} l
                     WHERE {{ chosen('l', session, operations) }} AND {{ match('l', alias, t.pk_columns) }} AND {{ key_index('l') }})
{%- endmacro %}

{#- The fingerprint of the chosen versions of ``tables``: what a reviewer approves. Any
    version added, removed or changed in the choice changes it (a write after the review, a
    later request writing under an approved operation id); versions outside the choice do
    not. Lines in write order: table, sequence number, operation, kind, the row's text. A
    hex SHA-256, or NULL when no table is given. -#}
{% macro approval_digest(tables, session, operations) -%}
(SELECT pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(
            {{ session|catalog }}::text || coalesce(pg_catalog.string_agg(v.line, '' ORDER BY v.seq), ''),
            'UTF8')), 'hex')
 FROM ({% for t in tables %}SELECT c._cow_seq AS seq,
              E'\n' || {{ (t.schema ~ '.' ~ t.name)|literal }} || ' ' || c._cow_seq::text || ' ' || c.operation_id::text
              || ' ' || c._cow_kind::text || ' ' || ROW({{ t.columns|map(attribute='name')|list|columns('c') }})::text AS line
       FROM {{ t.changes|qualified }} c WHERE {{ chosen('c', session, operations) }}{% if not loop.last %}
       UNION ALL {% endif %}{% endfor %}) v)
{%- endmacro %}
