{#- Every privilege of agent roles beyond what a COW schema needs, and what reviewer roles
    lack, read from the catalogs (nothing is changed). One row per finding: kind, role,
    object, privilege, via (how the role holds it: 'direct', 'PUBLIC' or 'member of <role>'),
    grantee (the role the grant names, whom the fix changes; NULL: PUBLIC),
    fix (the SQL that removes it, quoted by format()).
    schema: the COW schema; agents, reviewers: role names; owner_only: kit functions only
    table owners may run (regprocedure text); kit_public: (relation, privilege) pairs the kit
    grants PUBLIC on its own relations. -#}
{% macro names(values) %}ARRAY[{% for v in values %}{{ v|literal }}{% if not loop.last %}, {% endif %}{% endfor %}]::pg_catalog.text[]{% endmacro %}
WITH agents AS (
    SELECT r.oid, r.rolname FROM pg_catalog.pg_roles r WHERE r.rolname::text = ANY ({{ names(agents) }})
), reviewers AS (
    SELECT r.oid, r.rolname FROM pg_catalog.pg_roles r WHERE r.rolname::text = ANY ({{ names(reviewers) }})
), cow AS (
    SELECT b.oid AS base, v.oid AS view, c.oid AS changes, b.relowner AS owner, k.oid AS kit_schema
    FROM agentcow.cow_tables t
    JOIN pg_catalog.pg_namespace n ON n.nspname = t.schema_name
    JOIN pg_catalog.pg_class b ON b.relnamespace = n.oid AND b.relname = t.base_name
    JOIN pg_catalog.pg_namespace k ON k.nspname = coalesce(t.overlay_schema, t.schema_name)
    JOIN pg_catalog.pg_class v ON v.relnamespace = k.oid AND v.relname = t.table_name
    JOIN pg_catalog.pg_class c ON c.relnamespace = k.oid AND c.relname = t.changes_name
    WHERE t.schema_name = {{ schema|literal }}
), schemas AS (  -- the COW schema, its overlay schema (if any) and the kit's
    SELECT n.oid, n.nspname FROM pg_catalog.pg_namespace n
    WHERE n.nspname = {{ schema|literal }} OR n.nspname = 'agentcow' OR n.oid IN (SELECT kit_schema FROM cow)
), owners AS (
    SELECT DISTINCT cow.owner AS oid FROM cow
), kit_owner AS (
    SELECT n.nspowner AS oid FROM pg_catalog.pg_namespace n WHERE n.nspname = 'agentcow'
), relation_acl AS (  -- table and column grants of every relation of those schemas
    SELECT c.oid, c.relkind, s.nspname, c.relowner, e.grantee, e.privilege_type, NULL::pg_catalog.name AS attname
    FROM pg_catalog.pg_class c JOIN schemas s ON s.oid = c.relnamespace,
         pg_catalog.aclexplode(c.relacl) e
    UNION ALL
    SELECT c.oid, c.relkind, s.nspname, c.relowner, e.grantee, e.privilege_type, a.attname
    FROM pg_catalog.pg_class c JOIN schemas s ON s.oid = c.relnamespace
    JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped,
         pg_catalog.aclexplode(a.attacl) e
), relation_reach AS (  -- ... that reach an agent, and what the relation is
    SELECT a.rolname, x.*,
           CASE WHEN x.oid IN (SELECT base FROM cow) THEN 'base'
                WHEN x.oid IN (SELECT changes FROM cow) THEN 'changes'
                WHEN x.oid IN (SELECT view FROM cow) THEN 'view'
                WHEN x.nspname = 'agentcow' THEN 'kit'
                WHEN x.oid IN (SELECT c.oid FROM pg_catalog.pg_class c WHERE c.relnamespace IN (SELECT kit_schema FROM cow)
                               AND c.relnamespace <> (SELECT n.oid FROM pg_catalog.pg_namespace n WHERE n.nspname = {{ schema|literal }})) THEN 'twin'
                ELSE 'other' END AS class
    FROM agents a
    JOIN relation_acl x ON x.grantee <> x.relowner
         AND (x.grantee = 0 OR x.grantee = a.oid OR pg_catalog.pg_has_role(a.oid, x.grantee, 'MEMBER'))
), kit_public(relation, privilege) AS (
    VALUES {% for relation, privilege in kit_public %}({{ relation|literal }}, {{ privilege|literal }}){% if not loop.last %}, {% endif %}{% endfor %}

), relation_findings AS (
    SELECT r.*,
           CASE r.class
               WHEN 'base' THEN 'base_table'
               WHEN 'changes' THEN 'change_table'
               WHEN 'view' THEN CASE WHEN r.privilege_type NOT IN ('SELECT', 'INSERT', 'UPDATE', 'DELETE') THEN 'view_privilege' END
               WHEN 'kit' THEN CASE WHEN r.grantee <> 0 OR r.attname IS NOT NULL
                                         OR (r.oid::pg_catalog.regclass::text, r.privilege_type::text) NOT IN (SELECT * FROM kit_public)
                                    THEN 'kit_table' END
               ELSE CASE WHEN r.privilege_type IN ('TRIGGER', 'REFERENCES', 'TRUNCATE', 'MAINTAIN') THEN 'dangerous_privilege'
                         WHEN r.relkind = 'S' AND r.privilege_type = 'UPDATE' THEN 'sequence_update'
                         WHEN r.class = 'other' AND r.relkind IN ('r', 'p', 'v', 'f', 'm')
                              AND r.privilege_type IN ('INSERT', 'UPDATE', 'DELETE') THEN 'production_write' END
           END AS kind
    FROM relation_reach r
), functions AS (
    SELECT p.oid, p.proowner, p.prosecdef, n.nspname, e.grantee
    FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace,
         pg_catalog.aclexplode(coalesce(p.proacl, pg_catalog.acldefault('f', p.proowner))) e
    WHERE e.privilege_type = 'EXECUTE' AND e.grantee <> p.proowner
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'
      AND (n.nspname = 'agentcow'
           OR (p.prosecdef AND p.prokind IN ('f', 'p') AND p.prorettype <> 'pg_catalog.trigger'::pg_catalog.regtype))
), function_findings AS (
    SELECT a.rolname, f.oid, f.grantee,
           CASE WHEN f.nspname = 'agentcow' THEN 'kit_function' ELSE 'definer_function' END AS kind
    FROM agents a
    JOIN functions f ON (f.grantee = 0 OR f.grantee = a.oid OR pg_catalog.pg_has_role(a.oid, f.grantee, 'MEMBER'))
         AND f.proowner <> a.oid
    WHERE f.nspname <> 'agentcow'
       OR f.oid IN (SELECT pg_catalog.to_regprocedure(s)::pg_catalog.oid FROM pg_catalog.unnest({{ names(owner_only) }}) s)
), schema_findings AS (
    SELECT a.rolname, n.nspname, e.grantee
    FROM agents a, pg_catalog.pg_namespace n,
         pg_catalog.aclexplode(coalesce(n.nspacl, pg_catalog.acldefault('n', n.nspowner))) e
    WHERE e.privilege_type = 'CREATE' AND e.grantee <> n.nspowner
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'
      AND (e.grantee = 0 OR e.grantee = a.oid OR pg_catalog.pg_has_role(a.oid, e.grantee, 'MEMBER'))
), database_findings AS (
    SELECT a.rolname, d.datname, e.grantee
    FROM agents a, pg_catalog.pg_database d,
         pg_catalog.aclexplode(coalesce(d.datacl, pg_catalog.acldefault('d', d.datdba))) e
    WHERE d.datname = pg_catalog.current_database() AND e.privilege_type = 'CREATE' AND e.grantee <> d.datdba
      AND (e.grantee = 0 OR e.grantee = a.oid OR pg_catalog.pg_has_role(a.oid, e.grantee, 'MEMBER'))
), default_findings AS (
    SELECT a.rolname, d.defaclrole, d.defaclnamespace, d.defaclobjtype, e.grantee, e.privilege_type
    FROM agents a, pg_catalog.pg_default_acl d, pg_catalog.aclexplode(d.defaclacl) e
    WHERE d.defaclobjtype IN ('r', 'S') AND e.grantee <> d.defaclrole
      AND (d.defaclnamespace = 0 OR d.defaclnamespace IN (SELECT oid FROM schemas WHERE nspname <> 'agentcow'))
      AND (e.grantee = 0 OR e.grantee = a.oid OR pg_catalog.pg_has_role(a.oid, e.grantee, 'MEMBER'))
), dangerous_roles AS (  -- roles an agent must not be able to act as
    SELECT oid, 'owns COW tables of the schema' AS why FROM owners
    UNION ALL SELECT oid, 'is a reviewer role' FROM reviewers
    UNION ALL SELECT oid, 'owns the agentcow kit' FROM kit_owner
    UNION ALL SELECT d.datdba, 'owns the database' FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database()
    UNION ALL SELECT r.oid, 'has the attribute ' || pg_catalog.concat_ws(', ',
                  CASE WHEN r.rolsuper THEN 'SUPERUSER' END, CASE WHEN r.rolcreaterole THEN 'CREATEROLE' END,
                  CASE WHEN r.rolbypassrls THEN 'BYPASSRLS' END, CASE WHEN r.rolreplication THEN 'REPLICATION' END,
                  CASE WHEN r.rolcreatedb THEN 'CREATEDB' END)
              FROM pg_catalog.pg_roles r
              WHERE r.rolsuper OR r.rolcreaterole OR r.rolbypassrls OR r.rolreplication OR r.rolcreatedb
    UNION ALL SELECT r.oid, 'is the predefined role ' || r.rolname FROM pg_catalog.pg_roles r
              WHERE r.rolname IN ('pg_signal_backend', 'pg_read_all_data', 'pg_write_all_data', 'pg_read_all_stats',
                                  'pg_read_all_settings', 'pg_stat_scan_tables', 'pg_monitor', 'pg_read_server_files',
                                  'pg_write_server_files', 'pg_execute_server_program', 'pg_checkpoint', 'pg_maintain',
                                  'pg_create_subscription', 'pg_use_reserved_connections', 'pg_database_owner')
), membership_findings AS (  -- each direct membership through which an agent reaches one
    SELECT DISTINCT ON (a.rolname, m.roleid) a.rolname, m.roleid, d.oid AS reached, d.why
    FROM agents a
    JOIN pg_catalog.pg_auth_members m ON m.member = a.oid
    JOIN dangerous_roles d ON d.oid <> a.oid AND pg_catalog.pg_has_role(m.roleid, d.oid, 'MEMBER')
    ORDER BY a.rolname, m.roleid, d.oid = m.roleid DESC, d.why
), settings AS (
    SELECT a.rolname, s.setdatabase, pg_catalog.split_part(c, '=', 1) AS name, pg_catalog.substr(c, pg_catalog.strpos(c, '=') + 1) AS value
    FROM agents a
    JOIN pg_catalog.pg_db_role_setting s ON s.setrole = a.oid
         AND s.setdatabase IN (0, (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database())),
         pg_catalog.unnest(s.setconfig) c
), owned AS (  -- what agents own: schemas of the database, relations and functions of those schemas
    SELECT a.rolname, 'schema' AS what, pg_catalog.quote_ident(n.nspname) AS object
    FROM agents a JOIN pg_catalog.pg_namespace n ON n.nspowner = a.oid
    WHERE n.nspname !~ '^pg_(toast|temp_)'
    UNION ALL
    SELECT a.rolname, CASE c.relkind WHEN 'S' THEN 'sequence' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
                                     WHEN 'f' THEN 'foreign table' ELSE 'table' END, c.oid::pg_catalog.regclass::text
    FROM agents a JOIN pg_catalog.pg_class c ON c.relowner = a.oid
    WHERE c.relnamespace IN (SELECT oid FROM schemas) AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
    UNION ALL
    SELECT a.rolname, CASE p.prokind WHEN 'p' THEN 'procedure' ELSE 'function' END, p.oid::pg_catalog.regprocedure::text
    FROM agents a JOIN pg_catalog.pg_proc p ON p.proowner = a.oid
    WHERE p.pronamespace IN (SELECT oid FROM schemas)
    UNION ALL
    SELECT a.rolname, 'database', pg_catalog.quote_ident(d.datname)
    FROM agents a JOIN pg_catalog.pg_database d ON d.datdba = a.oid AND d.datname = pg_catalog.current_database()
), grantee_text AS (
    SELECT 0::pg_catalog.oid AS oid, 'PUBLIC' AS name, NULL::text AS raw
    UNION ALL SELECT r.oid, pg_catalog.quote_ident(r.rolname), r.rolname::text FROM pg_catalog.pg_roles r
)
SELECT f.kind::text, f.rolname::text, f.object::text, f.privilege::text, f.via::text, f.grantee::text, f.fix::text
FROM (
    SELECT r.kind, r.rolname,
           CASE r.relkind WHEN 'S' THEN 'sequence ' WHEN 'v' THEN 'view ' ELSE 'table ' END
               || r.oid::pg_catalog.regclass::text
               || CASE WHEN r.attname IS NOT NULL THEN ' column ' || pg_catalog.quote_ident(r.attname) ELSE '' END AS object,
           r.privilege_type::text AS privilege,
           CASE WHEN r.grantee = 0 THEN 'PUBLIC' WHEN r.grantee = a.oid THEN 'direct' ELSE 'member of ' || g.name END AS via,
           g.raw AS grantee,
           pg_catalog.format('REVOKE %s%s ON %s%s FROM %s CASCADE', r.privilege_type,
                             CASE WHEN r.attname IS NOT NULL THEN ' (' || pg_catalog.quote_ident(r.attname) || ')' ELSE '' END,
                             CASE WHEN r.relkind = 'S' THEN 'SEQUENCE ' ELSE '' END, r.oid::pg_catalog.regclass, g.name) AS fix
    FROM relation_findings r JOIN agents a ON a.rolname = r.rolname JOIN grantee_text g ON g.oid = r.grantee
    WHERE r.kind IS NOT NULL
    UNION ALL
    SELECT f.kind, f.rolname, 'function ' || f.oid::pg_catalog.regprocedure::text, 'EXECUTE',
           CASE WHEN f.grantee = 0 THEN 'PUBLIC' WHEN f.grantee = a.oid THEN 'direct' ELSE 'member of ' || g.name END,
           g.raw,
           pg_catalog.format('REVOKE EXECUTE ON FUNCTION %s FROM %s', f.oid::pg_catalog.regprocedure, g.name)
    FROM function_findings f JOIN agents a ON a.rolname = f.rolname JOIN grantee_text g ON g.oid = f.grantee
    UNION ALL
    SELECT 'schema_create', s.rolname, 'schema ' || pg_catalog.quote_ident(s.nspname), 'CREATE',
           CASE WHEN s.grantee = 0 THEN 'PUBLIC' WHEN s.grantee = a.oid THEN 'direct' ELSE 'member of ' || g.name END,
           g.raw, pg_catalog.format('REVOKE CREATE ON SCHEMA %I FROM %s', s.nspname, g.name)
    FROM schema_findings s JOIN agents a ON a.rolname = s.rolname JOIN grantee_text g ON g.oid = s.grantee
    UNION ALL
    SELECT 'database_create', d.rolname, 'database ' || pg_catalog.quote_ident(d.datname), 'CREATE',
           CASE WHEN d.grantee = 0 THEN 'PUBLIC' WHEN d.grantee = a.oid THEN 'direct' ELSE 'member of ' || g.name END,
           g.raw, pg_catalog.format('REVOKE CREATE ON DATABASE %I FROM %s', d.datname, g.name)
    FROM database_findings d JOIN agents a ON a.rolname = d.rolname JOIN grantee_text g ON g.oid = d.grantee
    UNION ALL
    SELECT 'default_privilege', d.rolname,
           'future ' || CASE d.defaclobjtype WHEN 'S' THEN 'sequences' ELSE 'tables' END || ' of role '
               || pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(d.defaclrole))
               || CASE WHEN d.defaclnamespace = 0 THEN ' in every schema'
                       ELSE ' in schema ' || pg_catalog.quote_ident((SELECT n.nspname FROM pg_catalog.pg_namespace n WHERE n.oid = d.defaclnamespace)) END,
           d.privilege_type,
           CASE WHEN d.grantee = 0 THEN 'PUBLIC' WHEN d.grantee = a.oid THEN 'direct' ELSE 'member of ' || g.name END,
           g.raw,
           pg_catalog.format('ALTER DEFAULT PRIVILEGES FOR ROLE %I%s REVOKE %s ON %s FROM %s',
                             pg_catalog.pg_get_userbyid(d.defaclrole),
                             CASE WHEN d.defaclnamespace = 0 THEN ''
                                  ELSE ' IN SCHEMA ' || pg_catalog.quote_ident((SELECT n.nspname FROM pg_catalog.pg_namespace n WHERE n.oid = d.defaclnamespace)) END,
                             d.privilege_type, CASE d.defaclobjtype WHEN 'S' THEN 'SEQUENCES' ELSE 'TABLES' END, g.name)
    FROM default_findings d JOIN agents a ON a.rolname = d.rolname JOIN grantee_text g ON g.oid = d.grantee
    UNION ALL
    SELECT 'role_attribute', a.rolname, 'role ' || pg_catalog.quote_ident(a.rolname), x.attribute, 'direct',
           a.rolname::text, pg_catalog.format('ALTER ROLE %I NO%s', a.rolname, x.attribute)
    FROM agents a JOIN pg_catalog.pg_roles r ON r.oid = a.oid
    CROSS JOIN LATERAL (VALUES ('SUPERUSER', r.rolsuper), ('CREATEROLE', r.rolcreaterole), ('BYPASSRLS', r.rolbypassrls),
                               ('REPLICATION', r.rolreplication), ('CREATEDB', r.rolcreatedb)) AS x(attribute, held)
    WHERE x.held
    UNION ALL
    SELECT 'membership', m.rolname, 'role ' || pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(m.roleid)),
           'MEMBER', CASE WHEN m.reached = m.roleid THEN m.why
                          ELSE 'reaches ' || pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(m.reached)) || ', which ' || m.why END,
           m.rolname::text,
           pg_catalog.format('REVOKE %I FROM %I', pg_catalog.pg_get_userbyid(m.roleid), m.rolname)
    FROM membership_findings m
    UNION ALL
    SELECT 'role_setting', s.rolname,
           'role ' || pg_catalog.quote_ident(s.rolname) || CASE WHEN s.setdatabase = 0 THEN '' ELSE ' in this database' END,
           s.name || '=' || s.value, 'direct', s.rolname::text,
           pg_catalog.format('ALTER ROLE %I%s RESET %s', s.rolname,
                             CASE WHEN s.setdatabase = 0 THEN '' ELSE ' IN DATABASE ' || pg_catalog.quote_ident(pg_catalog.current_database()) END,
                             (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(p), '.') FROM pg_catalog.regexp_split_to_table(s.name, '\.') p))
    FROM settings s
    WHERE s.name IN ('search_path', 'session_replication_role', 'role', 'session_authorization',
                     'local_preload_libraries', 'session_preload_libraries', 'default_transaction_read_only')
       OR s.name LIKE 'app.%' OR s.name LIKE 'agentcow.%'
    UNION ALL
    SELECT 'ownership', o.rolname, o.what || ' ' || o.object, 'OWNER', 'direct', o.rolname::text,
           pg_catalog.format('ALTER %s %s OWNER TO %I', pg_catalog.upper(o.what), o.object,
                             coalesce((SELECT pg_catalog.pg_get_userbyid(min(oid)) FROM owners), 'CURRENT_USER'))
    FROM owned o
    UNION ALL
    SELECT 'not_registered', a.rolname, 'role ' || pg_catalog.quote_ident(a.rolname), 'AGENT', 'direct',
           a.rolname::text, pg_catalog.format('SELECT agentcow.add_agent_role(%L)', a.rolname)
    FROM agents a
    WHERE NOT EXISTS (SELECT FROM agentcow.agent_roles r WHERE pg_catalog.pg_has_role(a.oid, r.role_oid, 'MEMBER'))
    UNION ALL
    SELECT 'reviewer_not_owner', r.rolname, 'role ' || pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(o.oid)), 'MEMBER', 'missing',
           r.rolname::text, pg_catalog.format('GRANT %I TO %I', pg_catalog.pg_get_userbyid(o.oid), r.rolname)
    FROM reviewers r, owners o
    WHERE NOT pg_catalog.pg_has_role(r.oid, o.oid, 'USAGE')
) f
ORDER BY 2, 1, 3, 4, 5
