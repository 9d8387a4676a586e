{#- The demo shop's own SQL outside the agent: production reading a table (rows) and shipping
    an order (ship), straight to the tables, in no session. -#}
{% if step == 'rows' %}
SELECT * FROM {{ schema|ident }}.{{ table|ident }} ORDER BY id
{% elif step == 'ship' %}
UPDATE {{ schema|ident }}.orders SET status = 'shipped' WHERE id = {{ order }}
{% endif %}
