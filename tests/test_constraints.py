"""Constraints in a session behave like on the plain table: same SQLSTATE, same statement."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

import agentcow as ac
from tests.helpers import (
    base_table,
    changes_count,
    compare_with_plain,
    ex,
    fetch,
    make_cow,
    new_id,
    session,
)
from tests.postgres_server import ServerInfo

OK = ("ok", [])


def err(state: str) -> tuple[str, str]:
    return ("error", state)


async def test_duplicate_primary_key_on_insert(conn: Any) -> None:
    outcomes = await compare_with_plain(
        conn,
        "CREATE TABLE {p}t (id int PRIMARY KEY, v text)",
        ["t"],
        [
            "INSERT INTO {p}t VALUES (1, 'dup of base')",
            "INSERT INTO {p}t VALUES (2, 'b')",
            "INSERT INTO {p}t VALUES (2, 'dup in session')",
            "INSERT INTO {p}t VALUES (3, 'x'), (3, 'y')",
            "DELETE FROM {p}t WHERE id = 1",
            "INSERT INTO {p}t VALUES (1, 'free again')",
            "INSERT INTO {p}t SELECT id FROM {p}t",
            "SELECT * FROM {p}t",
        ],
        seed=["INSERT INTO {p}t VALUES (1, 'a')"],
    )
    assert [o[0] for o in outcomes[:7]] == ["error", "ok", "error", "error", "ok", "ok", "error"]
    assert outcomes[0] == err("23505")
    assert outcomes[2] == err("23505")
    assert outcomes[3] == err("23505")
    assert outcomes[-1] == ("ok", [(1, "free again"), (2, "b")])


async def test_duplicate_primary_key_via_key_change(conn: Any) -> None:
    outcomes = await compare_with_plain(
        conn,
        "CREATE TABLE {p}t (id int PRIMARY KEY, v text)",
        ["t"],
        [
            "UPDATE {p}t SET id = 2 WHERE id = 1",
            "INSERT INTO {p}t VALUES (5, 'e')",
            "UPDATE {p}t SET id = 5 WHERE id = 2",
            "UPDATE {p}t SET id = 6 WHERE id = 2",
            "UPDATE {p}t SET id = 2 WHERE id = 1",
            "SELECT * FROM {p}t",
        ],
        seed=["INSERT INTO {p}t VALUES (1, 'a'), (2, 'b')"],
    )
    assert outcomes[0] == err("23505")
    assert outcomes[2] == err("23505")
    assert outcomes[3] == OK
    assert outcomes[4] == OK
    assert outcomes[-1] == ("ok", [(2, "a"), (5, "e"), (6, "b")])


async def test_unique_constraint(conn: Any) -> None:
    outcomes = await compare_with_plain(
        conn,
        "CREATE TABLE {p}t (id int PRIMARY KEY, u text UNIQUE, "
        "a int, b int, CONSTRAINT {p}ab UNIQUE (a, b))",
        ["t"],
        [
            "INSERT INTO {p}t (id, u) VALUES (2, 'x')",  # base has x
            "INSERT INTO {p}t (id, u) VALUES (2, 'y')",
            "INSERT INTO {p}t (id, u) VALUES (3, 'y')",  # session has y
            "INSERT INTO {p}t (id, u) VALUES (3, NULL)",
            "INSERT INTO {p}t (id, u) VALUES (4, NULL)",  # NULLs twice are fine
            "UPDATE {p}t SET u = 'x' WHERE id = 3",
            "UPDATE {p}t SET u = 'z' WHERE id = 1",  # frees x
            "UPDATE {p}t SET u = 'x' WHERE id = 3",
            "UPDATE {p}t SET u = u WHERE id = 3",  # same value, same row
            "UPDATE {p}t SET id = 30 WHERE id = 3",  # key change keeps its own value
            "DELETE FROM {p}t WHERE id = 2",
            "INSERT INTO {p}t (id, u) VALUES (5, 'y')",  # y freed by the delete
            "INSERT INTO {p}t (id, a, b) VALUES (6, 1, 1)",
            "INSERT INTO {p}t (id, a, b) VALUES (7, 1, 1)",
            "INSERT INTO {p}t (id, a, b) VALUES (7, 1, NULL)",
            "INSERT INTO {p}t (id, a, b) VALUES (8, 1, NULL)",
            "SELECT id, u, a, b FROM {p}t",
        ],
        seed=["INSERT INTO {p}t (id, u) VALUES (1, 'x')"],
    )
    assert outcomes[0] == err("23505")
    assert outcomes[2] == err("23505")
    assert outcomes[4] == OK
    assert outcomes[5] == err("23505")
    assert outcomes[7] == OK
    assert outcomes[11] == OK
    assert outcomes[13] == err("23505")
    assert outcomes[15] == OK


async def test_unique_violation_with_base_row_changed_in_session(conn: Any) -> None:
    # The session moved a base row's unique value away and another row takes it; then the
    # first row takes it back: conflict with the session's own version, not the base's.
    outcomes = await compare_with_plain(
        conn,
        "CREATE TABLE {p}t (id int PRIMARY KEY, u text UNIQUE)",
        ["t"],
        [
            "UPDATE {p}t SET u = 'moved' WHERE id = 1",
            "UPDATE {p}t SET u = 'x' WHERE id = 2",
            "UPDATE {p}t SET u = 'x' WHERE id = 1",
            "UPDATE {p}t SET u = 'moved' WHERE id = 2",
        ],
        seed=["INSERT INTO {p}t VALUES (1, 'x'), (2, 'w')"],
    )
    assert outcomes == [OK, OK, err("23505"), err("23505")]


async def test_not_null(conn: Any) -> None:
    outcomes = await compare_with_plain(
        conn,
        "CREATE TABLE {p}t (id int PRIMARY KEY, v text NOT NULL)",
        ["t"],
        [
            "INSERT INTO {p}t VALUES (2, NULL)",
            "INSERT INTO {p}t (id) VALUES (2)",
            "UPDATE {p}t SET v = NULL WHERE id = 1",
            "INSERT INTO {p}t VALUES (NULL, 'x')",
            "UPDATE {p}t SET v = 'ok' WHERE id = 1",
            "SELECT * FROM {p}t",
        ],
        seed=["INSERT INTO {p}t VALUES (1, 'a')"],
    )
    assert outcomes[:4] == [err("23502")] * 4
    assert outcomes[-1] == ("ok", [(1, "ok")])


async def test_check_constraint(conn: Any) -> None:
    outcomes = await compare_with_plain(
        conn,
        "CREATE TABLE {p}t (id int PRIMARY KEY, n int CHECK (n > 0), "
        "lo int, hi int, CHECK (lo <= hi))",
        ["t"],
        [
            "INSERT INTO {p}t (id, n) VALUES (2, 0)",
            "INSERT INTO {p}t (id, n) VALUES (2, NULL)",
            "UPDATE {p}t SET n = -1 WHERE id = 1",
            "INSERT INTO {p}t VALUES (3, 1, 5, 4)",
            "UPDATE {p}t SET lo = 10, hi = 1 WHERE id = 1",
            "UPDATE {p}t SET lo = 1, hi = 10 WHERE id = 1",
            "DELETE FROM {p}t WHERE id = 1",
            "SELECT * FROM {p}t",
        ],
        seed=["INSERT INTO {p}t VALUES (1, 5, 0, 0)"],
    )
    assert outcomes[0] == err("23514")
    assert outcomes[1] == OK
    assert outcomes[2] == err("23514")
    assert outcomes[3] == err("23514")
    assert outcomes[4] == err("23514")
    assert outcomes[-1] == ("ok", [(2, None, None, None)])


async def test_domain_check(conn: Any) -> None:
    outcomes = await compare_with_plain(
        conn,
        "DO $$ BEGIN CREATE DOMAIN posint AS int CHECK (VALUE > 0); "
        "EXCEPTION WHEN duplicate_object THEN NULL; END $$;"
        "CREATE TABLE {p}t (id int PRIMARY KEY, d posint, ds posint[])",
        ["t"],
        [
            "INSERT INTO {p}t (id, d) VALUES (2, 0)",
            "UPDATE {p}t SET d = -5 WHERE id = 1",
            "INSERT INTO {p}t (id, d) VALUES (2, 2)",
            "UPDATE {p}t SET d = d + 1 WHERE id = 1",
            "SELECT * FROM {p}t",
        ],
        seed=["INSERT INTO {p}t (id, d) VALUES (1, 1)"],
    )
    assert outcomes[:2] == [err("23514")] * 2
    assert outcomes[-1] == ("ok", [(1, 2, None), (2, 2, None)])


FK_DDL = """
CREATE TABLE {p}parent (id int PRIMARY KEY, code text UNIQUE);
CREATE TABLE {p}child (
    id int PRIMARY KEY,
    parent_id int REFERENCES {p}parent (id) {action}
);
"""
FK_SEED = [
    "INSERT INTO {p}parent VALUES (0, 'zero'), (1, 'one'), (2, 'two')",
    "INSERT INTO {p}child VALUES (10, 1), (11, 1), (20, 2)",
]


def fk_ddl(action: str) -> str:
    return FK_DDL.replace("{action}", action)


async def test_fk_child_with_missing_parent(conn: Any) -> None:
    outcomes = await compare_with_plain(
        conn,
        fk_ddl(""),
        ["parent", "child"],
        [
            "INSERT INTO {p}child VALUES (30, 99)",
            "UPDATE {p}child SET parent_id = 98 WHERE id = 10",
            "INSERT INTO {p}child VALUES (31, NULL)",
            "INSERT INTO {p}parent VALUES (3, 'three')",
            "INSERT INTO {p}child VALUES (30, 3)",  # parent inserted in this session
            "UPDATE {p}child SET parent_id = 3 WHERE id = 10",
            "DELETE FROM {p}child WHERE parent_id = 2",
            "DELETE FROM {p}parent WHERE id = 2",  # no children left in the session
            "INSERT INTO {p}child VALUES (32, 2)",  # parent deleted in the session
            "SELECT * FROM {p}child",
        ],
        seed=FK_SEED,
    )
    assert outcomes[0] == err("23503")
    assert outcomes[1] == err("23503")
    assert outcomes[2:8] == [OK] * 6
    assert outcomes[8] == err("23503")
    assert outcomes[-1] == ("ok", [(10, 3), (11, 1), (30, 3), (31, None)])


@pytest.mark.parametrize("action", ["", "ON DELETE NO ACTION", "ON DELETE RESTRICT"])
async def test_fk_delete_referenced_parent_refused(
    conn: Any, action: str, pg_server: ServerInfo
) -> None:
    # PostgreSQL 18 reports RESTRICT as restrict_violation; older majors as foreign_key_violation
    refused = err("23001" if "RESTRICT" in action and pg_server.major >= 18 else "23503")
    outcomes = await compare_with_plain(
        conn,
        fk_ddl(action + " ON UPDATE RESTRICT" if "RESTRICT" in action else action),
        ["parent", "child"],
        [
            "DELETE FROM {p}parent WHERE id = 1",
            "UPDATE {p}parent SET id = 5 WHERE id = 1",
            "UPDATE {p}parent SET code = 'uno' WHERE id = 1",
            "INSERT INTO {p}child VALUES (12, 0)",
            "DELETE FROM {p}parent WHERE id = 0",
            "DELETE FROM {p}child WHERE id = 12",
            "DELETE FROM {p}parent WHERE id = 0 RETURNING id",
            "SELECT * FROM {p}parent",
        ],
        seed=FK_SEED,
    )
    assert outcomes[0] == refused
    assert outcomes[1] == refused
    assert outcomes[2] == OK
    assert outcomes[4] == refused
    assert outcomes[6] == ("ok", [(0,)])


async def _child_base(conn: Any) -> list[tuple[Any, ...]]:
    return await fetch(conn, f"SELECT * FROM {base_table('child')} ORDER BY id")


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("ON DELETE CASCADE", [(20, 2)]),
        ("ON DELETE SET NULL", [(10, None), (11, None), (20, 2)]),
        ("ON DELETE SET DEFAULT", [(10, 0), (11, 0), (20, 2)]),
    ],
)
async def test_fk_on_delete_actions_apply_in_session(
    conn: Any, action: str, expected: list[tuple[Any, ...]]
) -> None:
    ddl = fk_ddl(action)
    if "DEFAULT" in action:
        ddl = ddl.replace("parent_id int", "parent_id int DEFAULT 0")
    sid = new_id()
    outcomes = await compare_with_plain(
        conn,
        ddl,
        ["parent", "child"],
        ["DELETE FROM {p}parent WHERE id = 1 RETURNING *", "SELECT * FROM {p}child"],
        seed=FK_SEED,
        session_id=sid,
    )
    assert outcomes == [("ok", [(1, "one")]), ("ok", expected)]
    # The base is untouched until commit.
    assert await _child_base(conn) == [(10, 1), (11, 1), (20, 2)]
    assert await ac.commit_cow_session_schema(ex(conn), sid) == ["parent", "child"]
    assert await _child_base(conn) == expected
    assert await fetch(conn, "SELECT id FROM parent ORDER BY id") == [(0,), (2,)]


async def test_fk_on_delete_set_default_without_parent_fails(conn: Any) -> None:
    ddl = fk_ddl("ON DELETE SET DEFAULT").replace("parent_id int", "parent_id int DEFAULT 7")
    outcomes = await compare_with_plain(
        conn, ddl, ["parent", "child"], ["DELETE FROM {p}parent WHERE id = 1"], seed=FK_SEED
    )
    assert outcomes == [err("23503")]


async def test_fk_on_update_cascade(conn: Any) -> None:
    sid = new_id()
    # (code is not UNIQUE here: that would hit the commit-order case of test_commit.py)
    outcomes = await compare_with_plain(
        conn,
        fk_ddl("ON UPDATE CASCADE").replace("code text UNIQUE", "code text"),
        ["parent", "child"],
        [
            "UPDATE {p}parent SET id = 100 WHERE id = 1 RETURNING *",
            "SELECT * FROM {p}child",
            "UPDATE {p}parent SET code = 'deux' WHERE id = 2",
            "SELECT * FROM {p}child",
        ],
        seed=FK_SEED,
        session_id=sid,
    )
    assert outcomes[0] == ("ok", [(100, "one")])
    assert outcomes[1] == ("ok", [(10, 100), (11, 100), (20, 2)])
    assert await _child_base(conn) == [(10, 1), (11, 1), (20, 2)]
    await ac.commit_cow_session_schema(ex(conn), sid)
    assert await _child_base(conn) == [(10, 100), (11, 100), (20, 2)]
    assert await fetch(conn, "SELECT id FROM parent ORDER BY id") == [(0,), (2,), (100,)]


async def test_fk_on_update_cascade_via_unique_column(conn: Any) -> None:
    ddl = """
    CREATE TABLE {p}parent (id int PRIMARY KEY, code text UNIQUE);
    CREATE TABLE {p}child (id int PRIMARY KEY,
        code text REFERENCES {p}parent (code) ON UPDATE CASCADE ON DELETE SET NULL);
    """
    outcomes = await compare_with_plain(
        conn,
        ddl,
        ["parent", "child"],
        [
            "UPDATE {p}parent SET code = 'uno' WHERE id = 1",
            "SELECT * FROM {p}child",
            "DELETE FROM {p}parent WHERE code = 'uno'",
            "SELECT * FROM {p}child",
        ],
        seed=[
            "INSERT INTO {p}parent VALUES (1, 'one'), (2, 'two')",
            "INSERT INTO {p}child VALUES (10, 'one'), (20, 'two')",
        ],
    )
    assert outcomes[1] == ("ok", [(10, "uno"), (20, "two")])
    assert outcomes[3] == ("ok", [(10, None), (20, "two")])


async def test_fk_no_action_on_unique_column_update(conn: Any) -> None:
    ddl = """
    CREATE TABLE {p}parent (id int PRIMARY KEY, code text UNIQUE);
    CREATE TABLE {p}child (id int PRIMARY KEY, code text REFERENCES {p}parent (code));
    """
    outcomes = await compare_with_plain(
        conn,
        ddl,
        ["parent", "child"],
        [
            "UPDATE {p}parent SET code = 'uno' WHERE id = 1",
            "UPDATE {p}parent SET code = 'deux' WHERE id = 2",
            "SELECT * FROM {p}parent",
        ],
        seed=[
            "INSERT INTO {p}parent VALUES (1, 'one'), (2, 'two')",
            "INSERT INTO {p}child VALUES (10, 'one')",
        ],
    )
    assert outcomes[0] == err("23503")
    assert outcomes[1] == OK


DEFERRED_DDL = """
CREATE TABLE parent (id int PRIMARY KEY);
CREATE TABLE child (id int PRIMARY KEY,
    parent_id int REFERENCES parent DEFERRABLE INITIALLY DEFERRED);
CREATE TABLE plain_parent (id int PRIMARY KEY);
CREATE TABLE plain_child (id int PRIMARY KEY,
    parent_id int REFERENCES plain_parent DEFERRABLE INITIALLY DEFERRED);
"""


async def test_deferred_fk_child_before_parent(conn: Any) -> None:
    executor = await make_cow(conn, DEFERRED_DDL, "parent", "child")
    # Plain table: child first, parent later, in one transaction.
    async with conn.transaction():
        await conn.execute("INSERT INTO plain_child VALUES (1, 5)")
        await conn.execute("INSERT INTO plain_parent VALUES (5)")
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("INSERT INTO child VALUES (1, 5)")
        await conn.execute("INSERT INTO parent VALUES (5)")
    async with session(conn, sid):
        assert await fetch(conn, "SELECT * FROM child") == [(1, 5)]
    assert await ac.commit_cow_session_schema(executor, sid) == ["parent", "child"]
    assert await fetch(conn, "SELECT * FROM child") == [(1, 5)]


async def test_deferred_fk_missing_parent_fails_at_commit(conn: Any) -> None:
    await make_cow(conn, DEFERRED_DDL, "parent", "child")
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        async with conn.transaction():
            await conn.execute("INSERT INTO plain_child VALUES (1, 99)")
    sid = new_id()
    tx = conn.transaction()
    await tx.start()
    try:
        await ac.apply_cow_variables(ex(conn), sid, new_id())
        await conn.execute("INSERT INTO child VALUES (1, 99)")  # accepted for now
        assert await fetch(conn, "SELECT * FROM child") == [(1, 99)]
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await tx.commit()
    finally:
        if conn.is_in_transaction():
            await tx.rollback()
    assert await changes_count(conn, "child") == 0
    # SET CONSTRAINTS IMMEDIATE makes it fail at the statement, as on the plain table.
    async with session(conn, sid):
        await conn.execute("SET CONSTRAINTS ALL IMMEDIATE")
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            async with conn.transaction():
                await conn.execute("INSERT INTO child VALUES (2, 98)")


async def test_fk_match_full_mixed_nulls(conn: Any) -> None:
    ddl = """
    CREATE TABLE {p}parent (a int, b int, PRIMARY KEY (a, b));
    CREATE TABLE {p}child (id int PRIMARY KEY, a int, b int,
        FOREIGN KEY (a, b) REFERENCES {p}parent MATCH FULL);
    CREATE TABLE {p}loose (id int PRIMARY KEY, a int, b int,
        FOREIGN KEY (a, b) REFERENCES {p}parent);
    """
    outcomes = await compare_with_plain(
        conn,
        ddl,
        ["parent", "child", "loose"],
        [
            "INSERT INTO {p}child VALUES (1, 1, NULL)",
            "INSERT INTO {p}child VALUES (2, NULL, 1)",
            "INSERT INTO {p}child VALUES (3, NULL, NULL)",
            "INSERT INTO {p}child VALUES (4, 1, 1)",
            "INSERT INTO {p}child VALUES (5, 1, 2)",
            "UPDATE {p}child SET b = NULL WHERE id = 4",
            "INSERT INTO {p}loose VALUES (1, 9, NULL)",  # MATCH SIMPLE: fine
            "INSERT INTO {p}loose VALUES (2, 9, 9)",
            "SELECT * FROM {p}child",
        ],
        seed=["INSERT INTO {p}parent VALUES (1, 1)"],
    )
    assert outcomes[0] == err("23503")
    assert outcomes[1] == err("23503")
    assert outcomes[2] == OK
    assert outcomes[3] == OK
    assert outcomes[4] == err("23503")
    assert outcomes[5] == err("23503")
    assert outcomes[6] == OK
    assert outcomes[7] == err("23503")


async def test_self_referencing_fk(conn: Any) -> None:
    outcomes = await compare_with_plain(
        conn,
        "CREATE TABLE {p}node (id int PRIMARY KEY, up int REFERENCES {p}node ON DELETE CASCADE)",
        ["node"],
        [
            "INSERT INTO {p}node VALUES (3, 2)",
            "INSERT INTO {p}node VALUES (4, 99)",
            "INSERT INTO {p}node VALUES (5, 5)",
            "DELETE FROM {p}node WHERE id = 1",
            "SELECT * FROM {p}node",
        ],
        seed=["INSERT INTO {p}node VALUES (1, NULL)", "INSERT INTO {p}node VALUES (2, 1)"],
    )
    assert outcomes[1] == err("23503")
    assert outcomes[-1] == ("ok", [(5, 5)])


async def test_unique_nulls_not_distinct(conn: Any) -> None:
    outcomes = await compare_with_plain(
        conn,
        "CREATE TABLE {p}t (id int PRIMARY KEY, u text, "
        "CONSTRAINT {p}u UNIQUE NULLS NOT DISTINCT (u))",
        ["t"],
        [
            "INSERT INTO {p}t VALUES (2, NULL)",
            "INSERT INTO {p}t VALUES (3, 'x')",
            "UPDATE {p}t SET u = 'y' WHERE id = 1",
            "INSERT INTO {p}t VALUES (4, NULL)",
        ],
        seed=["INSERT INTO {p}t VALUES (1, NULL)"],
    )
    assert outcomes == [err("23505"), OK, OK, OK]


async def test_cascade_into_table_without_cow_is_refused(conn: Any) -> None:
    executor = await make_cow(
        conn,
        "CREATE TABLE parent (id int PRIMARY KEY);"
        "CREATE TABLE child (id int PRIMARY KEY, p int REFERENCES parent ON DELETE CASCADE);"
        "CREATE TABLE keeper (id int PRIMARY KEY, p int REFERENCES parent);"
        "INSERT INTO parent VALUES (1), (2), (3); INSERT INTO child VALUES (10, 1);"
        "INSERT INTO keeper VALUES (20, 2)",
        "parent",
    )
    async with session(conn, new_id()):
        # Would delete a production row of child: refused.
        with pytest.raises(asyncpg.FeatureNotSupportedError):
            async with conn.transaction():
                await conn.execute("DELETE FROM parent WHERE id = 1")
        # Still referenced from a table without COW.
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            async with conn.transaction():
                await conn.execute("DELETE FROM parent WHERE id = 2")
    assert await fetch(conn, "SELECT * FROM child") == [(10, 1)]
    assert await fetch(conn, "SELECT id FROM parent ORDER BY id") == [(1,), (2,), (3,)]
    assert await ac.get_dirty_tables(executor, new_id()) == []


async def test_unreferenced_parent_deletable_despite_cascade_into_table_without_cow(
    conn: Any,
) -> None:
    """Nothing would cascade: a plain table allows the delete, so should a session."""
    executor = await make_cow(
        conn,
        "CREATE TABLE parent (id int PRIMARY KEY);"
        "CREATE TABLE child (id int PRIMARY KEY, p int REFERENCES parent ON DELETE CASCADE);"
        "INSERT INTO parent VALUES (1), (3); INSERT INTO child VALUES (10, 1)",
        "parent",
    )
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("DELETE FROM parent WHERE id = 3")
        assert await fetch(conn, "SELECT id FROM parent") == [(1,)]
    await ac.commit_cow_session(executor, "parent", sid)
    assert await fetch(conn, "SELECT id FROM parent") == [(1,)]
    assert await fetch(conn, "SELECT * FROM child") == [(10, 1)]


TREE_DDL = """
CREATE TABLE {p}node (id int PRIMARY KEY, parent int REFERENCES {p}node (id) {action});
"""
TREE_SEED = ["INSERT INTO {p}node VALUES (1, NULL), (2, 1), (3, 2), (4, 1)"]


@pytest.mark.parametrize("action", ["", "ON DELETE RESTRICT", "ON UPDATE RESTRICT"])
async def test_self_referencing_keys_are_checked_when_the_statement_ends(
    conn: Any, action: str, pg_server: ServerInfo
) -> None:
    """A statement may remove a parent with its children, or insert a child before its parent,
    as on a plain table: keys that are not deferrable are checked at the end of the statement."""
    refused = err("23001" if "RESTRICT" in action and pg_server.major >= 18 else "23503")
    outcomes = await compare_with_plain(
        conn,
        TREE_DDL.replace("{action}", action),
        ["node"],
        [
            "DELETE FROM {p}node WHERE id IN (2, 3)",
            "INSERT INTO {p}node VALUES (6, 5), (5, 4)",
            "DELETE FROM {p}node WHERE id = 4",
            "DELETE FROM {p}node WHERE id IN (4, 5, 6) RETURNING id",
            "INSERT INTO {p}node VALUES (8, 99)",
            "UPDATE {p}node SET id = 10 WHERE id = 1",
            "SELECT * FROM {p}node ORDER BY id",
        ],
        seed=TREE_SEED,
    )
    assert outcomes[0] == OK
    assert outcomes[1] == OK
    assert outcomes[2] == (refused if "DELETE" in action else err("23503"))
    assert outcomes[3][0] == "ok"
    assert outcomes[4] == err("23503")
    assert outcomes[5] == OK
    assert outcomes[6] == ("ok", [(10, None)])
