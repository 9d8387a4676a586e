{#- Whether the registry records the session, as the caller may read it
    (agentcow.session_info: every session for a role that owns COW tables, none for others). -#}
SELECT EXISTS (SELECT FROM agentcow.session_info() r WHERE r.session_id = {{ session }})
