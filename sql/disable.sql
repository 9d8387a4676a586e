{#- Undoes enable. Rename layout: the base table gets its name and privileges back, with its
    data, indexes, constraints and the foreign keys of other tables, which always pointed at
    it. Overlay layout: the table never changed; its overlay objects go, and the overlay
    schema with the last of them. -#}
{% if step == 'begin' %}
{% if t.overlay_schema %}
LOCK TABLE {{ t.changes|qualified }} IN ACCESS EXCLUSIVE MODE
{% else %}
LOCK TABLE {{ t.base|qualified }}, {{ t.changes|qualified }} IN ACCESS EXCLUSIVE MODE
{% endif %}
--;
{% if not discard_changes %}
IF EXISTS (SELECT FROM {{ t.changes|qualified }}) THEN
    RAISE EXCEPTION USING ERRCODE = 'object_in_use',
        MESSAGE = {{ ('agentcow: sessions still hold changes for ' ~ t.schema ~ '.' ~ t.name)|literal }},
        HINT = 'Commit or discard them first, or disable with discard_changes=True.';
END IF
--;
{% endif %}
{% else %}
PERFORM agentcow.unregister_table({{ t.schema|literal }}, {{ t.name|literal }})
--;
DROP VIEW {{ t.view|qualified }}
--;
DROP TABLE {{ t.changes|qualified }}
--;
{% if t.overlay_schema %}
DROP TYPE {{ t.row_type|qualified }}
--;
{% endif %}
{% for function in functions %}
DROP FUNCTION IF EXISTS {{ t.function(function)|qualified }}
--;
{% endfor %}
{% if t.overlay_schema %}
IF NOT EXISTS (SELECT FROM pg_catalog.pg_depend d
               WHERE d.refclassid = 'pg_catalog.pg_namespace'::pg_catalog.regclass
                 AND d.refobjid = (SELECT n.oid FROM pg_catalog.pg_namespace n WHERE n.nspname = {{ t.overlay_schema|literal }})) THEN
    DROP SCHEMA {{ t.overlay_schema|ident }};
END IF
--;
{% else %}
ALTER TABLE {{ t.base|qualified }} RENAME TO {{ t.name|ident }}
--;
{% endif %}
{% for name in revert_deferrable %}
ALTER TABLE {{ t.schema|ident }}.{{ t.name|ident }} ALTER CONSTRAINT {{ name|ident }} NOT DEFERRABLE
--;
{% endfor %}
{% endif %}
