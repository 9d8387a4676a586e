{#- A table read-only for sessions bound to a tenant (shared reference data): each write
    statement of such a session through the view fails as it starts, matching rows or not,
    as a statement on a table its role may only read would. A referential action run from
    another table's write trigger (a deeper trigger level) is left to this table's write
    trigger, which refuses every row it reaches (check_tenant). -#}
{% from '_macros.sql' import raise_read_only %}
{% if t.tenancy.read_only %}
CREATE FUNCTION {{ t.function(names.read_only_function)|qualified }}() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS {{ tag }}
BEGIN
    IF pg_catalog.pg_trigger_depth() = 1 AND (SELECT s.tenant FROM agentcow.session_binding s) IS NOT NULL THEN
        {{ raise_read_only(t) }};
    END IF;
    RETURN NULL;
END
{{ tag }}
--;
CREATE TRIGGER {{ names.read_only_trigger|ident }}
    BEFORE INSERT OR UPDATE OR DELETE ON {{ t.view|qualified }}
    FOR EACH STATEMENT EXECUTE FUNCTION {{ t.function(names.read_only_function)|qualified }}()
--;
{% endif %}
