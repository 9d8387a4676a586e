-- agentcow kit 0.1.0: the catalog and helper functions every COW-enabled table relies on.
-- Installed by deploy_cow_functions() inside one transaction; never edit a released file,
-- add an upgrade step agentcow--OLD--NEW.sql instead.

CREATE SCHEMA agentcow;
COMMENT ON SCHEMA agentcow IS 'agentcow copy-on-write kit: catalog and helper functions';
GRANT USAGE ON SCHEMA agentcow TO PUBLIC;

-- The installed kit version (one row).
CREATE TABLE agentcow.kit (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version text NOT NULL
);
GRANT SELECT ON agentcow.kit TO PUBLIC;

-- One row per COW-enabled table. Written only through register_table/unregister_table,
-- which check that the session's login role may act as the table's owner.
CREATE TABLE agentcow.cow_tables (
    schema_name name NOT NULL,
    table_name name NOT NULL,
    base_name name NOT NULL,
    changes_name name NOT NULL,
    pk_cols name[] NOT NULL,
    deferrable_fks name[] NOT NULL DEFAULT '{}',
    enabled_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (schema_name, table_name)
);
GRANT SELECT ON agentcow.cow_tables TO PUBLIC;

-- Orders every write of every session: "latest" is decided by this, never by a clock.
CREATE SEQUENCE agentcow.change_seq AS bigint;
GRANT USAGE, SELECT ON SEQUENCE agentcow.change_seq TO PUBLIC;

-- The highest change number handed out so far: a statement's own writes are those above the
-- mark taken when it started.
CREATE FUNCTION agentcow.change_mark() RETURNS bigint
LANGUAGE sql VOLATILE
AS $fn$
    SELECT CASE WHEN s.is_called THEN s.last_value ELSE s.last_value - 1 END FROM agentcow.change_seq s
$fn$;

-- Session settings. STABLE and PARALLEL SAFE so that views using them keep parallel plans
-- and index scans; SQL-language so the planner inlines them.
CREATE FUNCTION agentcow.session_id() RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE
AS $fn$ SELECT nullif(pg_catalog.current_setting('app.session_id', true), '')::uuid $fn$;

CREATE FUNCTION agentcow.operation_id() RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE
AS $fn$ SELECT nullif(pg_catalog.current_setting('app.operation_id', true), '')::uuid $fn$;

CREATE FUNCTION agentcow.visible_operations() RETURNS uuid[]
LANGUAGE sql STABLE PARALLEL SAFE
AS $fn$ SELECT nullif(pg_catalog.current_setting('app.visible_operations', true), '')::uuid[] $fn$;

-- The operation a session write belongs to; a write in a session without one is refused.
CREATE FUNCTION agentcow.require_write_operation() RETURNS uuid
LANGUAGE plpgsql STABLE
AS $fn$
DECLARE
    _operation uuid := agentcow.operation_id();
BEGIN
    IF _operation IS NULL THEN
        RAISE EXCEPTION 'agentcow: app.operation_id is not set'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Writes in a COW session need an operation id: call apply_cow_variables(executor, session_id, operation_id).';
    END IF;
    IF agentcow.visible_operations() IS NOT NULL THEN
        RAISE EXCEPTION 'agentcow: writes are refused while app.visible_operations is set (preview is read-only)'
            USING ERRCODE = 'read_only_sql_transaction';
    END IF;
    RETURN _operation;
END
$fn$;

-- The view's default for a GENERATED ALWAYS identity column: draws the value and remembers
-- it, so the write trigger can refuse any other value as the table itself would.
CREATE FUNCTION agentcow.identity_default(_sequence regclass, _table oid) RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $fn$
DECLARE
    _value bigint := pg_catalog.nextval(_sequence);
BEGIN
    PERFORM pg_catalog.set_config('agentcow.identity_' || _table, _value::text, true);
    RETURN _value;
END
$fn$;

-- Whether an inserted identity value is the one the view's default just drew (and forget it).
CREATE FUNCTION agentcow.is_drawn_identity(_value bigint, _table oid) RETURNS boolean
LANGUAGE plpgsql VOLATILE
AS $fn$
DECLARE
    _drawn text := pg_catalog.current_setting('agentcow.identity_' || _table, true);
BEGIN
    PERFORM pg_catalog.set_config('agentcow.identity_' || _table, '', true);
    RETURN _value IS NOT DISTINCT FROM nullif(_drawn, '')::bigint;
END
$fn$;

CREATE FUNCTION agentcow.is_cow_table(_schema name, _table name) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
AS $fn$
    SELECT EXISTS (SELECT FROM agentcow.cow_tables t WHERE t.schema_name = _schema AND t.table_name = _table)
$fn$;

-- A cascade from a COW table into a table that is not COW-enabled would write to production.
CREATE FUNCTION agentcow.require_cow_target(_schema name, _table name, _constraint name) RETURNS void
LANGUAGE plpgsql STABLE
AS $fn$
BEGIN
    IF NOT agentcow.is_cow_table(_schema, _table) THEN
        RAISE EXCEPTION 'agentcow: foreign key % would cascade into %.%, which is not COW-enabled',
            _constraint, _schema, _table
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Enable COW on the referencing table too (enable_cow_schema does all tables).';
    END IF;
END
$fn$;

CREATE FUNCTION agentcow.register_table(
    _schema name, _table name, _base name, _changes name, _pk_cols name[], _deferrable_fks name[]
) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF NOT EXISTS (
        SELECT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = _schema AND c.relname = _base AND pg_has_role(session_user, c.relowner, 'USAGE')
    ) THEN
        RAISE EXCEPTION 'agentcow: only the owner of %.% can enable COW on it', _schema, _table
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    INSERT INTO agentcow.cow_tables (schema_name, table_name, base_name, changes_name, pk_cols, deferrable_fks)
    VALUES (_schema, _table, _base, _changes, _pk_cols, _deferrable_fks);
END
$fn$;

CREATE FUNCTION agentcow.unregister_table(_schema name, _table name) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF NOT EXISTS (
        SELECT FROM agentcow.cow_tables t
        JOIN pg_namespace n ON n.nspname = t.schema_name
        JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.base_name
        WHERE t.schema_name = _schema AND t.table_name = _table
          AND pg_has_role(session_user, c.relowner, 'USAGE')
    ) THEN
        RAISE EXCEPTION 'agentcow: only the owner of %.% can disable COW on it', _schema, _table
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    DELETE FROM agentcow.cow_tables t WHERE t.schema_name = _schema AND t.table_name = _table;
END
$fn$;

-- Leaves a relation reachable by its owner only, whatever ALTER DEFAULT PRIVILEGES granted.
CREATE FUNCTION agentcow.revoke_grants(_relation regclass) RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    _grantee text;
BEGIN
    FOR _grantee IN
        SELECT DISTINCT CASE WHEN e.grantee = 0 THEN 'PUBLIC'
                             ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(e.grantee)) END
        FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) AS e
        WHERE c.oid = _relation AND e.grantee <> c.relowner
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON %s FROM %s', _relation, _grantee);
    END LOOP;
END
$fn$;

INSERT INTO agentcow.kit (version) VALUES ('0.1.0');
