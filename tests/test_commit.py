"""Committing and discarding sessions, whole or by operation."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

import agentcow as ac
from tests.conftest import TestDatabase
from tests.helpers import (
    base_table,
    changes_count,
    changes_table,
    cow_view,
    fetch,
    make_cow,
    new_id,
    session,
)

T = (
    "CREATE TABLE t (id int PRIMARY KEY, v text, u text UNIQUE);"
    "INSERT INTO t VALUES (1, 'a', 'u1'), (2, 'b', 'u2'), (3, 'c', 'u3'), (4, 'd', 'u4')"
)
ALL = "SELECT id, v, u FROM t ORDER BY id"
T_BASE, T_CHANGES = base_table("t"), changes_table("t")
BASE_ROWS = [(1, "a", "u1"), (2, "b", "u2"), (3, "c", "u3"), (4, "d", "u4")]


async def _session_view(conn: Any, sid: uuid.UUID, sql: str = ALL) -> list[tuple[Any, ...]]:
    async with session(conn, sid, operation_id=None):
        return await fetch(conn, sql)


async def test_commit_applies_session_exactly(conn: Any) -> None:
    # u is not UNIQUE here: the UNIQUE cases have tests of their own below.
    executor = await make_cow(conn, T.replace("u text UNIQUE", "u text"), "t")
    sid, other = new_id(), new_id()
    async with session(conn, sid):
        await conn.execute("INSERT INTO t VALUES (5, 'e', 'u5'), (6, 'f', NULL)")
        await conn.execute("UPDATE t SET v = 'A', u = NULL WHERE id = 1")
        await conn.execute("DELETE FROM t WHERE id = 2")
        await conn.execute("UPDATE t SET id = 30, v = 'moved' WHERE id = 3")
        await conn.execute("DELETE FROM t WHERE id = 6")
        await conn.execute("UPDATE t SET v = 'E' WHERE id = 5")
    async with session(conn, other):
        await conn.execute("UPDATE t SET v = 'other' WHERE id = 4")
    seen = await _session_view(conn, sid)
    assert seen == [(1, "A", None), (4, "d", "u4"), (5, "E", "u5"), (30, "moved", "u3")]
    await ac.commit_cow_session(executor, "t", sid)
    assert await fetch(conn, ALL) == seen
    assert await fetch(conn, f"SELECT id, v, u FROM {T_BASE} ORDER BY id") == seen
    assert await changes_count(conn, "t", sid) == 0
    assert await _session_view(conn, sid) == seen
    # The other session is untouched and now sits on top of the new base.
    assert await changes_count(conn, "t", other) == 1
    assert await _session_view(conn, other) == [
        (1, "A", None),
        (4, "other", "u4"),
        (5, "E", "u5"),
        (30, "moved", "u3"),
    ]
    assert await ac.get_dirty_tables(executor, sid) == []
    # Committing an empty session is a no-op.
    await ac.commit_cow_session(executor, "t", sid)
    assert await fetch(conn, ALL) == seen


async def test_commit_primary_key_change_keeping_unique_value(conn: Any) -> None:
    """A row whose key changed keeps its UNIQUE value: the commit must not collide with the
    old version of the same row."""
    executor = await make_cow(conn, T, "t")
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("UPDATE t SET id = 10 WHERE id = 1")
    seen = await _session_view(conn, sid)
    await ac.commit_cow_session(executor, "t", sid)
    assert await fetch(conn, ALL) == seen
    assert await changes_count(conn) == 0


async def test_commit_unique_value_moved_from_deleted_row(conn: Any) -> None:
    """The session deletes a row and gives its UNIQUE value to a new row."""
    executor = await make_cow(conn, T, "t")
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("DELETE FROM t WHERE id = 1")
        await conn.execute("INSERT INTO t VALUES (9, 'new', 'u1')")
    seen = await _session_view(conn, sid)
    await ac.commit_cow_session(executor, "t", sid)
    assert await fetch(conn, ALL) == seen


async def test_commit_unique_values_swapped_between_rows(conn: Any) -> None:
    executor = await make_cow(conn, T, "t")
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("UPDATE t SET u = 'tmp' WHERE id = 1")
        await conn.execute("UPDATE t SET u = 'u1' WHERE id = 2")
        await conn.execute("UPDATE t SET u = 'u2' WHERE id = 1")
    seen = await _session_view(conn, sid)
    assert seen[:2] == [(1, "a", "u2"), (2, "b", "u1")]
    await ac.commit_cow_session(executor, "t", sid)
    assert await fetch(conn, ALL) == seen


async def test_discard_clears_without_touching_base(conn: Any) -> None:
    executor = await make_cow(conn, T, "t")
    sid, other = new_id(), new_id()
    async with session(conn, sid):
        await conn.execute("INSERT INTO t VALUES (5, 'e', 'u5')")
        await conn.execute("UPDATE t SET v = 'A' WHERE id = 1")
        await conn.execute("DELETE FROM t WHERE id = 2")
    async with session(conn, other):
        await conn.execute("DELETE FROM t WHERE id = 3")
    await ac.discard_cow_session(executor, "t", sid)
    assert await fetch(conn, ALL) == BASE_ROWS
    assert await changes_count(conn, "t", sid) == 0
    assert await changes_count(conn, "t", other) == 1
    assert await _session_view(conn, sid) == BASE_ROWS


async def test_commit_is_atomic_when_base_conflicts(conn: Any) -> None:
    executor = await make_cow(conn, T, "t")
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("UPDATE t SET v = 'A' WHERE id = 1")
        await conn.execute("DELETE FROM t WHERE id = 2")
        await conn.execute("INSERT INTO t VALUES (5, 'e', 'clash')")
    before_changes = await fetch(
        conn, f"SELECT _cow_seq, _cow_kind::text, id, v, u FROM {T_CHANGES} ORDER BY _cow_seq"
    )
    # Production moves on: a row takes the UNIQUE value the session also inserted.
    await conn.execute("INSERT INTO t VALUES (6, 'prod', 'clash')")
    base = await fetch(conn, ALL)
    with pytest.raises(asyncpg.UniqueViolationError):
        await ac.commit_cow_session(executor, "t", sid)
    assert await fetch(conn, ALL) == base
    after_changes = await fetch(
        conn, f"SELECT _cow_seq, _cow_kind::text, id, v, u FROM {T_CHANGES} ORDER BY _cow_seq"
    )
    assert after_changes == before_changes
    assert await ac.get_dirty_tables(executor, sid) == ["t"]
    # Inside a caller's transaction, too: the caller's transaction is what fails.
    with pytest.raises(asyncpg.UniqueViolationError):
        async with conn.transaction():
            await ac.commit_cow_session(executor, "t", sid)
    assert await fetch(conn, ALL) == base
    # Fix production, and the same session commits.
    await conn.execute("DELETE FROM t WHERE id = 6")
    await ac.commit_cow_session(executor, "t", sid)
    assert await fetch(conn, ALL) == [
        (1, "A", "u1"),
        (3, "c", "u3"),
        (4, "d", "u4"),
        (5, "e", "clash"),
    ]


PARENT_CHILD = """
CREATE TABLE parent (id int PRIMARY KEY, name text);
CREATE TABLE child (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES parent);
CREATE TABLE grandchild (id int PRIMARY KEY, child_id int REFERENCES child);
INSERT INTO parent VALUES (1, 'one'), (2, 'two');
INSERT INTO child VALUES (10, 1), (20, 2);
"""


async def test_commit_schema_orders_parents_first(conn: Any) -> None:
    # Enable the child first, so that catalog order is not the dependency order.
    executor = await make_cow(conn, PARENT_CHILD, "grandchild", "child", "parent")
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("INSERT INTO parent VALUES (3, 'three')")
        await conn.execute("INSERT INTO child VALUES (30, 3)")
        await conn.execute("INSERT INTO grandchild VALUES (300, 30)")
        await conn.execute("DELETE FROM child WHERE parent_id = 2")
        await conn.execute("DELETE FROM parent WHERE id = 2")
        await conn.execute("UPDATE child SET parent_id = 3 WHERE id = 10")
    async with session(conn, sid, operation_id=None):
        parents = await fetch(conn, "SELECT * FROM parent ORDER BY id")
        children = await fetch(conn, "SELECT * FROM child ORDER BY id")
    assert await ac.get_dirty_tables(executor, sid) == ["child", "grandchild", "parent"]
    order = await ac.commit_cow_session_schema(executor, sid)
    assert order == ["parent", "child", "grandchild"]
    assert await fetch(conn, "SELECT * FROM parent ORDER BY id") == parents
    assert await fetch(conn, "SELECT * FROM child ORDER BY id") == children
    assert await fetch(conn, "SELECT * FROM grandchild") == [(300, 30)]
    assert parents == [(1, "one"), (3, "three")]
    assert await ac.get_dirty_tables(executor, sid) == []
    assert await ac.commit_cow_session_schema(executor, sid) == []


CYCLE = """
CREATE TABLE a (id int PRIMARY KEY, b_id int);
CREATE TABLE b (id int PRIMARY KEY, a_id int REFERENCES a);
ALTER TABLE a ADD CONSTRAINT a_b_fk FOREIGN KEY (b_id) REFERENCES b;
"""


async def _write_cycle(conn: Any, sid: uuid.UUID) -> None:
    async with session(conn, sid):
        await conn.execute("INSERT INTO a VALUES (1, NULL)")
        await conn.execute("INSERT INTO b VALUES (1, 1)")
        await conn.execute("UPDATE a SET b_id = 1 WHERE id = 1")


async def test_fk_cycle_raises_dependency_cycle(conn: Any) -> None:
    executor = await make_cow(conn, CYCLE, "a", "b")
    sid = new_id()
    await _write_cycle(conn, sid)
    with pytest.raises(ac.DependencyCycleError):
        await ac.commit_cow_session_schema(executor, sid)
    assert await fetch(conn, f"SELECT * FROM {base_table('a')}") == []
    assert await fetch(conn, f"SELECT * FROM {base_table('b')}") == []
    assert await ac.get_dirty_tables(executor, sid) == ["a", "b"]
    # Deferring keys that are not DEFERRABLE does not help: the commit fails as a whole.
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await ac.commit_cow_session_schema(executor, sid, defer_fk_constraints=True)
    assert await fetch(conn, f"SELECT * FROM {base_table('a')}") == []
    assert await ac.get_dirty_tables(executor, sid) == ["a", "b"]


async def test_fk_cycle_commits_with_deferred_fks(conn: Any) -> None:
    executor = await make_cow(conn, CYCLE, "a", "b", allow_deferred_fks=True)
    sid = new_id()
    await _write_cycle(conn, sid)
    committed = await ac.commit_cow_session_schema(executor, sid, defer_fk_constraints=True)
    assert sorted(committed) == ["a", "b"]
    assert await fetch(conn, "SELECT * FROM a") == [(1, 1)]
    assert await fetch(conn, "SELECT * FROM b") == [(1, 1)]
    assert await ac.get_dirty_tables(executor, sid) == []
    # The keys are still checked (immediately again after the commit).
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await conn.execute("INSERT INTO b VALUES (2, 99)")


async def test_deferred_fk_constraints_context(conn: Any) -> None:
    executor = await make_cow(conn, CYCLE, "a", "b", allow_deferred_fks=True)
    async with conn.transaction(), ac.deferred_fk_constraints(executor):
        await conn.execute("INSERT INTO a VALUES (1, 1)")  # b 1 does not exist yet
        await conn.execute("INSERT INTO b VALUES (1, 1)")
    assert await fetch(conn, "SELECT * FROM a") == [(1, 1)]
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        async with conn.transaction(), ac.deferred_fk_constraints(executor):
            await conn.execute("INSERT INTO a VALUES (2, 2)")


async def test_get_dirty_tables_and_discard_schema(conn: Any) -> None:
    executor = await make_cow(
        conn,
        "CREATE TABLE x (id int PRIMARY KEY); CREATE TABLE y (id int PRIMARY KEY);"
        "CREATE TABLE z (id int PRIMARY KEY); INSERT INTO z VALUES (1)",
        "x",
        "y",
        "z",
    )
    sid, other = new_id(), new_id()
    assert await ac.get_dirty_tables(executor, sid) == []
    async with session(conn, sid):
        await conn.execute("INSERT INTO x VALUES (1)")
        await conn.execute("DELETE FROM z")
    async with session(conn, other):
        await conn.execute("INSERT INTO y VALUES (1)")
    assert await ac.get_dirty_tables(executor, sid) == ["x", "z"]
    assert await ac.get_dirty_tables(executor, other) == ["y"]
    assert await ac.discard_cow_session_schema(executor, sid) == ["x", "z"]
    assert await ac.get_dirty_tables(executor, sid) == []
    assert await ac.get_dirty_tables(executor, other) == ["y"]
    assert await fetch(conn, "SELECT * FROM z") == [(1,)]
    assert await fetch(conn, "SELECT * FROM x") == []
    assert await ac.discard_cow_session_schema(executor, sid) == []


async def test_session_operations_in_order_of_first_write(conn: Any) -> None:
    executor = await make_cow(conn, T + "; CREATE TABLE w (id int PRIMARY KEY)", "t", "w")
    sid = new_id()
    op1, op2, op3 = uuid.UUID(int=3), uuid.UUID(int=1), uuid.UUID(int=2)
    async with session(conn, sid, op1):
        await conn.execute("UPDATE t SET v = 'x' WHERE id = 1")
    async with session(conn, sid, op2):
        await conn.execute("INSERT INTO w VALUES (1)")
    async with session(conn, sid, op3):
        await conn.execute("INSERT INTO t VALUES (9, 'i', NULL)")
    async with session(conn, sid, op1):
        await conn.execute("INSERT INTO w VALUES (2)")
    assert await ac.get_session_operations(executor, sid) == [op1, op2, op3]
    assert await ac.get_session_operations(executor, new_id()) == []


async def test_operation_dependencies(conn: Any) -> None:
    executor = await make_cow(conn, T, "t")
    sid = new_id()
    op1, op2, op3, op4 = (new_id() for _ in range(4))
    async with session(conn, sid, op1):
        await conn.execute("INSERT INTO t VALUES (10, 'x', NULL)")
    async with session(conn, sid, op2):
        await conn.execute("UPDATE t SET v = 'y' WHERE id = 10")
    async with session(conn, sid, op3):
        await conn.execute("UPDATE t SET v = 'z' WHERE id = 1")  # independent
    async with session(conn, sid, op4):
        await conn.execute("UPDATE t SET v = 'w' WHERE id = 10")
        await conn.execute("UPDATE t SET v = 'ww' WHERE id = 10")  # same op: no self-edge
    deps = await ac.get_operation_dependencies(executor, sid)
    # every earlier writer of the row, in the order of the dependents' first writes
    assert deps == [(op1, op2), (op1, op4), (op2, op4)]


async def test_commit_and_discard_a_subset_of_operations(conn: Any) -> None:
    executor = await make_cow(conn, T, "t")
    sid = new_id()
    op1, op2, op3 = new_id(), new_id(), new_id()
    async with session(conn, sid, op1):
        await conn.execute("INSERT INTO t VALUES (10, 'ten', NULL)")
        await conn.execute("UPDATE t SET v = 'A' WHERE id = 1")
    async with session(conn, sid, op2):
        await conn.execute("INSERT INTO t VALUES (20, 'twenty', NULL)")
    async with session(conn, sid, op3):
        await conn.execute("DELETE FROM t WHERE id = 2")
    await ac.commit_cow_operations(executor, "t", sid, [op1])
    assert await fetch(conn, ALL) == [
        (1, "A", "u1"),
        (2, "b", "u2"),
        (3, "c", "u3"),
        (4, "d", "u4"),
        (10, "ten", None),
    ]
    assert await ac.get_session_operations(executor, sid) == [op2, op3]
    assert await _session_view(conn, sid) == [
        (1, "A", "u1"),
        (3, "c", "u3"),
        (4, "d", "u4"),
        (10, "ten", None),
        (20, "twenty", None),
    ]
    await ac.discard_cow_operations(executor, "t", sid, [op2])
    assert await ac.get_session_operations(executor, sid) == [op3]
    assert await _session_view(conn, sid) == [
        (1, "A", "u1"),
        (3, "c", "u3"),
        (4, "d", "u4"),
        (10, "ten", None),
    ]
    # Empty lists do nothing.
    await ac.commit_cow_operations(executor, "t", sid, [])
    await ac.discard_cow_operations(executor, "t", sid, [])
    assert await ac.get_session_operations(executor, sid) == [op3]
    await ac.commit_cow_operations(executor, "t", sid, [str(op3)])
    assert await fetch(conn, "SELECT id FROM t ORDER BY id") == [(1,), (3,), (4,), (10,)]
    assert await changes_count(conn) == 0


async def test_commit_one_operation_of_a_row_written_twice(conn: Any) -> None:
    """Committing only the earlier operation applies that operation's version of the row."""
    executor = await make_cow(conn, T, "t")
    sid = new_id()
    op1, op2 = new_id(), new_id()
    async with session(conn, sid, op1):
        await conn.execute("UPDATE t SET v = 'first' WHERE id = 1")
    async with session(conn, sid, op2):
        await conn.execute("UPDATE t SET v = 'second' WHERE id = 1")
    await ac.commit_cow_operations(executor, "t", sid, [op1])
    assert await fetch(conn, "SELECT v FROM t WHERE id = 1") == [("first",)]
    assert await _session_view(conn, sid, "SELECT v FROM t WHERE id = 1") == [("second",)]


BAD_IDS = ["not-a-uuid", "", "1' OR '1'='1", 42]


@pytest.mark.parametrize("bad", BAD_IDS)
async def test_bad_session_id_raises_invalid_id(conn: Any, bad: Any) -> None:
    executor = await make_cow(conn, T, "t")
    calls = [
        ac.commit_cow_session(executor, "t", bad),
        ac.discard_cow_session(executor, "t", bad),
        ac.get_dirty_tables(executor, bad),
        ac.commit_cow_session_schema(executor, bad),
        ac.discard_cow_session_schema(executor, bad),
        ac.get_session_operations(executor, bad),
        ac.get_operation_dependencies(executor, bad),
        ac.commit_cow_operations(executor, "t", bad, [new_id()]),
        ac.discard_cow_operations(executor, "t", bad, [new_id()]),
        ac.commit_cow_operations(executor, "t", new_id(), [bad]),
        ac.discard_cow_operations(executor, "t", new_id(), [bad]),
    ]
    for call in calls:
        with pytest.raises(ac.InvalidIdError):
            await call
    assert await fetch(conn, ALL) == BASE_ROWS


async def test_commit_on_table_without_cow(conn: Any) -> None:
    executor = await make_cow(conn, T)
    with pytest.raises(ac.TableNotFoundError):
        await ac.commit_cow_session(executor, "t", new_id())
    with pytest.raises(ac.TableNotFoundError):
        await ac.commit_cow_session(executor, "nope", new_id())


async def _change_table_space(conn: Any) -> tuple[int, int, float]:
    """Bytes of the change table's heap, of its indexes, and its reltuples (-1: unknown)."""
    row = await conn.fetchrow(
        f"SELECT pg_relation_size('{T_CHANGES}'), pg_indexes_size('{T_CHANGES}'), "
        f"reltuples FROM pg_class WHERE oid = '{T_CHANGES}'::regclass"
    )
    return int(row[0]), int(row[1]), float(row[2])


async def test_a_change_table_gives_its_space_back_when_its_sessions_end(
    conn: Any, database: TestDatabase
) -> None:
    """The last commit or discard that empties a change table truncates it: its heap and
    indexes shrink to nothing (vacuum would keep the indexes at their peak size), and the
    planner knows nothing of it rather than that it is empty. A table another transaction
    has open, or a commit inside the caller's transaction, leaves it for a later commit,
    which is not kept waiting."""
    executor = await make_cow(conn, T, "t")
    index_count = await conn.fetchval(
        f"SELECT count(*) FROM pg_index WHERE indrelid = '{T_CHANGES}'::regclass"
    )
    empty_indexes = 8192 * index_count  # a btree with nothing in it: its metapage
    first, second = new_id(), new_id()
    for sid, start in ((first, 100), (second, 20000)):
        async with session(conn, sid):
            await conn.execute(
                "INSERT INTO t SELECT g, 'x', 'n' || g "
                f"FROM generate_series({start}, {start + 4999}) g"
            )
    heap, indexes, _ = await _change_table_space(conn)
    assert heap > 100_000 and indexes > 100_000
    # A reader holds the view (and so the change table) open: the commit neither waits nor
    # truncates a table the other session still fills.
    reader = await asyncpg.connect(database.owner_dsn)
    try:
        await reader.execute(f"BEGIN; SELECT count(*) FROM {cow_view('t')}")
        await ac.commit_cow_session(executor, "t", first)
        assert (await _change_table_space(conn))[0] == heap
        await ac.discard_cow_session(executor, "t", second)
        assert await changes_count(conn) == 0
        assert (await _change_table_space(conn))[0] == heap  # empty, but still in use
        await reader.execute("ROLLBACK")
    finally:
        await reader.close()
    # In the caller's transaction: TRUNCATE's lock would stay until that transaction ends,
    # stopping every reader of the view; the space waits for a commit of its own.
    third = new_id()
    for in_transaction in (True, False):
        async with session(conn, third):
            await conn.execute("UPDATE t SET v = 'y' WHERE id = 1")
        if in_transaction:
            async with conn.transaction():
                await ac.discard_cow_session(executor, "t", third)
            assert (await _change_table_space(conn))[0] == heap
        else:
            await ac.discard_cow_session(executor, "t", third)
    assert await _change_table_space(conn) == (0, empty_indexes, -1.0)
    assert await fetch(conn, "SELECT count(*) FROM t") == [(5004,)]
    # A commit that leaves other sessions' versions keeps the table.
    async with session(conn, first):
        await conn.execute("UPDATE t SET v = 'z' WHERE id = 2")
    async with session(conn, second):
        await conn.execute("UPDATE t SET v = 'w' WHERE id = 3")
    await ac.commit_cow_session(executor, "t", first)
    assert await changes_count(conn, "t", second) == 1
    assert (await _change_table_space(conn))[0] > 0


@pytest.mark.parametrize("action", ["CASCADE", "SET NULL"])
async def test_a_key_change_that_children_follow_commits(conn: Any, action: str) -> None:
    """The stored row moves to its new key in place (keeping its unique value, which the
    new key's version holds too), and the base's own ON UPDATE action rewrites the child, as
    the session's did."""
    executor = await make_cow(
        conn,
        "CREATE TABLE customers (id int PRIMARY KEY, email text UNIQUE);"
        "CREATE TABLE orders (id int PRIMARY KEY,"
        f" customer_id int REFERENCES customers ON UPDATE {action});"
        "INSERT INTO customers VALUES (1, 'a@x'); INSERT INTO orders VALUES (101, 1)",
        "customers",
        "orders",
    )
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("UPDATE customers SET id = 3 WHERE id = 1")
        in_session = await fetch(conn, "SELECT id, customer_id FROM orders")
    await ac.commit_cow_session_schema(executor, sid)
    assert await fetch(conn, "SELECT id, email FROM customers") == [(3, "a@x")]
    assert await fetch(conn, "SELECT id, customer_id FROM orders") == in_session
