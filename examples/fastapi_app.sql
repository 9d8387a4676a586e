-- examples/fastapi_app.py's database: the shop's tables, which agents change in copy-on-write
-- sessions, and the application's own (schema app), which agents never reach.

CREATE TABLE orders (
    id int PRIMARY KEY,
    tenant_id int NOT NULL,
    customer text NOT NULL,
    status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'shipped', 'cancelled')),
    total numeric(10, 2) NOT NULL CHECK (total >= 0)
);
CREATE INDEX ON orders (tenant_id);

INSERT INTO orders (id, tenant_id, customer, total) VALUES
    (1, 1, 'Ada', 120.00),
    (2, 1, 'Ada', 35.50),
    (3, 1, 'Grace', 990.00),
    (4, 2, 'Edsger', 12.00),
    (5, 2, 'Barbara', 48.25);

CREATE SCHEMA app;

-- One row per agent run the application started: the token it handed out is kept as its
-- SHA-256 digest only, with the session the run writes in and the tenant it works for.
CREATE TABLE app.agent_runs (
    token_sha256 text PRIMARY KEY,
    session_id uuid NOT NULL UNIQUE,
    tenant_id int NOT NULL,
    label text NOT NULL,
    started_by text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);

-- The people who review sessions, by the digest of their token.
CREATE TABLE app.reviewers (
    token_sha256 text PRIMARY KEY,
    name text NOT NULL UNIQUE
);
