-- Sessions holding changes in one change table.
SELECT DISTINCT c.session_id FROM {{ changes|qualified }} c ORDER BY 1
