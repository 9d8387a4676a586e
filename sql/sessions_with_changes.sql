-- Sessions holding changes in one change table.
SELECT DISTINCT c.session_id FROM {{ schema|ident }}.{{ changes|ident }} c ORDER BY 1
