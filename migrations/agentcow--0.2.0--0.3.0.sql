-- agentcow kit 0.2.0 -> 0.3.0: commits and discards that lose nothing and never deadlock.
--
-- A session's writers and its commit (or discard) serialize on a lock of the session: a
-- transaction-level advisory lock in class 1634166635 (the kit's; applications' two-key
-- advisory locks should use other classes), keyed by the hash of the session id. Every row
-- written in a session takes it in share mode until its transaction ends; a commit or discard takes it exclusively. While a commit holds it,
-- no agent write of the session is in flight and new ones wait, so every statement of the
-- commit sees the same versions. No SQL can release a transaction-level lock before its
-- transaction ends. A lock held again costs a lookup in the backend's own lock table, so the
-- write triggers can take it for every row. Two sessions whose ids hash alike (one pair in
-- four billion) only wait for each other's commits.

-- The share lock every write of a session holds (a plain SQL expression: inlined into the
-- write triggers' statements, no call of its own). For the table owners' write triggers,
-- which take it for each row, in the session the row is written in (a statement can move
-- app.session_id from its own WHERE clause). A statement reads the view with the snapshot
-- it began with, before its first row waits for a commit: locking at its start would not
-- change what it reads.
CREATE FUNCTION agentcow.share_session(_session uuid) RETURNS void
LANGUAGE sql VOLATILE
AS $fn$ SELECT pg_catalog.pg_advisory_xact_lock_shared(1634166635, pg_catalog.uuid_hash(_session)) $fn$;
REVOKE ALL ON FUNCTION agentcow.share_session(uuid) FROM PUBLIC;

-- Takes a session's lock exclusively (NOWAIT: raises lock_not_available instead of waiting);
-- for commit and discard, which run as a table owner.
CREATE FUNCTION agentcow.lock_session(_session uuid, _nowait boolean) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF NOT _nowait THEN
        PERFORM pg_advisory_xact_lock(1634166635, uuid_hash(_session));
    ELSIF NOT pg_try_advisory_xact_lock(1634166635, uuid_hash(_session)) THEN
        RAISE EXCEPTION 'agentcow: session % is being written', _session
            USING ERRCODE = 'lock_not_available';
    END IF;
END
$fn$;
REVOKE ALL ON FUNCTION agentcow.lock_session(uuid, boolean) FROM PUBLIC;

-- Everything a commit of _session may write, locked without ever waiting while holding a part
-- of it: the session's lock, the given base tables and every table their foreign keys cascade
-- into (SHARE ROW EXCLUSIVE: readers go on, other writers wait for the commit). It waits for
-- one resource at a time holding nothing else, then takes the rest with NOWAIT; if one is
-- busy, it lets everything go and waits for that one first. Nothing waits on the commit
-- while the commit waits, so it cannot take part in a deadlock, whatever order production
-- transactions or other commits write in. Runs as the caller: it locks only what the caller
-- may write.
CREATE FUNCTION agentcow.lock_for_commit(_session uuid, _tables regclass[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    _relations regclass[];
    _first integer := 0;  -- 0 is the session's lock, i > 0 is _relations[i]
    _current integer;
    _blocking boolean;
    _next integer;
BEGIN
    WITH RECURSIVE reached(relation) AS (
        SELECT t::oid FROM unnest(_tables) AS t
        UNION
        SELECT c.conrelid
        FROM pg_constraint c
        JOIN reached r ON c.confrelid = r.relation
        WHERE c.contype = 'f'
          AND (c.confdeltype IN ('c', 'n', 'd') OR c.confupdtype IN ('c', 'n', 'd'))
    )
    SELECT coalesce(array_agg(r.relation::regclass ORDER BY r.relation), '{}') INTO _relations
    FROM reached r
    WHERE has_table_privilege(r.relation, 'UPDATE, DELETE, TRUNCATE');

    LOOP
        BEGIN
            _blocking := true;
            _current := _first;
            IF _first = 0 THEN
                PERFORM agentcow.lock_session(_session, false);
            ELSE
                EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', _relations[_first]);
            END IF;
            _blocking := false;
            FOR _next IN 0 .. coalesce(cardinality(_relations), 0) LOOP
                CONTINUE WHEN _next = _first;
                _current := _next;  -- the loop's own variable does not outlive an error
                IF _current = 0 THEN
                    PERFORM agentcow.lock_session(_session, true);
                ELSE
                    EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE NOWAIT', _relations[_current]);
                END IF;
            END LOOP;
            RETURN;
        EXCEPTION WHEN lock_not_available THEN
            IF _blocking THEN
                RAISE;  -- lock_timeout while waiting: the caller's limit, not contention to retry
            END IF;
            _first := _current;  -- the subtransaction's rollback let everything go
        END;
    END LOOP;
END
$fn$;

-- State the triggers keep between the start and the end of a statement (the change sequence
-- when a statement began, for its foreign-key checks; the identity value drawn for a row),
-- per backend and per table owner. Kit 0.1.0 kept them in settings (identity_default,
-- is_drawn_identity: still used by tables of older layouts until upgrade_cow_tables).
-- Settings would do, but any SQL can change a setting, even from the WHERE clause of the
-- statement being checked. Each owner's trigger functions reach only the rows of their
-- owner (role = current_user, in the functions and by row-level security): a role that
-- owns a COW table of its own (any role with CREATE on a schema can) gets these rights
-- too, and must not be able to forge another owner's marks or identity values.
CREATE UNLOGGED TABLE agentcow.backend_state (
    pid integer NOT NULL,
    role name NOT NULL DEFAULT current_user,
    name text NOT NULL,
    value bigint NOT NULL,
    PRIMARY KEY (pid, role, name)
);
ALTER TABLE agentcow.backend_state ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_rows ON agentcow.backend_state
    USING (role = current_user) WITH CHECK (role = current_user);

-- Not SECURITY DEFINER: they run as the trigger function that calls them, i.e. as the
-- table's owner, whose rows they read and write.
CREATE FUNCTION agentcow.remember(_name text, _value bigint) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp
AS $fn$
    INSERT INTO agentcow.backend_state AS s (pid, role, name, value)
    VALUES (pg_backend_pid(), current_user, _name, _value)
    ON CONFLICT (pid, role, name) DO UPDATE SET value = EXCLUDED.value
$fn$;
REVOKE ALL ON FUNCTION agentcow.remember(text, bigint) FROM PUBLIC;

CREATE FUNCTION agentcow.recall(_name text) RETURNS bigint
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT s.value FROM agentcow.backend_state s
    WHERE s.pid = pg_backend_pid() AND s.role = current_user AND s.name = _name
$fn$;
REVOKE ALL ON FUNCTION agentcow.recall(text) FROM PUBLIC;

-- Reads and forgets a value (one that must serve once: an identity value drawn for a row).
CREATE FUNCTION agentcow.take(_name text) RETURNS bigint
LANGUAGE sql SET search_path = pg_catalog, pg_temp
AS $fn$
    DELETE FROM agentcow.backend_state s
    WHERE s.pid = pg_backend_pid() AND s.role = current_user AND s.name = _name
    RETURNING s.value
$fn$;
REVOKE ALL ON FUNCTION agentcow.take(text) FROM PUBLIC;

-- The layout of each COW table: NULL, the rename layout (the table became the view's base in
-- its own schema); else the overlay layout, and the schema beside the table's that holds its
-- view, change table and functions, the table itself left as it was.
ALTER TABLE agentcow.cow_tables ADD COLUMN overlay_schema name;

-- Tenant isolation of each COW table: tenant_column, the NOT NULL column that holds a row's
-- tenant (NULL: the table is shared by every tenant); tenant_read_only, whether sessions
-- bound to a tenant may only read the table (shared reference data).
ALTER TABLE agentcow.cow_tables ADD COLUMN tenant_column name,
                                ADD COLUMN tenant_read_only boolean NOT NULL DEFAULT false;

-- Enable makes an overlay schema with its first overlay table: whoever may use the table's
-- schema may use the overlay schema (each object in it has privileges of its own).
CREATE FUNCTION agentcow.copy_schema_usage(_from name, _to name) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    _grantee oid;
BEGIN
    FOR _grantee IN
        SELECT DISTINCT a.grantee
        FROM pg_namespace n CROSS JOIN LATERAL aclexplode(n.nspacl) a
        WHERE n.nspname = _from AND a.privilege_type = 'USAGE'
    LOOP
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO %s', _to,
                       CASE WHEN _grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(_grantee)) END);
    END LOOP;
END
$fn$;

-- A view's definition as printed under _path (restored after): overlay twins of user views
-- (twin.sql) are made from it. Not SECURITY DEFINER.
CREATE FUNCTION agentcow.view_definition(_view regclass, _path text) RETURNS text
LANGUAGE plpgsql
AS $fn$
DECLARE
    _caller text := pg_catalog.current_setting('search_path');
    _definition text;
BEGIN
    PERFORM pg_catalog.set_config('search_path', _path, true);
    _definition := pg_catalog.pg_get_viewdef(_view);
    PERFORM pg_catalog.set_config('search_path', _caller, true);
    RETURN _definition;
END
$fn$;

-- Registering a table lets its owner commit and discard sessions, and its triggers keep state.
-- The table, its change table and its view must all exist, be permanent and belong to the
-- same role, which the login role may act as: a temporary table (any role may create one)
-- or a name the caller does not hold would otherwise buy the owners' grants, or make a
-- table look COW-enabled (agentcow.is_cow_table) when it is not. The view and the change
-- table are in the table's schema (rename layout) or in _overlay (overlay layout).
-- _tenant_column and _tenant_read_only: see cow_tables.
DROP FUNCTION agentcow.register_table(name, name, name, name, name[], name[]);
CREATE FUNCTION agentcow.register_table(
    _schema name, _table name, _base name, _changes name, _pk_cols name[], _deferrable_fks name[],
    _overlay name, _tenant_column name, _tenant_read_only boolean
) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    _owner name;
BEGIN
    SELECT pg_get_userbyid(b.relowner) INTO _owner
    FROM pg_namespace n
    JOIN pg_namespace o ON o.nspname = coalesce(_overlay, _schema)
    JOIN pg_class b ON b.relnamespace = n.oid AND b.relname = _base
    JOIN pg_class c ON c.relnamespace = o.oid AND c.relname = _changes
    JOIN pg_class v ON v.relnamespace = o.oid AND v.relname = _table
    WHERE n.nspname = _schema AND pg_has_role(session_user, b.relowner, 'USAGE')
      AND b.relkind = 'r' AND b.relpersistence = 'p'
      AND c.relkind = 'r' AND c.relpersistence = 'p' AND c.relowner = b.relowner
      AND v.relkind = 'v' AND v.relpersistence = 'p' AND v.relowner = b.relowner;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'agentcow: only the owner of %.% can enable COW on it', _schema, _table
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    INSERT INTO agentcow.cow_tables (schema_name, table_name, base_name, changes_name, pk_cols,
                                     deferrable_fks, overlay_schema, tenant_column, tenant_read_only)
    VALUES (_schema, _table, _base, _changes, _pk_cols, _deferrable_fks, _overlay, _tenant_column,
            _tenant_read_only);
    PERFORM agentcow.grant_owner_functions(_owner);
END
$fn$;

CREATE FUNCTION agentcow.grant_owner_functions(_role name) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    EXECUTE format('GRANT EXECUTE ON FUNCTION agentcow.lock_session(uuid, boolean), '
                   'agentcow.share_session(uuid), '
                   'agentcow.remember(text, bigint), agentcow.recall(text), agentcow.take(text) TO %I', _role);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON agentcow.backend_state TO %I', _role);
END
$fn$;
REVOKE ALL ON FUNCTION agentcow.grant_owner_functions(name) FROM PUBLIC;

DO $owners$
DECLARE
    _owner name;
BEGIN
    FOR _owner IN
        SELECT DISTINCT pg_get_userbyid(c.relowner)
        FROM agentcow.cow_tables t
        JOIN pg_namespace n ON n.nspname = t.schema_name
        JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.base_name
    LOOP
        PERFORM agentcow.grant_owner_functions(_owner);
    END LOOP;
END
$owners$;

-- Runs a review query (operations, dependencies, conflicts: plain SELECTs with the caller's
-- rights) with operators and functions resolved in pg_catalog only, as the commit block does:
-- an agent that may create objects in a schema on the reviewer's search_path would otherwise
-- have its closer matches run as the reviewer (an = for varchar, or for an array, enum or
-- domain type of a key column, beats pg_catalog's, which needs a cast or is polymorphic).
-- The caller gives the result's column definition list. Not SECURITY DEFINER.
CREATE FUNCTION agentcow.pinned_query(_query text) RETURNS SETOF record
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    RETURN QUERY EXECUTE _query;
END
$fn$;

-- Runs the query of a policy check (agentcow.review.policy) with the caller's rights and
-- search_path (in the session under review: the agent's names): EXECUTE takes exactly one
-- statement, so a check's text cannot add statements of its own whatever protocol the
-- driver speaks. The caller gives the column definition list. Not SECURITY DEFINER.
CREATE FUNCTION agentcow.policy_query(_query text) RETURNS SETOF record
LANGUAGE plpgsql
AS $fn$
BEGIN
    RETURN QUERY EXECUTE _query;
END
$fn$;

-- The search_path of a session, which apply_cow_variables sets as it enters one: the
-- caller's (_path: current_schemas(false)) with the overlay schema of each of its schemas just
-- before that schema, so that the agent's unqualified names reach the merged views of
-- overlay-layout tables and every other name resolves as before. NULL when no schema of the
-- path has an overlay (the path stays as it is). A function, because every request enters a
-- session: its plans are cached by the backend. Not SECURITY DEFINER: the caller's own
-- temporary schema is the one that matters. Refuses (SQLSTATE 55000):
-- * when an overlay view of a schema of the path is missing (dropped by a migration's
--   DROP ... CASCADE): its unqualified name would reach the table itself, production;
-- * when the calling backend holds temporary objects that shadow, for unqualified names, a
--   relation of a schema of the path or of its overlays, or a type of pg_catalog or of such
--   a schema (the names as a JSON array in DETAIL). Temporary objects outlive the request
--   that made them on a pooled connection (asyncpg's reset does not drop them), and the
--   temporary schema is searched before every other for relations and types: an earlier
--   request's view named like a COW table (or a domain named text) would read this
--   request's SQL, settings included (its session id), or run code in it. A backend that
--   never made a temporary object skips this check.
CREATE FUNCTION agentcow.session_search_path(_path name[]) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    _temp oid := pg_my_temp_schema();
    _schemas name[];   -- the path's schemas that have overlays ...
    _overlays name[];  -- ... and their overlay schemas
    _names text[];
    _result text[] := '{}';
    _schema name;
    _at int;
BEGIN
    -- one probe of the registry's key; to_regclass is a catalog cache lookup
    SELECT array_agg(t.schema_name), array_agg(t.overlay_schema),
           array_agg(quote_ident(t.schema_name) || '.' || quote_ident(t.table_name)
                     ORDER BY t.schema_name, t.table_name)
               FILTER (WHERE to_regclass(quote_ident(t.overlay_schema) || '.' || quote_ident(t.table_name)) IS NULL)
      INTO _schemas, _overlays, _names
      FROM agentcow.cow_tables t
     WHERE t.schema_name = ANY (_path) AND t.overlay_schema IS NOT NULL;
    IF cardinality(_names) > 0 THEN
        RAISE EXCEPTION 'agentcow: the overlay views of % are missing', array_to_string(_names, ', ')
            USING ERRCODE = 'object_not_in_prerequisite_state', DETAIL = to_jsonb(_names)::text,
                  HINT = 'A session would reach these tables themselves. Their owner must call refresh_cow after the migration that dropped them.';
    END IF;
    IF _temp <> 0 THEN
        _names := ARRAY(
            SELECT DISTINCT x.name
            FROM (SELECT c.relname::text AS name
                  FROM pg_class c
                  WHERE c.relnamespace = _temp
                    AND EXISTS (SELECT FROM pg_class o JOIN pg_namespace n ON n.oid = o.relnamespace
                                WHERE o.relname = c.relname
                                  AND (n.nspname = ANY (_path) OR n.nspname = ANY (_overlays)
                                       OR n.nspname = 'pg_catalog'))
                  UNION ALL
                  SELECT t.typname::text
                  FROM pg_type t
                  WHERE t.typnamespace = _temp
                    AND NOT EXISTS (SELECT FROM pg_type e WHERE e.typarray = t.oid)
                    AND EXISTS (SELECT FROM pg_type o JOIN pg_namespace n ON n.oid = o.typnamespace
                                WHERE o.typname = t.typname
                                  AND (n.nspname = ANY (_path) OR n.nspname = ANY (_overlays)
                                       OR n.nspname = 'pg_catalog'))) x
            ORDER BY x.name);
        IF cardinality(_names) > 0 THEN
            RAISE EXCEPTION 'agentcow: temporary objects on this connection shadow names the session''s SQL would use'
                USING ERRCODE = 'object_not_in_prerequisite_state', DETAIL = to_jsonb(_names)::text,
                      HINT = 'Reset pooled connections with DISCARD ALL (or DISCARD TEMP) when they are released.';
        END IF;
    END IF;
    IF _schemas IS NULL THEN
        RETURN NULL;
    END IF;
    FOREACH _schema IN ARRAY _path LOOP
        _at := array_position(_schemas, _schema);
        IF _at IS NOT NULL THEN
            _result := _result || quote_ident(_overlays[_at]);
        END IF;
        _result := _result || quote_ident(_schema);
    END LOOP;
    RETURN array_to_string(_result, ', ');
END
$fn$;

-- The session registry: every session is recorded when a request first enters it
-- (agentcow.enter_session), with the tenant it is bound to and a label. Only the kit's
-- functions write it, so a session's tenant, once recorded, is out of the agent's reach:
-- no SQL the agent sends can rebind the session to another tenant. Review functions read
-- it through agentcow.session_info (the rows of the sessions the caller may review).
CREATE TABLE agentcow.sessions (
    session_id uuid PRIMARY KEY,
    tenant text,
    label text,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    last_active_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    state text NOT NULL DEFAULT 'open'
        CHECK (state IN ('open', 'committed', 'partially_committed', 'discarded')),
    committed_by name,
    committed_at timestamptz
);
REVOKE ALL ON agentcow.sessions FROM PUBLIC;

-- Records the session on first use, applies its limits (apply_session_limits) and checks
-- its binding: a session recorded for one tenant cannot be entered for another (or without
-- one: the binding is what keeps the agent's SQL inside its tenant), nor can a session
-- first entered without a tenant be bound to one later. A NULL session (the setting did not
-- take) records nothing. last_active_at moves at most once a second (a write per request
-- would cost every request a row version). SECURITY DEFINER: the registry is the kit's.
CREATE FUNCTION agentcow.enter_session(_session uuid, _tenant text, _label text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    _known agentcow.sessions;
BEGIN
    IF _session IS NULL THEN
        RETURN;  -- the setting did not take (no transaction): the caller refuses
    END IF;
    PERFORM agentcow.apply_session_limits(_session);  -- defined with the limits, below
    SELECT * INTO _known FROM agentcow.sessions s WHERE s.session_id = _session;
    IF NOT FOUND THEN
        INSERT INTO agentcow.sessions (session_id, tenant, label)
        VALUES (_session, _tenant, _label)
        ON CONFLICT (session_id) DO NOTHING;
        IF FOUND THEN
            RETURN;
        END IF;
        SELECT * INTO _known FROM agentcow.sessions s WHERE s.session_id = _session;
    END IF;
    IF _known.tenant IS DISTINCT FROM _tenant THEN
        RAISE EXCEPTION 'agentcow: session % is bound to %', _session,
            CASE WHEN _known.tenant IS NULL THEN 'no tenant' ELSE 'another tenant' END
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'A session keeps the tenant it was first entered with; start a new session for another tenant.';
    END IF;
    IF _known.last_active_at < pg_catalog.now() - interval '1 second' THEN
        UPDATE agentcow.sessions s SET last_active_at = pg_catalog.now()
        WHERE s.session_id = _session;
    END IF;
END
$fn$;

-- The tenant the current transaction's session is bound to (NULL: none, or no session).
-- STABLE and PARALLEL SAFE: views read it once per statement (as an initplan), and keep
-- parallel plans.
CREATE FUNCTION agentcow.session_tenant() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT s.tenant FROM agentcow.sessions s WHERE s.session_id = agentcow.session_id()
$fn$;

-- The tenant the current transaction's session is bound to, as a view that every role may
-- read (it shows no more than session_tenant() does): the views of tables with a tenant
-- column read it in a scalar subquery (an initplan, once per statement), where the planner
-- expands it into one probe of the registry's key. A call of session_tenant() there costs
-- more: PostgreSQL 15-17 parse and plan a SQL function's body again for each statement
-- (about 0.15 ms per call on PostgreSQL 15, where a point read takes 0.05 ms).
CREATE VIEW agentcow.session_binding WITH (security_barrier) AS
SELECT s.tenant FROM agentcow.sessions s
WHERE s.session_id OPERATOR(pg_catalog.=) agentcow.session_id();
GRANT SELECT ON agentcow.session_binding TO PUBLIC;

-- The tenant _session is bound to (NULL: none, or not recorded): for the write triggers,
-- which check each row against the session it is written in (a statement can move
-- app.session_id from its own WHERE clause), and for commits, which run outside the session.
-- Says no more than session_tenant() says to whoever sets app.session_id to _session.
CREATE FUNCTION agentcow.session_tenant(_session uuid) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT s.tenant FROM agentcow.sessions s WHERE s.session_id = _session
$fn$;

-- Session states, history and undo.
--
-- A commit or discard records how the session stands (agentcow.end_session), inside its own
-- block, so that a failed commit records nothing: 'open' (versions pending, nothing committed
-- yet), 'partially_committed' (some committed, some pending), 'committed' (something
-- committed, nothing pending), 'discarded' (nothing committed, nothing pending) and 'undone'
-- (every row it committed was reverted by agentcow.undo). Who committed is the login role
-- (session_user: SET ROLE cannot change it).
ALTER TABLE agentcow.sessions
    DROP CONSTRAINT sessions_state_check,
    ADD CONSTRAINT sessions_state_check
        CHECK (state IN ('open', 'committed', 'partially_committed', 'discarded', 'undone')),
    ADD COLUMN undone_by name,
    ADD COLUMN undone_at timestamptz;

-- Whether the login role may act as the owner of every one of _tables, all of them base
-- tables of COW tables (and at least one): what a role must be to record the end of a
-- commit, discard or undo. SECURITY DEFINER callers only (they check session_user).
CREATE FUNCTION agentcow.owns_cow_tables(_tables oid[]) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT coalesce(cardinality(_tables), 0) > 0
       AND NOT EXISTS (
           SELECT FROM unnest(_tables) AS r(relation)
           WHERE NOT EXISTS (
               SELECT FROM agentcow.cow_tables t
               JOIN pg_namespace n ON n.nspname = t.schema_name
               JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.base_name
               WHERE c.oid = r.relation AND pg_has_role(session_user, c.relowner, 'USAGE')))
$fn$;
REVOKE ALL ON FUNCTION agentcow.owns_cow_tables(oid[]) FROM PUBLIC;

-- Records the end of a commit (_committed) or discard of _session in _tables (their owner
-- only: the agent can reach no row of the registry); _pending: versions of the session are
-- left (agentcow.session_pending, which reads the change tables as the caller). A session
-- that was never entered through apply_cow_variables (raw settings) is recorded here.
CREATE FUNCTION agentcow.end_session(_session uuid, _committed boolean, _pending boolean, _tables oid[])
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF NOT agentcow.owns_cow_tables(_tables) THEN
        RAISE EXCEPTION 'agentcow: only the owner of a COW table can record the end of a session'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    INSERT INTO agentcow.sessions (session_id) VALUES (_session) ON CONFLICT (session_id) DO NOTHING;
    UPDATE agentcow.sessions s
    SET committed_by = CASE WHEN _committed THEN session_user ELSE s.committed_by END,
        committed_at = CASE WHEN _committed THEN now() ELSE s.committed_at END,
        state = CASE WHEN _pending THEN
                     CASE WHEN _committed OR s.committed_at IS NOT NULL THEN 'partially_committed' ELSE 'open' END
                ELSE CASE WHEN _committed OR s.committed_at IS NOT NULL THEN 'committed' ELSE 'discarded' END
                END
    WHERE s.session_id = _session;
END
$fn$;

-- Whether _session holds versions in any change table the caller may read. Not SECURITY
-- DEFINER: the change tables are their owners'.
CREATE FUNCTION agentcow.session_pending(_session uuid) RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    _changes text;
    _found boolean;
BEGIN
    FOR _changes IN
        SELECT format('%I.%I', coalesce(t.overlay_schema, t.schema_name), t.changes_name)
        FROM agentcow.cow_tables t
        WHERE has_table_privilege(format('%I.%I', coalesce(t.overlay_schema, t.schema_name), t.changes_name), 'SELECT')
    LOOP
        EXECUTE format('SELECT EXISTS (SELECT FROM %s c WHERE c.session_id = $1 AND c._cow_seq > 0)', _changes)
            INTO _found USING _session;
        IF _found THEN
            RETURN true;
        END IF;
    END LOOP;
    RETURN false;
END
$fn$;

-- The registry as a reviewer reads it: every session, for a role that may act as the owner
-- of a COW table; nothing for any other role (agents).
CREATE FUNCTION agentcow.session_info() RETURNS SETOF agentcow.sessions
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT s.* FROM agentcow.sessions s
    WHERE EXISTS (SELECT FROM agentcow.cow_tables t
                  JOIN pg_namespace n ON n.nspname = t.schema_name
                  JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.base_name
                  WHERE pg_has_role(session_user, c.relowner, 'USAGE'))
$fn$;

-- Kit-wide settings, changed by the kit's owner (the role that deployed it).
-- history_retention: how long committed rows are kept for undo; NULL keeps them forever,
-- zero keeps none (commits then record no history).
CREATE TABLE agentcow.settings (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    history_retention interval CHECK (history_retention >= interval '0')
);
INSERT INTO agentcow.settings (history_retention) VALUES (interval '30 days');
GRANT SELECT ON agentcow.settings TO PUBLIC;

-- Committed rows, one per key and commit: the base row before the commit and after it (NULL:
-- no row), as JSON of the table's row type (json, not jsonb: a json column's text comes back
-- exactly as it was), and the operations of the session that wrote the
-- key. Written by the commit block as the table's owner, just before the applied versions
-- are forgotten; read by undo. Rows changed by a cascade or a trigger of the base are not
-- here. Every role may try, row-level security lets each one reach the rows of the tables it
-- may act as the owner of, and no other.
CREATE TABLE agentcow.history (
    history_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    commit_id bigint NOT NULL,
    session_id uuid NOT NULL,
    relation oid NOT NULL,
    schema_name name NOT NULL,
    table_name name NOT NULL,
    key jsonb NOT NULL,
    before json,
    after json,
    operation_ids uuid[] NOT NULL,
    committed_at timestamptz NOT NULL DEFAULT now(),
    committed_by name NOT NULL DEFAULT session_user,
    undone_at timestamptz,
    undone_by name,
    undo_session uuid
);
CREATE INDEX ON agentcow.history (session_id);
CREATE INDEX ON agentcow.history (committed_at);
ALTER TABLE agentcow.history ENABLE ROW LEVEL SECURITY;
CREATE POLICY table_owners ON agentcow.history
    USING (pg_catalog.pg_has_role(current_user,
                                  (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = relation),
                                  'USAGE'));
GRANT SELECT, INSERT, UPDATE, DELETE ON agentcow.history TO PUBLIC;

-- Whether commits record history (a retention of zero turns it off).
CREATE FUNCTION agentcow.history_on() RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT coalesce((SELECT s.history_retention <> interval '0' FROM agentcow.settings s), true) $fn$;

-- Forgets the caller's history older than the retention (row-level security: the rows of
-- the caller's tables only). Called at commit and by gc.
CREATE FUNCTION agentcow.prune_history() RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    _retention interval := (SELECT s.history_retention FROM agentcow.settings s);
    _rows bigint;
BEGIN
    IF _retention IS NULL THEN
        RETURN 0;
    END IF;
    DELETE FROM agentcow.history h WHERE h.committed_at < now() - _retention;
    GET DIAGNOSTICS _rows = ROW_COUNT;
    RETURN _rows;
END
$fn$;

-- Records an undo of _session (by the undo session _undo, which committed the restored rows)
-- in the registry: who undid it and when; 'undone' once no row it committed is left to undo.
CREATE FUNCTION agentcow.record_undo(_session uuid, _undo uuid, _tables oid[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF NOT agentcow.owns_cow_tables(_tables) THEN
        RAISE EXCEPTION 'agentcow: only the owner of a COW table can record an undo'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    INSERT INTO agentcow.sessions (session_id) VALUES (_session) ON CONFLICT (session_id) DO NOTHING;
    UPDATE agentcow.sessions s
    SET undone_by = session_user, undone_at = now(),
        state = CASE WHEN EXISTS (SELECT FROM agentcow.history h
                                  WHERE h.session_id = _session AND h.undone_at IS NULL)
                     THEN s.state ELSE 'undone' END
    WHERE s.session_id = _session;
    UPDATE agentcow.sessions s SET label = coalesce(s.label, 'undo of ' || _session)
    WHERE s.session_id = _undo;
END
$fn$;

-- Discards the sessions of the registry that stand open (or partially committed) and were
-- last entered longer than _older_than ago, in the COW tables of _schema the caller owns;
-- one row per session and table with the versions dropped (table_name NULL, 0: the session
-- had none there). A session being written is skipped (its lock is not waited for), and a
-- session is checked again once locked. Not SECURITY DEFINER: it deletes as the caller.
CREATE FUNCTION agentcow.discard_idle_sessions(_schema name, _older_than interval)
RETURNS TABLE (session_id uuid, table_name text, versions bigint)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    _session uuid;
    _table record;
    _tables oid[];
    _rows bigint;
    _any boolean;
BEGIN
    PERFORM agentcow.prune_bindings();
    SELECT array_agg(c.oid) INTO _tables
    FROM agentcow.cow_tables t
    JOIN pg_namespace n ON n.nspname = t.schema_name
    JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.base_name
    WHERE t.schema_name = _schema AND pg_has_role(current_user, c.relowner, 'USAGE');
    IF _tables IS NULL THEN
        RETURN;
    END IF;
    FOR _session IN
        SELECT i.session_id FROM agentcow.session_info() i
        WHERE i.state IN ('open', 'partially_committed') AND i.last_active_at < now() - _older_than
        ORDER BY i.session_id
    LOOP
        BEGIN
            PERFORM agentcow.lock_session(_session, true);
        EXCEPTION WHEN lock_not_available THEN
            CONTINUE;  -- being written: not abandoned
        END;
        CONTINUE WHEN NOT EXISTS (
            SELECT FROM agentcow.session_info() i
            WHERE i.session_id = _session AND i.state IN ('open', 'partially_committed')
              AND i.last_active_at < now() - _older_than);
        _any := false;
        FOR _table IN
            SELECT t.table_name, format('%I.%I', coalesce(t.overlay_schema, t.schema_name), t.changes_name) AS changes
            FROM agentcow.cow_tables t
            JOIN pg_namespace n ON n.nspname = t.schema_name
            JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.base_name
            WHERE c.oid = ANY (_tables)
            ORDER BY t.table_name
        LOOP
            EXECUTE format('DELETE FROM %s c WHERE c.session_id = $1 AND c._cow_seq > 0', _table.changes)
                USING _session;
            GET DIAGNOSTICS _rows = ROW_COUNT;
            IF _rows > 0 THEN
                _any := true;
                session_id := _session; table_name := _table.table_name; versions := _rows;
                RETURN NEXT;
            END IF;
        END LOOP;
        IF NOT _any THEN
            session_id := _session; table_name := NULL; versions := 0;
            RETURN NEXT;
        END IF;
        PERFORM agentcow.end_session(_session, false, agentcow.session_pending(_session), _tables);
    END LOOP;
    PERFORM agentcow.prune_history();
END
$fn$;

-- Sessions an agent cannot move (issue 10).
--
-- agent-cow binds a transaction to a session with settings (app.session_id,
-- app.operation_id), which any SQL can change, even from the WHERE clause of the very
-- statement whose triggers read them. For the roles registered as agent roles
-- (agentcow.agent_roles), those settings are ignored: a transaction's session is the one
-- agentcow.bind_session recorded for it, a call the application makes with a key the agent
-- never sees, recorded in a table no agent can write. A transaction is named by its
-- transaction id (xid8: never reused), which bind_session assigns; no statement can give a
-- transaction another one, and one that ends (COMMIT, ROLLBACK) leaves the next one unbound.
-- Writes through a COW view by an agent role without a binding fail (42501) instead of
-- reaching the table. Other roles (owners, reviewers, the application itself) keep the
-- settings. While no agent role is registered, the session functions are the settings'
-- one-line SQL functions, which the planner inlines: nothing changes or costs more.

-- One row per bound transaction, while it lasts (rows of ended transactions are removed by
-- the connection's next bind_session, or by gc_sessions). UNLOGGED: no bound transaction
-- outlives a crash.
CREATE UNLOGGED TABLE agentcow.bindings (
    xid xid8 PRIMARY KEY,
    pid integer NOT NULL,
    session_id uuid NOT NULL,
    operation_id uuid NOT NULL,
    bound_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE INDEX bindings_pid ON agentcow.bindings (pid);
REVOKE ALL ON agentcow.bindings FROM PUBLIC;

-- The keys an application binds sessions with, as SHA-256 digests (the key itself is never
-- stored, nor sent except as a bind_session parameter).
CREATE TABLE agentcow.binding_keys (
    label text PRIMARY KEY,
    key_digest bytea NOT NULL UNIQUE CHECK (pg_catalog.length(key_digest) = 32),
    created_by name NOT NULL DEFAULT SESSION_USER,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
REVOKE ALL ON agentcow.binding_keys FROM PUBLIC;

-- Roles whose transactions are bound only by bind_session: these roles, and the roles that
-- are members of them (per-run login roles of a group), except superusers.
CREATE TABLE agentcow.agent_roles (
    role_oid oid PRIMARY KEY,
    added_by name NOT NULL DEFAULT SESSION_USER,
    added_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
REVOKE ALL ON agentcow.agent_roles FROM PUBLIC;

-- Whether the caller is an agent: its login role (which no SQL it sends can change) or its
-- current role (SET ROLE) is a member of a registered agent role, and it does not log in
-- as a superuser. Inside the kit's SECURITY DEFINER code current_user is the owner, so the
-- caller is read from SESSION_USER and the role setting. PL/pgSQL, whose plans a backend
-- keeps (a SQL function's body would be planned again in every statement on 15-17).
CREATE FUNCTION agentcow.caller_is_agent() RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    RETURN EXISTS (
               SELECT FROM agentcow.agent_roles a
               WHERE pg_has_role(SESSION_USER, a.role_oid, 'MEMBER')
                  OR (current_setting('role') <> 'none'
                      AND pg_has_role(current_setting('role')::name, a.role_oid, 'MEMBER')))
       AND NOT (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = SESSION_USER);
END
$fn$;

-- The session (or, with _operation, the operation) of the transaction once agent roles
-- exist: the binding, else the setting of a caller that is no agent, else none. A
-- transaction without a transaction id was never bound (bind_session assigns one), and
-- without the setting there is nothing to decide: production's statements look nothing
-- up. (Parallel workers share the leader's transaction id and see its rows.)
CREATE FUNCTION agentcow.bound_id(_operation boolean) RETURNS uuid
LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    _xid xid8 := pg_current_xact_id_if_assigned();
    _set uuid := nullif(current_setting(CASE WHEN _operation THEN 'app.operation_id' ELSE 'app.session_id' END, true), '')::uuid;
    _id uuid;
BEGIN
    IF _xid IS NOT NULL THEN
        SELECT CASE WHEN _operation THEN b.operation_id ELSE b.session_id END INTO _id
        FROM agentcow.bindings b WHERE b.xid = _xid;
        IF FOUND THEN
            RETURN _id;
        END IF;
    END IF;
    IF _set IS NULL OR agentcow.caller_is_agent() THEN
        RETURN NULL;
    END IF;
    RETURN _set;
END
$fn$;

-- Whether a write without a session must fail rather than reach the table: an agent's.
-- (Replaced by 'SELECT false' while no agent role is registered.)
CREATE FUNCTION agentcow.session_required() RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
AS $fn$ SELECT false $fn$;

-- Points the session functions at the bindings while agent roles exist, and back at the
-- settings when none is left. Run by the kit's owner (it replaces the kit's functions).
-- Views and triggers call the functions by name, and plans that inlined the old bodies
-- are made again.
CREATE FUNCTION agentcow.refresh_session_functions() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF EXISTS (SELECT FROM agentcow.agent_roles) THEN
        CREATE OR REPLACE FUNCTION agentcow.session_id() RETURNS uuid
        LANGUAGE sql STABLE PARALLEL SAFE
        AS $body$ SELECT agentcow.bound_id(false) $body$;
        CREATE OR REPLACE FUNCTION agentcow.operation_id() RETURNS uuid
        LANGUAGE sql STABLE PARALLEL SAFE
        AS $body$ SELECT agentcow.bound_id(true) $body$;
        CREATE OR REPLACE FUNCTION agentcow.session_required() RETURNS boolean
        LANGUAGE sql STABLE PARALLEL SAFE
        AS $body$ SELECT agentcow.caller_is_agent() $body$;
    ELSE
        CREATE OR REPLACE FUNCTION agentcow.session_id() RETURNS uuid
        LANGUAGE sql STABLE PARALLEL SAFE
        AS $body$ SELECT nullif(pg_catalog.current_setting('app.session_id', true), '')::uuid $body$;
        CREATE OR REPLACE FUNCTION agentcow.operation_id() RETURNS uuid
        LANGUAGE sql STABLE PARALLEL SAFE
        AS $body$ SELECT nullif(pg_catalog.current_setting('app.operation_id', true), '')::uuid $body$;
        CREATE OR REPLACE FUNCTION agentcow.session_required() RETURNS boolean
        LANGUAGE sql STABLE PARALLEL SAFE
        AS $body$ SELECT false $body$;
    END IF;
END
$fn$;
REVOKE ALL ON FUNCTION agentcow.refresh_session_functions() FROM PUBLIC;

-- Registers _role as an agent role (its transactions are bound only by bind_session), or
-- removes it. The kit's owner only (the tables are its own).
CREATE FUNCTION agentcow.add_agent_role(_role name) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    INSERT INTO agentcow.agent_roles (role_oid) VALUES (quote_ident(_role)::regrole::oid)
    ON CONFLICT (role_oid) DO NOTHING;
    PERFORM agentcow.refresh_session_functions();
END
$fn$;
REVOKE ALL ON FUNCTION agentcow.add_agent_role(name) FROM PUBLIC;

CREATE FUNCTION agentcow.remove_agent_role(_role name) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    DELETE FROM agentcow.agent_roles a WHERE a.role_oid = quote_ident(_role)::regrole::oid;
    PERFORM agentcow.refresh_session_functions();
END
$fn$;
REVOKE ALL ON FUNCTION agentcow.remove_agent_role(name) FROM PUBLIC;

-- Binds the current transaction to _session and _operation, for an application holding a
-- binding key (agentcow.binding_keys); the agent's SQL runs after it, in the same
-- transaction. Called with parameters, so that no id and no key appears in any statement
-- text (pg_stat_activity, pg_stat_statements, pg_prepared_statements). A transaction is
-- bound once. The session is recorded and its tenant checked as enter_session does.
CREATE FUNCTION agentcow.bind_session(_session uuid, _operation uuid, _key text, _tenant text, _label text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    _xid xid8;
BEGIN
    IF _session IS NULL OR _operation IS NULL THEN
        RAISE EXCEPTION 'agentcow: bind_session needs a session id and an operation id'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF _key IS NULL OR NOT EXISTS (SELECT FROM agentcow.binding_keys k
                                   WHERE k.key_digest = sha256(convert_to(_key, 'UTF8'))) THEN
        RAISE EXCEPTION 'agentcow: the binding key is not valid'
            USING ERRCODE = 'invalid_authorization_specification',
                  HINT = 'Sessions are bound with a key from create_binding_key, which the application keeps from the agent.';
    END IF;
    _xid := pg_current_xact_id();
    IF EXISTS (SELECT FROM agentcow.bindings b WHERE b.xid = _xid) THEN
        RAISE EXCEPTION 'agentcow: this transaction is already bound to a session'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'A transaction belongs to one session and operation; bind the next one in a new transaction.';
    END IF;
    DELETE FROM agentcow.bindings b WHERE b.pid = pg_backend_pid();
    PERFORM agentcow.enter_session(_session, _tenant, _label);
    INSERT INTO agentcow.bindings (xid, pid, session_id, operation_id)
    VALUES (_xid, pg_backend_pid(), _session, _operation);
END
$fn$;

-- Bindings left by connections that are gone (a connection's own are removed when it binds
-- again); gc_sessions runs it. Any role may: it removes nothing a live transaction uses.
CREATE FUNCTION agentcow.prune_bindings() RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
    WITH gone AS (
        DELETE FROM agentcow.bindings b
        WHERE NOT EXISTS (SELECT FROM pg_stat_activity a WHERE a.pid = b.pid)
        RETURNING 1)
    SELECT count(*) FROM gone
$fn$;

-- enable and disable call it with the owner's search_path, on which an agent may have
-- created closer matches for its operators (an = for oid and integer).
ALTER FUNCTION agentcow.revoke_grants(regclass) SET search_path = pg_catalog, pg_temp;

-- Role hardening and per-session limits (agentcow.hardening, agentcow.limits).
--
-- Functions that end, record or lock for a commit (and the history they prune) are the
-- table owners': PUBLIC loses EXECUTE on them and grant_owner_functions gives it to each
-- owner (reviewers act as the owner). Each one also checks who calls it; an agent role
-- (agentcow.hardening) holds none of them.
REVOKE ALL ON FUNCTION agentcow.end_session(uuid, boolean, boolean, oid[]),
                       agentcow.record_undo(uuid, uuid, oid[]),
                       agentcow.discard_idle_sessions(name, interval),
                       agentcow.lock_for_commit(uuid, regclass[]),
                       agentcow.prune_history(),
                       agentcow.set_table_layout(name, name, text),
                       agentcow.unregister_table(name, name)
    FROM PUBLIC;

CREATE OR REPLACE FUNCTION agentcow.grant_owner_functions(_role name) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    EXECUTE format('GRANT EXECUTE ON FUNCTION agentcow.lock_session(uuid, boolean), '
                   'agentcow.share_session(uuid), '
                   'agentcow.remember(text, bigint), agentcow.recall(text), agentcow.take(text), '
                   'agentcow.end_session(uuid, boolean, boolean, oid[]), '
                   'agentcow.record_undo(uuid, uuid, oid[]), '
                   'agentcow.discard_idle_sessions(name, interval), '
                   'agentcow.lock_for_commit(uuid, regclass[]), agentcow.prune_history(), '
                   'agentcow.set_table_layout(name, name, text), '
                   'agentcow.unregister_table(name, name) TO %I', _role);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON agentcow.backend_state TO %I', _role);
END
$fn$;
REVOKE ALL ON FUNCTION agentcow.grant_owner_functions(name) FROM PUBLIC;

DO $owners$
DECLARE
    _owner name;
BEGIN
    FOR _owner IN
        SELECT DISTINCT pg_get_userbyid(c.relowner)
        FROM agentcow.cow_tables t
        JOIN pg_namespace n ON n.nspname = t.schema_name
        JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.base_name
    LOOP
        PERFORM agentcow.grant_owner_functions(_owner);
    END LOOP;
END
$owners$;

-- Limits of a session's requests: max_rows, the row versions the session may write in all
-- (an UPDATE that moves a key writes two); statement_timeout, lock_timeout and idle_timeout
-- (idle_in_transaction_session_timeout), applied transaction-locally whenever a request
-- enters the session. Per session (session_limits), else per login role (role_limits: the
-- role that enters the session), else for every role (role_limits' row 'public', a name no
-- role can take); NULL: no limit at that level. Only agentcow.set_limits writes them, and
-- only for the kit's owner or a role that may act as the owner of a COW table, never for an
-- agent role: an agent cannot raise its own limits.
CREATE TABLE agentcow.session_limits (
    session_id uuid PRIMARY KEY,
    max_rows bigint CHECK (max_rows >= 0),
    statement_timeout interval CHECK (statement_timeout > interval '0'),
    lock_timeout interval CHECK (lock_timeout > interval '0'),
    idle_timeout interval CHECK (idle_timeout > interval '0'),
    set_by name NOT NULL DEFAULT session_user,
    set_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
REVOKE ALL ON agentcow.session_limits FROM PUBLIC;

CREATE TABLE agentcow.role_limits (
    role_name name PRIMARY KEY,
    max_rows bigint CHECK (max_rows >= 0),
    statement_timeout interval CHECK (statement_timeout > interval '0'),
    lock_timeout interval CHECK (lock_timeout > interval '0'),
    idle_timeout interval CHECK (idle_timeout > interval '0'),
    set_by name NOT NULL DEFAULT session_user,
    set_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
REVOKE ALL ON agentcow.role_limits FROM PUBLIC;

-- Whether any limit is set (agentcow.set_limits keeps it): the row-limit trigger reads it,
-- with its caller's rights, before anything costs more.
ALTER TABLE agentcow.settings ADD COLUMN limits_in_use boolean NOT NULL DEFAULT false;

-- Row versions each limited session wrote (counted from when a limit applied to it); xact,
-- the last transaction that entered it, and xact_rows, the backend's count of rows inserted
-- into change tables (agentcow.inserted_versions) up to which that transaction's writes are
-- in rows_written. A transaction's writes are added once, when it commits (folded: a
-- deferred trigger, agentcow.fold_session_rows), so that its statements only read the row:
-- a row updated by every statement of a long transaction would grow a chain of versions
-- that each statement walks. Written by the kit's functions only.
CREATE TABLE agentcow.session_usage (
    session_id uuid PRIMARY KEY,
    rows_written bigint NOT NULL,
    xact xid8 NOT NULL,
    xact_rows bigint NOT NULL,
    folded boolean NOT NULL DEFAULT false
);
REVOKE ALL ON agentcow.session_usage FROM PUBLIC;

-- The limits that apply to _session entered by _role (see session_limits).
-- For the kit's SECURITY DEFINER functions (their search_path; none of its own, so that it
-- is inlined into their queries).
CREATE FUNCTION agentcow.limits_of(_session uuid, _role name)
RETURNS TABLE (max_rows bigint, statement_timeout interval, lock_timeout interval, idle_timeout interval)
LANGUAGE sql STABLE
AS $fn$
    SELECT coalesce(s.max_rows, r.max_rows, p.max_rows),
           coalesce(s.statement_timeout, r.statement_timeout, p.statement_timeout),
           coalesce(s.lock_timeout, r.lock_timeout, p.lock_timeout),
           coalesce(s.idle_timeout, r.idle_timeout, p.idle_timeout)
    FROM (SELECT) AS one
    LEFT JOIN agentcow.session_limits s ON s.session_id = _session
    LEFT JOIN agentcow.role_limits r ON r.role_name = _role
    LEFT JOIN agentcow.role_limits p ON p.role_name = 'public'
$fn$;
REVOKE ALL ON FUNCTION agentcow.limits_of(uuid, name) FROM PUBLIC;

-- Whether the login role may set limits: the kit's owner (the schema's), or a role that may
-- act as the owner of a COW table (for a session's limits); never a registered agent role.
CREATE FUNCTION agentcow.may_set_limits(_for_session boolean) RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    RETURN NOT agentcow.caller_is_agent() AND (
        pg_has_role(session_user, (SELECT n.nspowner FROM pg_namespace n WHERE n.nspname = 'agentcow'), 'USAGE')
        OR (_for_session AND EXISTS (
            SELECT FROM agentcow.cow_tables t
            JOIN pg_namespace n ON n.nspname = t.schema_name
            JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.base_name
            WHERE pg_has_role(session_user, c.relowner, 'USAGE'))));
END
$fn$;
REVOKE ALL ON FUNCTION agentcow.may_set_limits(boolean) FROM PUBLIC;

-- Sets the limits of one session (_session) or the defaults of one login role (_role;
-- 'public': every role); every limit NULL removes the entry.
CREATE FUNCTION agentcow.set_limits(_session uuid, _role name, _max_rows bigint,
                                    _statement_timeout interval, _lock_timeout interval,
                                    _idle_timeout interval) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    _none boolean := _max_rows IS NULL AND _statement_timeout IS NULL AND _lock_timeout IS NULL
                     AND _idle_timeout IS NULL;
BEGIN
    IF (_session IS NULL) = (_role IS NULL) THEN
        RAISE EXCEPTION 'agentcow: limits are set for a session or for a role'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT agentcow.may_set_limits(_session IS NOT NULL) THEN
        RAISE EXCEPTION 'agentcow: only the kit''s owner% can set limits',
            CASE WHEN _session IS NULL THEN '' ELSE ' or the owner of a COW table' END
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Agent roles cannot change their own limits.';
    END IF;
    IF _session IS NOT NULL THEN
        DELETE FROM agentcow.session_limits l WHERE l.session_id = _session;
        IF NOT _none THEN
            INSERT INTO agentcow.session_limits (session_id, max_rows, statement_timeout, lock_timeout, idle_timeout)
            VALUES (_session, _max_rows, _statement_timeout, _lock_timeout, _idle_timeout);
        END IF;
    ELSE
        DELETE FROM agentcow.role_limits l WHERE l.role_name = _role;
        IF NOT _none THEN
            INSERT INTO agentcow.role_limits (role_name, max_rows, statement_timeout, lock_timeout, idle_timeout)
            VALUES (_role, _max_rows, _statement_timeout, _lock_timeout, _idle_timeout);
        END IF;
    END IF;
    UPDATE agentcow.settings s
    SET limits_in_use = EXISTS (SELECT FROM agentcow.session_limits) OR EXISTS (SELECT FROM agentcow.role_limits);
END
$fn$;

-- The limits of _session for the requests of login role _role (NULL: a role without defaults
-- of its own) and the rows it wrote while limited: for the roles that may set them.
CREATE FUNCTION agentcow.limits_info(_session uuid, _role name)
RETURNS TABLE (max_rows bigint, statement_timeout interval, lock_timeout interval,
               idle_timeout interval, rows_written bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF NOT agentcow.may_set_limits(true) THEN
        RAISE EXCEPTION 'agentcow: only the kit''s owner or the owner of a COW table can read limits'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN QUERY
    SELECT l.max_rows, l.statement_timeout, l.lock_timeout, l.idle_timeout,
           coalesce((SELECT u.rows_written FROM agentcow.session_usage u WHERE u.session_id = _session), 0)
    FROM agentcow.limits_of(_session, coalesce(_role, 'public')) l;
END
$fn$;

-- The rows this backend inserted into change tables, from the server's per-table counters
-- (pg_stat_get_xact_tuples_inserted: nothing the agent's SQL can change, and no write per
-- row). They also hold earlier transactions' rows not yet sent to the statistics, which
-- happens only between transactions: within one transaction, differences are exact. For the
-- kit's SECURITY DEFINER functions, as limits_of.
CREATE FUNCTION agentcow.inserted_versions() RETURNS bigint
LANGUAGE sql STABLE
AS $fn$
    SELECT coalesce(sum(pg_stat_get_xact_tuples_inserted(
               to_regclass(quote_ident(coalesce(t.overlay_schema, t.schema_name)) || '.' || quote_ident(t.changes_name)))), 0)::bigint
    FROM agentcow.cow_tables t
$fn$;
REVOKE ALL ON FUNCTION agentcow.inserted_versions() FROM PUBLIC;

-- Applies _session's time limits to the rest of the transaction (statement_timeout,
-- lock_timeout, idle_in_transaction_session_timeout, as SET LOCAL would; at least 1 ms, as 0
-- would turn them off). Called when a request enters the session (enter_session,
-- bind_session). A row limit needs the server's per-table counters (track_counts).
CREATE FUNCTION agentcow.apply_session_limits(_session uuid) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    _limits record;
BEGIN
    SELECT * INTO _limits FROM agentcow.limits_of(_session, session_user);
    IF _limits.max_rows IS NOT NULL THEN
        IF NOT current_setting('track_counts')::boolean THEN
            RAISE EXCEPTION 'agentcow: session % has a row limit, which needs track_counts = on', _session
                USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
        -- where this transaction's count starts (kept if it entered the session before)
        INSERT INTO agentcow.session_usage AS u (session_id, rows_written, xact, xact_rows)
        VALUES (_session, 0, pg_current_xact_id(), agentcow.inserted_versions())
        ON CONFLICT (session_id) DO UPDATE
            SET xact = EXCLUDED.xact, xact_rows = EXCLUDED.xact_rows, folded = false
            WHERE u.xact <> EXCLUDED.xact;
    END IF;
    IF _limits.statement_timeout IS NOT NULL THEN
        PERFORM set_config('statement_timeout',
                           greatest(1, ceil(extract(epoch FROM _limits.statement_timeout) * 1000))::bigint::text, true);
    END IF;
    IF _limits.lock_timeout IS NOT NULL THEN
        PERFORM set_config('lock_timeout',
                           greatest(1, ceil(extract(epoch FROM _limits.lock_timeout) * 1000))::bigint::text, true);
    END IF;
    IF _limits.idle_timeout IS NOT NULL THEN
        PERFORM set_config('idle_in_transaction_session_timeout',
                           greatest(1, ceil(extract(epoch FROM _limits.idle_timeout) * 1000))::bigint::text, true);
    END IF;
END
$fn$;

-- The row limit, as an AFTER STATEMENT trigger on every COW view (limit_trigger.sql): once
-- per top-level statement, adds the versions this transaction wrote (agentcow.inserted_versions)
-- to the session's count before it, and fails the statement (program_limit_exceeded) past
-- the limit; the commit adds them for good (agentcow.fold_session_rows). Statements run by cascades are counted with the
-- statement that ran them. Rows of a statement rolled back to a savepoint count (the
-- server's counters keep them). A limited session written without being entered (raw settings: no
-- starting point for this transaction's count) is refused.
-- The row limit of the current transaction's session (for session_user), as a view every
-- role may read (limits are no secret): the trigger reads it with its caller's rights.
CREATE VIEW agentcow.session_row_limit WITH (security_barrier) AS
SELECT coalesce(s.max_rows, r.max_rows, p.max_rows) AS max_rows
FROM (SELECT) AS one
LEFT JOIN agentcow.session_limits s ON s.session_id OPERATOR(pg_catalog.=) agentcow.session_id()
LEFT JOIN agentcow.role_limits r ON r.role_name OPERATOR(pg_catalog.=) session_user
LEFT JOIN agentcow.role_limits p ON p.role_name OPERATOR(pg_catalog.=) 'public'::name;
GRANT SELECT ON agentcow.session_row_limit TO PUBLIC;

-- The trigger's function is the caller's, with no settings of its own (no search_path:
-- every name is qualified). A statement without a session (production's, in the rename
-- layout) returns at the first line: a simple expression, no query run (the queries below
-- made a 1-row production UPDATE 1.15x slower). In a session, a statement pays one read of
-- agentcow.settings while no limit is set anywhere, and one of session_row_limit in a session
-- without a row limit; count_limited_rows (SECURITY DEFINER, and costlier to call) does the
-- rest as the kit.
CREATE FUNCTION agentcow.count_session_rows() RETURNS trigger
LANGUAGE plpgsql
AS $fn$
BEGIN
    IF agentcow.session_id() IS NULL THEN
        RETURN NULL;
    END IF;
    IF pg_catalog.pg_trigger_depth() OPERATOR(pg_catalog.=) 1
       AND (SELECT s.limits_in_use FROM agentcow.settings s)
       AND (SELECT l.max_rows FROM agentcow.session_row_limit l) IS NOT NULL THEN
        PERFORM agentcow.count_limited_rows();
    END IF;
    RETURN NULL;
END
$fn$;

CREATE FUNCTION agentcow.count_limited_rows() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    _session uuid;
    _max bigint;
    _entered boolean;
    _written bigint;   -- rows_written, then with this transaction's
    _counted bigint;   -- xact_rows
    _folded boolean;
    _xact_rows bigint;
BEGIN
    _session := agentcow.session_id();
    IF _session IS NULL THEN
        RETURN;
    END IF;
    -- one query: the limit, this transaction's entry and the rows it inserted so far
    -- (inserted_versions written out: PostgreSQL 15-17 plan a SQL function's query at each call)
    SELECT l.max_rows, u.session_id IS NOT NULL, u.rows_written, u.xact_rows, u.folded,
           CASE WHEN l.max_rows IS NOT NULL THEN
               (SELECT coalesce(sum(pg_stat_get_xact_tuples_inserted(
                           to_regclass(quote_ident(coalesce(t.overlay_schema, t.schema_name)) || '.' || quote_ident(t.changes_name)))), 0)::bigint
                FROM agentcow.cow_tables t) END
      INTO _max, _entered, _written, _counted, _folded, _xact_rows
      FROM agentcow.limits_of(_session, session_user) l
      LEFT JOIN agentcow.session_usage u ON u.session_id = _session AND u.xact = pg_current_xact_id();
    IF _max IS NULL THEN
        RETURN;
    END IF;
    IF NOT _entered THEN
        RAISE EXCEPTION 'agentcow: session % has a row limit and was not entered in this transaction', _session
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Enter sessions through apply_cow_variables (or bind_session), not raw settings.';
    END IF;
    IF _folded THEN
        -- the fold ran before the commit (SET CONSTRAINTS ... IMMEDIATE): count as we go
        UPDATE agentcow.session_usage u
        SET rows_written = u.rows_written + (_xact_rows - u.xact_rows), xact_rows = _xact_rows
        WHERE u.session_id = _session
        RETURNING u.rows_written INTO _written;
    ELSE
        _written := _written + (_xact_rows - _counted);
    END IF;
    IF _written > _max THEN
        RAISE EXCEPTION 'agentcow: session % would write % row versions, past its limit of %',
            _session, _written, _max
            USING ERRCODE = 'program_limit_exceeded',
                  HINT = 'Nothing of this statement was kept. A reviewer can commit or discard the session, or raise its limit (set_session_limits).';
    END IF;
    RETURN;
END
$fn$;

-- Adds a transaction's row versions to its session's count as it commits (a deferred
-- constraint trigger on the row apply_session_limits wrote when the transaction entered the
-- session); once only (folded), whenever the caller makes it fire.
CREATE FUNCTION agentcow.fold_session_rows() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    _xact_rows bigint := agentcow.inserted_versions();
BEGIN
    UPDATE agentcow.session_usage u
    SET rows_written = u.rows_written + (_xact_rows - u.xact_rows), xact_rows = _xact_rows, folded = true
    WHERE u.session_id = NEW.session_id AND u.xact = pg_current_xact_id() AND NOT u.folded;
    RETURN NULL;
END
$fn$;
CREATE CONSTRAINT TRIGGER fold_session_rows AFTER INSERT OR UPDATE OF xact ON agentcow.session_usage
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION agentcow.fold_session_rows();

-- Runs one statement of harden_cow_schema in a subtransaction of its own and returns its
-- error (SQLSTATE: message), NULL if it ran: a grant the caller may not revoke or a role it
-- may not alter is reported, and the other statements still run. Not SECURITY DEFINER: the
-- statement runs with the caller's rights, as if sent directly.
CREATE FUNCTION agentcow.try_statement(_statement text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    EXECUTE _statement;
    RETURN NULL;
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$fn$;


-- Upserts through a session (agentcow.agent.upserts). An INSERT ... ON CONFLICT ... DO UPDATE
-- that an agent sends is rewritten into one statement through the view; when two of its
-- proposed rows would write one row, PostgreSQL raises this error for the table, and so does
-- the rewritten statement, at the second row. Not SECURITY DEFINER: it only raises.
CREATE FUNCTION agentcow.upsert_row_twice() RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'cardinality_violation',
        MESSAGE = 'ON CONFLICT DO UPDATE command cannot affect row a second time',
        HINT = 'Ensure that no rows proposed for insertion within the same command have duplicate constrained values.';
END
$fn$;

ALTER TABLE agentcow.cow_tables ALTER COLUMN layout SET DEFAULT '0.3.0';

UPDATE agentcow.kit SET version = '0.3.0';
