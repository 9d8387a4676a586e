{#- What a commit block records (see agentcow.history and agentcow.end_session in the 0.3.0
    migration): the base row before and after the commit for each key it applies, and how
    the session stands once it is done. The block declares _cow_commit (the commit's id),
    _cow_history (whether history is kept) and the variables of declare(). Append-only tables (no key) are not recorded:
    nothing tells their rows apart for an undo. -#}
{% from '_macros.sql' import match %}

{#- a base row (alias) as JSON of the table's row type: in the overlay layout, the columns
    the overlay knows (as the conflict checks compare them); NULL when there is no row -#}
{% macro image(t, alias) -%}
CASE WHEN {{ alias|catalog }}.{{ t.pk_columns[0]|ident }} IS NULL THEN NULL ELSE pg_catalog.to_json({% if t.overlay_schema %}ROW({{ t.column_names|columns(alias) }})::{{ t.row_type|qualified }}{% else %}{{ alias|catalog }}{% endif %}) END
{%- endmacro %}

{#- The block's variables for table number i (its position in tables): the key columns and the stored row before the
    commit of each key it applies, captured by record_before and written by record_after. -#}
{% macro declare(tables) -%}
{% for t in tables %}
{% set i = loop.index %}
{% if not t.append_only %}
{% for column in t.columns if column.name in t.pk_columns %}
    _cow_h{{ i }}_{{ t.pk_columns.index(column.name) }} {{ column.type|catalog }}[];
{% endfor %}
    _cow_h{{ i }}_before pg_catalog.json[];
{% endif %}
{% endfor %}
{%- endmacro %}

{#- the latest chosen version c of each key (one ordered pass: the key index read backwards) -#}
{% macro latest_versions(t, chosen) -%}
(SELECT DISTINCT ON ({{ t.pk_columns|columns('v') }}) v.*
 FROM {{ t.changes|qualified }} v
 WHERE {{ chosen('v') }}
 ORDER BY {% for column in t.pk_columns %}v.{{ column|ident }} DESC, {% endfor %}v._cow_seq DESC)
{%- endmacro %}

{#- the stored row of key (alias's key columns) as JSON of the row type, or NULL: a probe of
    the base's primary key per row (a join would hash the whole base table) -#}
{% macro stored_image(t, alias) -%}
(SELECT {{ image(t, '_cow_base') }} FROM {{ t.base|qualified }} _cow_base WHERE {{ match('_cow_base', alias, t.pk_columns) }})
{%- endmacro %}

{#- Before the commit applies anything (and after merge rewrote the versions): the key and
    the stored row of each key the session wrote, into the block's variables. Keys the commit
    leaves as they are (the session ended with the stored row) are kept too: they tie the
    operations that wrote them together (a row deleted by one and made again, alike, by
    another), and undo leaves them alone. ``chosen`` is the commit's macro; i the table's
    number in declare(). A whole-row reference is to an alias no column can shadow
    (_cow_base). -#}
{% macro record_before(t, i, chosen) -%}
{% if not t.append_only %}
    IF _cow_history THEN
        SELECT {% for column in t.pk_columns %}pg_catalog.array_agg(c.{{ column|ident }}), {% endfor %}pg_catalog.array_agg({{ stored_image(t, 'c') }})
        INTO {% for column in t.pk_columns %}_cow_h{{ i }}_{{ loop.index0 }}, {% endfor %}_cow_h{{ i }}_before
        FROM {{ latest_versions(t, chosen) }} c;
    END IF;
{% endif %}
{%- endmacro %}

{#- Once the commit applied everything, before its versions are forgotten: one history row
    per key captured by record_before, with the stored row now and the operations that wrote
    the key. -#}
{% macro record_after(t, i, session, chosen) -%}
{% if not t.append_only %}
    IF _cow_history THEN
        INSERT INTO agentcow.history (commit_id, session_id, relation, schema_name, table_name, key, before, after, operation_ids)
        SELECT _cow_commit, {{ session|catalog }}, {{ t.base|qualified|literal }}::pg_catalog.regclass::pg_catalog.oid,
               {{ t.schema|literal }}, {{ t.name|literal }},
               pg_catalog.jsonb_build_object({% for column in t.pk_columns %}{{ column|literal }}, u.{{ column|ident }}{% if not loop.last %}, {% endif %}{% endfor %}),
               u._cow_before, {{ stored_image(t, 'u') }}, o._cow_operations
        FROM ROWS FROM ({% for column in t.pk_columns %}pg_catalog.unnest(_cow_h{{ i }}_{{ loop.index0 }}), {% endfor %}pg_catalog.unnest(_cow_h{{ i }}_before))
             AS u({{ t.pk_columns|columns }}, _cow_before)
        JOIN (SELECT {{ t.pk_columns|columns('v') }}, pg_catalog.array_agg(DISTINCT v.operation_id) AS _cow_operations
              FROM {{ t.changes|qualified }} v
              WHERE {{ chosen('v') }}
              GROUP BY {{ t.pk_columns|columns('v') }}) o ON {{ match('o', 'u', t.pk_columns) }};
    END IF;
{% endif %}
{%- endmacro %}

{#- The end of a commit (committed) or discard: the session's state in the registry, from
    whether it still holds versions anywhere the caller can read; a commit prunes history
    past its retention. -#}
{% macro end_session(session, tables, committed) -%}
    PERFORM agentcow.end_session({{ session|catalog }}, {% if committed %}true{% else %}false{% endif %}, agentcow.session_pending({{ session|catalog }}),
        ARRAY[{% for t in tables %}{{ t.base|qualified|literal }}::pg_catalog.regclass::pg_catalog.oid{% if not loop.last %}, {% endif %}{% endfor %}]::pg_catalog.oid[]);
{% if committed %}
    PERFORM agentcow.prune_history();
{% endif %}
{%- endmacro %}
