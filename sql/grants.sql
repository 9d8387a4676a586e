{#- Moves privileges from one relation to another (table to view on enable, back on disable),
    so every role keeps exactly the access it had and none can reach the base or change
    tables directly. Without move, the target gets them and the source keeps them (an
    overlay view and its table). -#}
{% for g in grants %}
GRANT {{ g.privilege|catalog }}{% if g.column %} ({{ g.column|ident }}){% endif %} ON {{ target|catalog }}
    TO {{ (g.grantee|ident if g.grantee != 'PUBLIC' else 'PUBLIC'|catalog) }}{% if g.grantable %} WITH GRANT OPTION{% endif %}

--;
{% if move %}
REVOKE {{ g.privilege|catalog }}{% if g.column %} ({{ g.column|ident }}){% endif %} ON {{ source|catalog }}
    FROM {{ (g.grantee|ident if g.grantee != 'PUBLIC' else 'PUBLIC'|catalog) }} CASCADE
--;
{% endif %}
{% endfor %}
