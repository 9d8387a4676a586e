{#- The digest begin_exclusive() compares with: read before a commit or discard is planned. -#}
{% from '_session_state.sql' import fingerprint %}
SELECT {{ fingerprint(watched, session) }}
