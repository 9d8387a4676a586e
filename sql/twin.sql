{#- An overlay twin of a view the user defined over overlay-layout tables: the same query, in
    the overlay schema of the view's schema, with each name the view reads unqualified
    resolved through the overlays (the view's definition printed under print_path, the
    view's schema and the other schemas with overlays, and created under session_path, that
    path with each overlay schema before its schema, as a session's). PostgreSQL prints a
    definition so that it binds the same functions and operators under the path it was
    printed with; only relations named in an overlay schema (agentcow's views and twins)
    bind differently. Privileges are the view's shared ones; the owner is the view's. -#}
{% if step == 'drop' %}
DROP VIEW IF EXISTS {{ twin|qualified }} CASCADE
--;
{% else %}
PERFORM pg_catalog.set_config('agentcow.caller_search_path', pg_catalog.current_setting('search_path'), true)
--;
PERFORM pg_catalog.set_config('search_path', {{ session_path|literal }}, true)
--;
EXECUTE 'CREATE VIEW ' || {{ twin|qualified|literal }}
        {% if options %}|| {{ (' WITH (' ~ options ~ ')')|literal }}{% endif %} || ' AS '
        || agentcow.view_definition({{ view|qualified|literal }}::pg_catalog.regclass, {{ print_path|literal }})
--;
PERFORM pg_catalog.set_config('search_path', pg_catalog.current_setting('agentcow.caller_search_path'), true)
--;
ALTER VIEW {{ twin|qualified }} OWNER TO {{ owner|ident }}
--;
{% endif %}
