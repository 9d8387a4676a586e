-- How the connection reads backslashes in '...' strings (the guard reads them as with 'on').
SELECT pg_catalog.current_setting('standard_conforming_strings')
