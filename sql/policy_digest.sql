{#- The fingerprint of a review's chosen versions, read again (see _versions.sql): a policy
    judges the rows a review shows only while it is unchanged. -#}
{% from '_versions.sql' import approval_digest %}
SELECT {{ approval_digest(tables, session, operations) }}
