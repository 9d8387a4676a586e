{#- The view's default for the table's identity columns: draws the column's next value as the
    table's owner, as the table itself would (the inserting role needs no right on the
    sequence). For a GENERATED ALWAYS column it also records the value drawn where only the
    owner's triggers can reach it (agentcow.remember): the write trigger accepts an inserted
    value only if it is the one just drawn, and no SQL of the agent's can forge that record.
    Calling the function directly only draws a value, as the default would.
    replace: replacing the function a table already has (upgrades). -#}
{% if t.identity_columns %}
CREATE {% if replace %}OR REPLACE {% endif %}FUNCTION {{ t.function(names.identity_function)|qualified }}(_column text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS {{ tag }}
DECLARE
    _value bigint;
BEGIN
{% for column in t.identity_columns %}
    IF _column = {{ column.name|literal }} THEN
        _value := pg_catalog.nextval({{ column.sequence|literal }}::pg_catalog.regclass);
{% if column.identity == 'a' %}
        PERFORM agentcow.remember({{ ('identity_' ~ t.relation.oid ~ '_' ~ column.name)|literal }}, _value);
{% endif %}
        RETURN _value;
    END IF;
{% endfor %}
    RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
        MESSAGE = 'agentcow: ' || pg_catalog.quote_ident(_column) || ' is not an identity column of ' || {{ t.name|literal }};
END
{{ tag }}
--;
{% endif %}
