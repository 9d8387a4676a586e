-- The shop the README's screenshots of the review page show (docs/screenshots.py).
-- Before the first "-- @" line: the schema and its data, run as one script. Then each
-- "-- @session <label>" starts an agent's session, each "-- @operation" one operation of
-- it (its statements run in one transaction), and "-- @production" writes straight to the
-- tables, as production does while the session waits for review.
CREATE TABLE customers (
    id int PRIMARY KEY,
    name text NOT NULL,
    email text NOT NULL
);
CREATE TABLE orders (
    id int PRIMARY KEY,
    customer_id int NOT NULL REFERENCES customers (id),
    status text NOT NULL DEFAULT 'open',
    total numeric(10, 2) NOT NULL
);
CREATE TABLE refunds (
    id int PRIMARY KEY,
    order_id int NOT NULL REFERENCES orders (id),
    amount numeric(10, 2) NOT NULL,
    state text NOT NULL DEFAULT 'requested'
);
INSERT INTO customers VALUES
    (1, 'Ada Lovelace', 'ada@example.org'),
    (2, 'Grace Hopper', 'grace@example.org'),
    (3, 'Edsger Dijkstra', 'ewd@example.org');
INSERT INTO orders VALUES
    (101, 1, 'paid', 120.00),
    (102, 1, 'open', 35.50),
    (103, 2, 'shipped', 990.00),
    (104, 3, 'open', 18.20),
    (105, 3, 'open', 64.00);

-- @session refunds agent
-- @operation
UPDATE orders SET total = total * 0.9 WHERE customer_id = 1;
-- @operation
INSERT INTO refunds VALUES (1, 103, 99.00, 'requested');
-- @operation
UPDATE refunds SET state = 'approved' WHERE id = 1;
UPDATE orders SET status = 'refunded' WHERE id = 103;
-- @operation
DELETE FROM orders WHERE id = 104;
-- @operation
UPDATE customers SET email = 'grace.hopper@example.org' WHERE id = 2;
-- @operation
INSERT INTO refunds VALUES (2, 105, -64.00, 'requested');

-- @session cleanup agent
-- @operation
UPDATE orders SET status = 'cancelled' WHERE id = 105;

-- @production
UPDATE orders SET status = 'shipped' WHERE id = 102;
