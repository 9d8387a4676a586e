-- The kit's settings as `agentcow status` shows them (history_retention NULL: forever).
SELECT s.history_retention FROM agentcow.settings s
