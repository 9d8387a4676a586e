SELECT pg_catalog.current_setting({{ name|literal }}, true)
