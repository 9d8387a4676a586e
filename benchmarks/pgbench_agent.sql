-- An agent's request for benchmarks/pgbench.py: its session (one per pgbench client), then a
-- one-row write, a one-row read and an append, in one transaction. benchmarks/pgbench.py puts
-- the statement that enters the session (apply_cow_variables') in place of the placeholder.
\set aid random(1, 100000 * :scale)
\set delta random(-5000, 5000)
BEGIN;
{enter_session};
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime)
    VALUES (1, 1, :aid, :delta, CURRENT_TIMESTAMP);
END;
