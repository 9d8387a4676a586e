{#- Every statement that writes through the view in a session first takes the session's lock
    in share mode (agentcow.session_write_lock), so commits and discards of the session never
    run while one of its writes is in flight. -#}
CREATE TRIGGER {{ names.session_lock_trigger|ident }}
    BEFORE INSERT OR UPDATE OR DELETE ON {{ t.schema|ident }}.{{ t.name|ident }}
    FOR EACH STATEMENT EXECUTE FUNCTION agentcow.session_write_lock()
