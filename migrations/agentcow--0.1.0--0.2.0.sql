-- agentcow kit 0.1.0 -> 0.2.0: operations with history, conflict baselines and cherry-picks.
-- Change tables gain _cow_old (the row before each write). Tables enabled under 0.1.0 keep
-- working as they were until their owner runs upgrade_cow_tables(), which adds the column,
-- fills it in and replaces their write trigger; the registry records each table's layout.

ALTER TABLE agentcow.cow_tables ADD COLUMN layout text NOT NULL DEFAULT '0.1.0';
ALTER TABLE agentcow.cow_tables ALTER COLUMN layout SET DEFAULT '0.2.0';

-- Records that a table's objects were re-rendered for a newer layout; owner only.
CREATE FUNCTION agentcow.set_table_layout(_schema name, _table name, _layout text) RETURNS void
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
        RAISE EXCEPTION 'agentcow: only the owner of %.% can upgrade it', _schema, _table
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    UPDATE agentcow.cow_tables t SET layout = _layout
    WHERE t.schema_name = _schema AND t.table_name = _table;
END
$fn$;

UPDATE agentcow.kit SET version = '0.2.0';
