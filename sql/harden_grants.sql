{#- What agent roles need on a COW schema, and nothing more: USAGE on the schema and on its
    overlay schema, SELECT on every COW view, INSERT, UPDATE and DELETE on those not read-only
    (taken away from the read-only ones). -#}
{% for role in agents %}
GRANT USAGE ON SCHEMA {% for s in schemas %}{{ s|ident }}{% if not loop.last %}, {% endif %}{% endfor %} TO {{ role|ident }}
--;
{% if views %}
GRANT SELECT ON {% for v in views %}{{ v|qualified }}{% if not loop.last %}, {% endif %}{% endfor %} TO {{ role|ident }}
--;
{% endif %}
{% if writable %}
GRANT INSERT, UPDATE, DELETE ON {% for v in writable %}{{ v|qualified }}{% if not loop.last %}, {% endif %}{% endfor %} TO {{ role|ident }}
--;
{% endif %}
{% if read_only %}
REVOKE INSERT, UPDATE, DELETE ON {% for v in read_only %}{{ v|qualified }}{% if not loop.last %}, {% endif %}{% endfor %} FROM {{ role|ident }} CASCADE
--;
{% endif %}
{% endfor %}
