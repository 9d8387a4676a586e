{#- Brings a table enabled under an older layout (from_version) to this package's, step by
    step, keeping the versions sessions hold; the write trigger function is replaced by this
    package's.

    0.1.0 -> 0.2.0: the change table gains _cow_old (the row before each write), filled in
    from the versions it already holds.

    A version's previous row is the session's previous version of the key (none when that
    removed the row); a key's first version saw the stored row, or none if it inserted. The
    stored row the session started from is no longer known: the one stored now stands in for
    it, so changes made to the base since then are not reported as conflicts.

    0.2.0 -> 0.3.0: each row written in a session takes the session's lock (write_trigger.sql);
    statement-level foreign-key checks and identity columns keep their state out of reach of
    the agent's SQL (identity values are drawn by the owner's identity function); NOT NULL and
    CHECK move from the change table to the write trigger, whose errors read as the table's;
    the change table's indexes become partial and the view reads over the floor function
    (plans that do not depend on statistics); the view counts the rows a limited session
    writes (limit_trigger.sql). -#}
{% from '_macros.sql' import match %}
{% set base = t.base|qualified %}
{% set changes = t.changes|qualified %}
{% if from_version == '0.1.0' %}
ALTER TABLE {{ changes|catalog }} ADD COLUMN _cow_old {{ base|catalog }}
--;
UPDATE {{ changes|catalog }} AS c
SET _cow_old = CASE
        WHEN v.previous_kind IS NOT NULL THEN
            CASE WHEN v.previous_kind IN ('I', 'U') THEN v.previous END
        WHEN c._cow_kind <> 'I' THEN
            (SELECT _cow_b FROM {{ base|catalog }} AS _cow_b WHERE {{ match('_cow_b', 'c', t.pk_columns) }})
    END
FROM (SELECT p.session_id, p._cow_seq,
             lag(p._cow_kind) OVER w AS previous_kind,
             lag(ROW({{ t.column_names|columns('p') }})::{{ base|catalog }}) OVER w AS previous
      FROM {{ changes|catalog }} p
      WINDOW w AS (PARTITION BY p.session_id, {{ t.pk_columns|columns('p') }} ORDER BY p._cow_seq)) v
WHERE c.session_id = v.session_id AND c._cow_seq = v._cow_seq
--;
{% endif %}
{% if from_version in ('0.1.0', '0.2.0') %}
{% for check in t.checks %}
ALTER TABLE {{ changes|catalog }} DROP CONSTRAINT IF EXISTS {{ check.name|ident }}
--;
{% endfor %}
{% for column in t.columns if column.not_null and column.name not in t.pk_columns %}
ALTER TABLE {{ changes|catalog }} ALTER COLUMN {{ column.name|ident }} DROP NOT NULL
--;
{% endfor %}
{% include 'fk_checks.sql' %}

{% include 'fk_statement_checks.sql' %}

{% include 'identity_function.sql' %}

{#- the change table loses its primary key and non-partial indexes for the partial ones
    (changes_indexes.sql); the view reads the session's rows over the floor function -#}
EXECUTE coalesce((SELECT pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT %I', c.conrelid::pg_catalog.regclass, c.conname)
                  FROM pg_catalog.pg_constraint c
                  WHERE c.conrelid = {{ changes|literal }}::pg_catalog.regclass AND c.contype = 'p'), 'SELECT')
--;
EXECUTE coalesce((SELECT 'DROP INDEX ' || pg_catalog.string_agg(i.indexrelid::pg_catalog.regclass::text, ', ')
                  FROM pg_catalog.pg_index i WHERE i.indrelid = {{ changes|literal }}::pg_catalog.regclass), 'SELECT')
--;
ALTER TABLE {{ changes|catalog }} REPLICA IDENTITY FULL
--;
{% include 'changes_indexes.sql' %}

{% include 'floor_function.sql' %}

{% with functions = [names.floor_function] + ([names.identity_function] if t.identity_columns else []) %}{% include 'ownership.sql' %}{% endwith %}

--;

{% with step = 'pin' %}{% include 'search_path.sql' %}{% endwith %}

--;
{% include 'view.sql' %}

--;
{% with step = 'restore' %}{% include 'search_path.sql' %}{% endwith %}

--;
{% endif %}
{% if from_version in ('0.1.0', '0.2.0') %}
{% include 'limit_trigger.sql' %}

--;
{% endif %}
{% include 'write_trigger.sql' %}

--;
PERFORM agentcow.set_table_layout({{ t.schema|literal }}, {{ t.name|literal }}, {{ objects_version|literal }})
