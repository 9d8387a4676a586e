{#- What a commit block records (see agentcow.history and agentcow.end_session in the 0.3.0
    migration): the base row before and after the commit for each key it applies, and how
    the session stands once it is done. The block declares _cow_commit (the commit's id) and
    _cow_history (whether history is kept). Append-only tables (no key) are not recorded:
    nothing tells their rows apart for an undo. -#}
{% from '_macros.sql' import match, key_index %}

{#- a base row (alias) as JSON of the table's row type: in the overlay layout, the columns
    the overlay knows (as the conflict checks compare them); NULL when there is no row -#}
{% macro image(t, alias) -%}
CASE WHEN {{ alias|catalog }}.{{ t.pk_columns[0]|ident }} IS NULL THEN NULL ELSE pg_catalog.to_json({% if t.overlay_schema %}ROW({{ t.column_names|columns(alias) }})::{{ t.row_type|qualified }}{% else %}{{ alias|catalog }}{% endif %}) END
{%- endmacro %}

{#- Before the commit applies anything (and after merge rewrote the versions): each key's
    stored row and the operations that wrote the key. ``chosen`` and ``latest`` are the
    commit's macros. Keys whose stored row is already what the session has are left out:
    the commit does not touch them. A whole-row reference is to an alias no column can
    shadow (_cow_base). -#}
{% macro record_before(t, session, chosen, latest) -%}
{% if not t.append_only %}
    IF _cow_history THEN
        INSERT INTO agentcow.history (commit_id, session_id, relation, schema_name, table_name, key, before, operation_ids)
        SELECT _cow_commit, {{ session|catalog }}, {{ t.base|qualified|literal }}::pg_catalog.regclass::pg_catalog.oid,
               {{ t.schema|literal }}, {{ t.name|literal }},
               pg_catalog.jsonb_build_object({% for column in t.pk_columns %}{{ column|literal }}, c.{{ column|ident }}{% if not loop.last %}, {% endif %}{% endfor %}),
               {{ image(t, '_cow_base') }},
               ARRAY(SELECT DISTINCT o.operation_id FROM {{ t.changes|qualified }} o
                     WHERE {{ chosen('o') }} AND {{ match('o', 'c', t.pk_columns) }} AND {{ key_index('o') }})
        FROM {{ t.changes|qualified }} c
        LEFT JOIN {{ t.base|qualified }} _cow_base ON {{ match('_cow_base', 'c', t.pk_columns) }}
        WHERE {{ chosen('c') }} AND {{ latest(t, 'c') }}
          AND NOT (CASE WHEN c._cow_kind IN ('I', 'U')
                        THEN _cow_base.{{ t.pk_columns[0]|ident }} IS NOT NULL
                             AND ROW({{ t.writable_columns|columns('_cow_base') }})::text = ROW({{ t.writable_columns|columns('c') }})::text
                        ELSE _cow_base.{{ t.pk_columns[0]|ident }} IS NULL END);
    END IF;
{% endif %}
{%- endmacro %}

{#- Once the commit applied everything: the stored row of each key recorded before. -#}
{% macro record_after(t) -%}
{% if not t.append_only %}
    IF _cow_history THEN
        UPDATE agentcow.history h SET after = a.after
        FROM (SELECT r.history_id, {{ image(t, '_cow_base') }} AS after
              FROM agentcow.history r
              CROSS JOIN LATERAL pg_catalog.jsonb_populate_record(NULL::{{ t.row_type|qualified }}, r.key) k
              JOIN {{ t.base|qualified }} _cow_base ON {{ match('_cow_base', 'k', t.pk_columns) }}
              WHERE r.commit_id = _cow_commit AND r.relation = {{ t.base|qualified|literal }}::pg_catalog.regclass::pg_catalog.oid) a
        WHERE h.history_id = a.history_id;
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
