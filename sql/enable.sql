{#- The first and last steps of enable; the objects in between have templates of their own. -#}
{% if step == 'begin' %}
LOCK TABLE {{ t.schema|ident }}.{{ t.name|ident }} IN ACCESS EXCLUSIVE MODE
--;
ALTER TABLE {{ t.schema|ident }}.{{ t.name|ident }} RENAME TO {{ t.base_name|ident }}
--;
{% for name in make_deferrable %}
ALTER TABLE {{ t.schema|ident }}.{{ t.base_name|ident }} ALTER CONSTRAINT {{ name|ident }} DEFERRABLE INITIALLY IMMEDIATE
--;
{% endfor %}
{% else %}
PERFORM agentcow.register_table({{ t.schema|literal }}, {{ t.name|literal }}, {{ t.base_name|literal }},
                                {{ t.changes_name|literal }}, ARRAY[{% for c in t.pk_columns %}{{ c|literal }}{% if not loop.last %}, {% endif %}{% endfor %}]::name[],
                                ARRAY[{% for n in make_deferrable %}{{ n|literal }}{% if not loop.last %}, {% endif %}{% endfor %}]::name[])
{% endif %}
