{#- The view's column defaults: an INSERT through the view that omits a column sees the table's
    default in NEW. Identity columns draw from their sequence through the table's identity
    function (identity_function.sql). -#}
{% for column in t.columns if column.default is not none or column.identity %}
ALTER VIEW {{ t.view|qualified }} ALTER COLUMN {{ column.name|ident }} SET DEFAULT {% if column.identity %}{{ t.function(names.identity_function)|qualified }}({{ column.name|literal }}){% else %}{{ column.default|catalog }}{% endif %}

--;
{% endfor %}
