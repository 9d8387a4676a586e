{#- agentcow demo's scratch space on an existing server: its schema (create, drop), the kit
    when the demo deployed it (drop_kit), and, when the kit was there before, the rows the
    demo's sessions left in its registry, history and usage (forget; the kit's owner may). -#}
{% if step == 'create' %}
CREATE SCHEMA {{ schema|ident }}
{% elif step == 'drop' %}
DROP SCHEMA IF EXISTS {{ schema|ident }} CASCADE
{% elif step == 'drop_kit' %}
DROP SCHEMA IF EXISTS agentcow CASCADE
{% elif step == 'forget' %}
WITH sessions AS (
    SELECT pg_catalog.unnest({{ sessions }}) AS session_id
), history AS (
    DELETE FROM agentcow.history
    WHERE schema_name = {{ schema|literal }} OR session_id IN (SELECT session_id FROM sessions)
), usage AS (
    DELETE FROM agentcow.session_usage WHERE session_id IN (SELECT session_id FROM sessions)
), limits AS (
    DELETE FROM agentcow.session_limits WHERE session_id IN (SELECT session_id FROM sessions)
)
DELETE FROM agentcow.sessions WHERE session_id IN (SELECT session_id FROM sessions)
{% endif %}
