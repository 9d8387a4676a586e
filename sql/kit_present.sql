-- Whether the kit's catalog exists in this database.
SELECT pg_catalog.to_regclass('agentcow.kit') IS NOT NULL
