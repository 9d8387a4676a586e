{#- A ChangeSet as a patch a person can read or run: one transaction, keys checked at its
    end, deletes first (tables that reference others before them), then updates and inserts
    (referenced tables first). Only changed columns are updated; generated columns are never
    written. rows: (kind, table (schema, name), key {column: literal}, values {column:
    literal}, overriding) in that order; literals come from agentcow.review.encoding. -#}
-- agentcow patch: session {{ session|literal }}, fingerprint {{ fingerprint|literal }}
-- {{ summary|catalog }}
BEGIN;
SET CONSTRAINTS ALL DEFERRED;
{% for kind, table, key, values, overriding in rows %}
{% set where %}{% for column, literal in key.items() %}{{ column|ident }} = {{ literal }}{% if not loop.last %} AND {% endif %}{% endfor %}{% endset %}
{% if kind == 'DELETE' %}
DELETE FROM {{ table|qualified }} WHERE {{ where }};
{% elif kind == 'UPDATE' %}
UPDATE {{ table|qualified }} SET {% for column, literal in values.items() %}{{ column|ident }} = {{ literal }}{% if not loop.last %}, {% endif %}{% endfor %} WHERE {{ where }};
{% else %}
INSERT INTO {{ table|qualified }} ({{ values.keys()|columns }}){% if overriding %} OVERRIDING SYSTEM VALUE{% endif %} VALUES ({% for literal in values.values() %}{{ literal }}{% if not loop.last %}, {% endif %}{% endfor %});
{% endif %}
{% endfor %}
COMMIT;
