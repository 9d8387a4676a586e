{#- The row limit of sessions (agentcow.count_session_rows): once per statement on the view,
    after it, counted from the server's counters of the change tables, never per row. -#}
CREATE TRIGGER {{ names.limit_trigger|ident }}
    AFTER INSERT OR UPDATE OR DELETE ON {{ t.view|qualified }}
    FOR EACH STATEMENT EXECUTE FUNCTION agentcow.count_session_rows()
