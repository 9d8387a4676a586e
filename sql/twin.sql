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
{% with step = 'pin', path = session_path %}{% include 'search_path.sql' %}{% endwith %}

--;
EXECUTE 'CREATE VIEW ' || {{ twin|qualified|literal }}
        {% if options %}|| {{ (' WITH (' ~ options ~ ')')|literal }}{% endif %} || ' AS '
        || agentcow.view_definition({{ view|qualified|literal }}::pg_catalog.regclass, {{ print_path|literal }})
--;
{% with step = 'restore' %}{% include 'search_path.sql' %}{% endwith %}

--;
ALTER VIEW {{ twin|qualified }} OWNER TO {{ owner|ident }}
--;
{% endif %}
