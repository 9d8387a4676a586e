{#- The floor under every read of a keyed table's change table through its view (view.sql):
    one row, declared as 1,000, so that no plan expects to read a session's versions cheaply
    once per row of a large input, whatever the statistics say.
    replace: replacing the function a table already has (upgrades). -#}
{% if not t.append_only %}
CREATE {% if replace %}OR REPLACE {% endif %}FUNCTION {{ t.function(names.floor_function)|qualified }}() RETURNS SETOF boolean
LANGUAGE plpgsql STABLE PARALLEL SAFE ROWS 1000
AS {{ tag }} BEGIN RETURN NEXT true; END {{ tag }}
--;
{% endif %}
