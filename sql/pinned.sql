{#- A review query run with operators and functions resolved in pg_catalog only (see
    agentcow.pinned_query); columns: its column definition list, fixed by the caller. -#}
SELECT * FROM agentcow.pinned_query({{ query|literal }}) AS r({{ columns|catalog }})
