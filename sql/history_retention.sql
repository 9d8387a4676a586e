{#- The kit's history retention (agentcow.settings; NULL keeps history forever). -#}
UPDATE agentcow.settings SET history_retention = {% if retention is none %}NULL{% else %}{{ retention|literal }}::pg_catalog.interval{% endif %}
