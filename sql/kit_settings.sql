-- The kit's settings as `agentcow status` shows them (history_retention NULL: forever).
SELECT s.history_retention::pg_catalog.text FROM agentcow.settings s
