{#- The overlay layout's row type (TableDescription.row_type): the table's columns as the
    overlay was made, for the change table's _cow_old. -#}
CREATE TYPE {{ t.row_type|qualified }} AS (
{% for c in t.columns %}
    {{ c.name|ident }} {{ c.type|catalog }}{% if not loop.last %},{% endif %}

{% endfor %}
)
--;
ALTER TYPE {{ t.row_type|qualified }} OWNER TO {{ t.relation.owner|ident }}
