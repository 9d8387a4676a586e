-- An agent's request for benchmarks/pgbench.py: its session (one per pgbench client), then a
-- one-row write, a one-row read and an append, in one transaction.
\set aid random(1, 100000 * :scale)
\set delta random(-5000, 5000)
BEGIN;
SELECT set_config('app.session_id', md5('session ' || :client_id)::uuid::text, true),
       set_config('app.operation_id', gen_random_uuid()::text, true);
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime)
    VALUES (1, 1, :aid, :delta, CURRENT_TIMESTAMP);
END;
