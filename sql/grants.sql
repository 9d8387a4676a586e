{#- Moves privileges from one relation to another (table to view on enable, back on disable),
    so every role keeps exactly the access it had and none can reach the base or change
    tables directly. -#}
{% for g in grants %}
GRANT {{ g.privilege|catalog }}{% if g.column %} ({{ g.column|ident }}){% endif %} ON {{ target|catalog }}
    TO {{ (g.grantee|ident if g.grantee != 'PUBLIC' else 'PUBLIC'|catalog) }}{% if g.grantable %} WITH GRANT OPTION{% endif %}

--;
REVOKE {{ g.privilege|catalog }}{% if g.column %} ({{ g.column|ident }}){% endif %} ON {{ source|catalog }}
    FROM {{ (g.grantee|ident if g.grantee != 'PUBLIC' else 'PUBLIC'|catalog) }} CASCADE
--;
{% endfor %}
