{#- Everything enable creates belongs to the table's owner: the SECURITY DEFINER trigger
    functions must run with the owner's rights, never with those of whoever enabled COW. -#}
ALTER VIEW {{ t.view|qualified }} OWNER TO {{ t.relation.owner|ident }}
--;
ALTER TABLE {{ t.changes|qualified }} OWNER TO {{ t.relation.owner|ident }}
--;
{% for function in functions %}
ALTER FUNCTION {{ t.function(function)|qualified }} OWNER TO {{ t.relation.owner|ident }}
--;
{% endfor %}
