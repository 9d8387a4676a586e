{% from '_versions.sql' import approval_digest %}
{#- What commit and discard share: the lock that freezes a session, and the digest that tells
    whether the session is still the one the caller planned for. -#}

{#- A digest of the versions a session holds in the change tables named ((schema, name)
    pairs): adding or removing any version changes it. Versions are never edited, so the set
    of their sequence numbers is the session's state. -#}
{% macro fingerprint(watched, session) -%}
(SELECT pg_catalog.count(*)::text || ':' || coalesce(pg_catalog.sum(pg_catalog.hashint8extended(v._cow_seq, 0)), 0)::text
 FROM ({% for changes in watched %}SELECT c._cow_seq FROM {{ changes|qualified }} c WHERE c.session_id = {{ session|catalog }} AND c._cow_seq > 0{% if not loop.last %}
       UNION ALL {% endif %}{% endfor %}) v)
{%- endmacro %}

{#- The start of a commit or discard block: operators and functions resolve in pg_catalog
    only (nothing an agent created runs with the caller's rights); the session and the base
    tables written are locked (agentcow.lock_for_commit: no agent write of the session is in
    flight or can start, and no deadlock); then the session must still be the one planned
    for, else the caller plans again (unless watched is empty: an undo's session, which only
    its own block writes). With approved (a fingerprint: approval_digest in
    _versions.sql), the chosen versions of the tables (operations: the choice, none for all)
    must still be the ones a reviewer approved, else nothing is applied (SQLSTATE 55000:
    calling again cannot help). Declares _cow_path, restored by end_exclusive(). -#}
{% macro begin_exclusive(session, watched, expected, bases, changed_message, approved=none, operations=none, approval_message=none) -%}
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    PERFORM agentcow.lock_for_commit({{ session|catalog }}, ARRAY[{% for t in bases %}{{ t.base|qualified|literal }}{% if not loop.last %}, {% endif %}{% endfor %}]::pg_catalog.regclass[]);
{% if watched %}
    IF {{ fingerprint(watched, session) }} IS DISTINCT FROM {{ expected|literal }} THEN
        RAISE EXCEPTION USING ERRCODE = 'serialization_failure', MESSAGE = {{ changed_message|literal }},
            HINT = 'The session gained or lost versions after the call read it; call again.';
    END IF;
{% endif %}
{% if approved is not none %}
    IF {{ approval_digest(bases, session, operations) }} IS DISTINCT FROM {{ approved|literal }} THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = {{ approval_message|literal }},
            HINT = 'Review the session again (diff) and approve what it holds now.';
    END IF;
{% endif %}
{%- endmacro %}

{#- The end of a commit or discard block: each change table it left empty (no version of any
    session) gives its space back, indexes included: TRUNCATE makes new, empty files, and
    leaves the planner with no statistics (as for a new table) rather than "empty", which
    would make plans that read a session through a sequential scan. TRUNCATE needs the table
    to itself until the transaction ends, which would stop every reader of the view: it is
    done only when reclaim says the block runs in a transaction of its own (which ends with
    it), and its lock is not waited for (a reader of the view, a writer of another session).
    Only under READ COMMITTED: the re-check after the lock must see every version committed
    so far, and a REPEATABLE READ or SERIALIZABLE block reads with the snapshot its statement
    began with, taken before it waited for the session's lock: versions committed meanwhile
    (another session's, or the session's own in-flight write) are not in it, and TRUNCATE
    would destroy them. And only while no other backend of the database holds a snapshot
    (TRUNCATE is not MVCC-safe): a REPEATABLE READ transaction whose snapshot predates the
    block would find the change table empty afterwards, and the base as it was, the
    versions applied or forgotten in neither. Checked after the lock: a transaction that
    takes its snapshot later waits for the block if it reads the change table (in READ
    COMMITTED, it then reads with a newer one). Left: a REPEATABLE READ transaction whose
    first statement reads something else between that check and the block's end. (Another
    role's backend_type reads as NULL: an autovacuum worker of it counts, as any snapshot.)
    Otherwise the space comes back at a later commit or discard. -#}
{% macro end_exclusive(tables, reclaim) -%}
{% for t in tables if reclaim %}
    IF pg_catalog.current_setting('transaction_isolation') = 'read committed'
       AND NOT EXISTS (SELECT FROM {{ t.changes|qualified }}) THEN
        BEGIN
            LOCK TABLE {{ t.changes|qualified }} IN ACCESS EXCLUSIVE MODE NOWAIT;
            PERFORM pg_catalog.pg_stat_clear_snapshot();  -- the backends as they are now
            IF NOT EXISTS (SELECT FROM {{ t.changes|qualified }})
               AND NOT EXISTS (SELECT FROM pg_catalog.pg_stat_activity a
                               WHERE a.datname = pg_catalog.current_database()
                                 AND a.pid <> pg_catalog.pg_backend_pid()
                                 AND a.backend_xmin IS NOT NULL
                                 AND a.backend_type IS DISTINCT FROM 'autovacuum worker') THEN
                TRUNCATE {{ t.changes|qualified }};
            END IF;
        EXCEPTION WHEN lock_not_available OR insufficient_privilege THEN
            NULL;  -- in use (or not the caller's to truncate): a later commit gives the space back
        END;
    END IF;
{% endfor %}
    PERFORM pg_catalog.set_config('search_path', _cow_path, true);
{%- endmacro %}
