{#- The first and last steps of enable; the objects in between have templates of their own.
    Rename layout: the table becomes the view's base. Overlay layout: the table stays as it
    is (a lock that lets its readers and writers through keeps its shape still while the
    overlay is made), and the overlay schema is made with its first table; whoever may use
    the table's schema may use it (USAGE copied), each object in it has its own privileges. -#}
{% if step == 'begin' %}
{% if t.overlay_schema %}
LOCK TABLE {{ t.base|qualified }} IN SHARE UPDATE EXCLUSIVE MODE
--;
IF NOT EXISTS (SELECT FROM pg_catalog.pg_namespace WHERE nspname = {{ t.overlay_schema|literal }}) THEN
    CREATE SCHEMA {{ t.overlay_schema|ident }} AUTHORIZATION {{ t.relation.owner|ident }};
    PERFORM agentcow.copy_schema_usage({{ t.schema|literal }}, {{ t.overlay_schema|literal }});
END IF
--;
{% else %}
LOCK TABLE {{ t.schema|ident }}.{{ t.name|ident }} IN ACCESS EXCLUSIVE MODE
--;
ALTER TABLE {{ t.schema|ident }}.{{ t.name|ident }} RENAME TO {{ t.base_name|ident }}
--;
{% endif %}
{% for name in make_deferrable %}
ALTER TABLE {{ t.base|qualified }} ALTER CONSTRAINT {{ name|ident }} DEFERRABLE INITIALLY IMMEDIATE
--;
{% endfor %}
{% else %}
PERFORM agentcow.register_table({{ t.schema|literal }}, {{ t.name|literal }}, {{ t.base_name|literal }},
                                {{ t.changes_name|literal }}, ARRAY[{% for c in t.pk_columns %}{{ c|literal }}{% if not loop.last %}, {% endif %}{% endfor %}]::name[],
                                ARRAY[{% for n in make_deferrable %}{{ n|literal }}{% if not loop.last %}, {% endif %}{% endfor %}]::name[],
                                {% if t.overlay_schema %}{{ t.overlay_schema|literal }}{% else %}NULL{% endif %},
                                {% if t.tenancy.column %}{{ t.tenancy.column|literal }}{% else %}NULL{% endif %}, {{ t.tenancy.read_only }})
{% endif %}
