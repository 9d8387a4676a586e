-- The deployed kit version; run only once kit_present.sql said the kit is there.
SELECT k.version FROM agentcow.kit k
