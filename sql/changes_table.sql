{#- The per-table change log: one row per version of a row written in a session. The table's
    own columns hold the row after the write (before it, for D and M); _cow_old holds the row
    as the session saw it before the write, NULL when the key was free. A key's first version
    thus records the stored row the session started from: the baseline of conflict checks, and
    the "before" of every diff.
    The table's NOT NULL (beyond the key) and CHECK constraints are not copied: the write
    trigger checks them, so that their errors read as the table's, not as this one's.
    A keyed table's change table has no primary key and every index is partial on a predicate
    of its own (key_index and the others in _macros.sql): each trigger query names the one
    index it may use, so no plan, however stale the statistics, walks a session through
    another index. An append-only table (no key) holds only I versions, each a row of its
    own: (session, _cow_seq) is their key, and _cow_old stays NULL. -#}
CREATE TABLE {{ t.changes|qualified }} (
    session_id uuid NOT NULL,
    operation_id uuid NOT NULL,
    _cow_seq bigint NOT NULL DEFAULT pg_catalog.nextval('agentcow.change_seq'::regclass),
    _cow_kind "char" NOT NULL CHECK (_cow_kind IN ('I', 'U', 'D', 'M')),
    LIKE {{ t.base|qualified }} INCLUDING GENERATED,
    _cow_old {{ t.row_type|qualified }}{% if t.append_only %},
    PRIMARY KEY (session_id, _cow_seq){% endif %}

)
-- Sessions come and go quickly: keep the planner's picture of the table fresh.
WITH (autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 500,
      autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 2000)
--;
{% if not t.append_only %}
{#- no primary key: deletes of versions must still replicate under a publication of all tables -#}
ALTER TABLE {{ t.changes|qualified }} REPLICA IDENTITY FULL
--;
{% endif %}
{% set nullable = t.columns|selectattr('not_null')|map(attribute='name')|reject('in', t.pk_columns)|list %}
{% if nullable %}
ALTER TABLE {{ t.changes|qualified }}
{% for c in nullable %}
    ALTER COLUMN {{ c|ident }} DROP NOT NULL{% if not loop.last %},{% endif %}

{% endfor %}
--;
{% endif %}
{% include 'changes_indexes.sql' %}

PERFORM agentcow.revoke_grants({{ t.changes|qualified|literal }}::regclass)
