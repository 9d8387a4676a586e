{#- The per-table change log: one row per version of a row written in a session. The table's
    own columns hold the row after the write (before it, for D and M, whose columns must still
    satisfy NOT NULL); _cow_old holds the row as the session saw it before the write, NULL when
    the key was free. A key's first version thus records the stored row the session started
    from: the baseline of conflict checks, and the "before" of every diff. -#}
{% from '_macros.sql' import key_index, seq_index, unique_index, fk_index %}
CREATE TABLE {{ t.schema|ident }}.{{ t.changes_name|ident }} (
    session_id uuid NOT NULL,
    operation_id uuid NOT NULL,
    _cow_seq bigint NOT NULL DEFAULT pg_catalog.nextval('agentcow.change_seq'::regclass),
    _cow_kind "char" NOT NULL CHECK (_cow_kind IN ('I', 'U', 'D', 'M')),
    LIKE {{ t.schema|ident }}.{{ t.base_name|ident }} INCLUDING GENERATED,
    _cow_old {{ t.schema|ident }}.{{ t.base_name|ident }}
)
-- Sessions come and go quickly: keep the planner's picture of the table fresh.
WITH (autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 500,
      autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 2000)
--;
{# No primary key: every index is partial (see key_index in _macros.sql). Deletes of versions
   must still replicate under a publication of all tables. #}
ALTER TABLE {{ t.schema|ident }}.{{ t.changes_name|ident }} REPLICA IDENTITY FULL
--;
CREATE INDEX ON {{ t.schema|ident }}.{{ t.changes_name|ident }} (session_id, {{ t.pk_columns|columns }}, _cow_seq)
    WHERE {{ key_index() }}
--;
{% for check in t.checks %}
ALTER TABLE {{ t.schema|ident }}.{{ t.changes_name|ident }}
    ADD CONSTRAINT {{ check.name|ident }} CHECK (_cow_kind IN ('D', 'M') OR ({{ check.expression|catalog }}))
--;
{% endfor %}
{% for key in t.unique_keys %}
CREATE INDEX ON {{ t.schema|ident }}.{{ t.changes_name|ident }} (session_id, {{ key.columns|columns }})
    WHERE {{ unique_index(loop.index0) }}
--;
{% endfor %}
{% if t.parents_checked_per_statement or t.children_checked_per_statement %}
CREATE INDEX ON {{ t.schema|ident }}.{{ t.changes_name|ident }} (session_id, _cow_seq)
    WHERE {{ seq_index() }}
--;
{% endif %}
{% for fk in t.foreign_keys %}
CREATE INDEX ON {{ t.schema|ident }}.{{ t.changes_name|ident }} (session_id, {{ fk.child_columns|columns }})
    WHERE {{ fk_index(loop.index0) }}
--;
{% endfor %}
PERFORM agentcow.revoke_grants({{ (t.schema|ident ~ '.' ~ t.changes_name|ident)|literal }}::regclass)
