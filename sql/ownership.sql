{#- Everything enable creates belongs to the table's owner: the SECURITY DEFINER trigger
    functions must run with the owner's rights, never with those of whoever enabled COW. -#}
ALTER VIEW {{ t.schema|ident }}.{{ t.name|ident }} OWNER TO {{ t.relation.owner|ident }}
--;
ALTER TABLE {{ t.schema|ident }}.{{ t.changes_name|ident }} OWNER TO {{ t.relation.owner|ident }}
--;
{% for function in functions %}
ALTER FUNCTION {{ t.schema|ident }}.{{ function|ident }} OWNER TO {{ t.relation.owner|ident }}
--;
{% endfor %}
