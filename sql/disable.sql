{#- Undoes enable: the base table gets its name and privileges back, with its data, indexes,
    constraints and the foreign keys of other tables, which always pointed at it. -#}
{% if step == 'begin' %}
LOCK TABLE {{ t.schema|ident }}.{{ t.base_name|ident }}, {{ t.schema|ident }}.{{ t.changes_name|ident }} IN ACCESS EXCLUSIVE MODE
--;
{% if not discard_changes %}
IF EXISTS (SELECT FROM {{ t.schema|ident }}.{{ t.changes_name|ident }}) THEN
    RAISE EXCEPTION USING ERRCODE = 'object_in_use',
        MESSAGE = {{ ('agentcow: sessions still hold changes for ' ~ t.schema ~ '.' ~ t.name)|literal }},
        HINT = 'Commit or discard them first, or disable with discard_changes=True.';
END IF
--;
{% endif %}
{% else %}
PERFORM agentcow.unregister_table({{ t.schema|literal }}, {{ t.name|literal }})
--;
DROP VIEW {{ t.schema|ident }}.{{ t.name|ident }}
--;
DROP TABLE {{ t.schema|ident }}.{{ t.changes_name|ident }}
--;
{% for function in functions %}
DROP FUNCTION IF EXISTS {{ t.schema|ident }}.{{ function|ident }}
--;
{% endfor %}
ALTER TABLE {{ t.schema|ident }}.{{ t.base_name|ident }} RENAME TO {{ t.name|ident }}
--;
{% for name in revert_deferrable %}
ALTER TABLE {{ t.schema|ident }}.{{ t.name|ident }} ALTER CONSTRAINT {{ name|ident }} NOT DEFERRABLE
--;
{% endfor %}
{% endif %}
