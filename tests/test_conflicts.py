"""Conflicts between a session and the base: detection, the fail/overwrite/merge policies,
the listing, cherry-picks, races with direct writers, and hostile identifiers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

import agentcow as ac
from agentcow.adapters.asyncpg import AsyncpgExecutor
from tests.conftest import TestDatabase
from tests.helpers import (
    LAYOUT,
    OVERLAY,
    base_table,
    changes_count,
    changes_table,
    cow_view,
    fetch,
    make_cow,
    new_id,
    qualified,
    session,
)

T = (
    "CREATE TABLE t (id int PRIMARY KEY, v text, n int);"
    "INSERT INTO t VALUES (1, 'a', 10), (2, 'b', 20), (3, 'c', 30), (4, 'd', 40)"
)
ALL = "SELECT id, v, n FROM t ORDER BY id"
T_BASE = base_table("t")
BASE_ALL = f"SELECT id, v, n FROM {T_BASE} ORDER BY id"
BASE_ROWS = [(1, "a", 10), (2, "b", 20), (3, "c", 30), (4, "d", 40)]


def r(id_: int, v: str | None, n: int | None) -> dict[str, Any]:
    """A row of t as the conflicts show it (to_jsonb of the row)."""
    return {"id": id_, "v": v, "n": n}


async def _session_view(conn: Any, sid: uuid.UUID, sql: str = ALL) -> list[tuple[Any, ...]]:
    async with session(conn, sid, operation_id=None):
        return await fetch(conn, sql)


async def _changes(conn: Any, table: str = "t") -> list[tuple[Any, ...]]:
    """The change table as stored, old images included, in write order."""
    return await fetch(
        conn,
        f"SELECT session_id, operation_id, _cow_seq, _cow_kind::text, to_jsonb(c)::text "
        f"FROM {changes_table(table)} c ORDER BY _cow_seq",
    )


async def _base_json(conn: Any, key: int, table: str = T_BASE) -> dict[str, Any] | None:
    text = await conn.fetchval(f"SELECT to_jsonb(b)::text FROM {table} b WHERE id = $1", key)
    return None if text is None else dict(json.loads(text))


async def _session_json(
    conn: Any, sid: uuid.UUID, key: int, table: str = "t"
) -> dict[str, Any] | None:
    async with session(conn, sid, operation_id=None):
        text = await conn.fetchval(f'SELECT to_jsonb(x)::text FROM "{table}" x WHERE id = $1', key)
    return None if text is None else dict(json.loads(text))


async def _four_conflicts(conn: Any) -> tuple[AsyncpgExecutor, uuid.UUID, list[ac.Conflict]]:
    """A session meeting each kind of conflict once, and rows of its own that do not conflict.

    Keys 1 and 2: the session updated them, the base updated / deleted them. Key 5: both
    inserted it. Key 3: the session deleted it, the base updated it. Key 6 (inserted) and
    key 4 (updated) are the session's alone."""
    executor = await make_cow(conn, T, "t")
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("UPDATE t SET v = 's1' WHERE id = 1")
        await conn.execute("UPDATE t SET v = 's2' WHERE id = 2")
        await conn.execute("INSERT INTO t VALUES (5, 's5', 50)")
        await conn.execute("DELETE FROM t WHERE id = 3")
        await conn.execute("INSERT INTO t VALUES (6, 's6', 60)")
        await conn.execute("UPDATE t SET n = 41 WHERE id = 4")
    # The base moves on (no session: production writes, through the view in the rename layout).
    await conn.execute("UPDATE t SET v = 'b1' WHERE id = 1")
    await conn.execute("DELETE FROM t WHERE id = 2")
    await conn.execute("INSERT INTO t VALUES (5, 'b5', 55)")
    await conn.execute("UPDATE t SET v = 'b3' WHERE id = 3")
    expected = [
        ac.Conflict("t", {"id": 1}, r(1, "a", 10), r(1, "b1", 10), r(1, "s1", 10), ("v",), False),
        ac.Conflict("t", {"id": 2}, r(2, "b", 20), None, r(2, "s2", 20), (), False),
        ac.Conflict("t", {"id": 5}, None, r(5, "b5", 55), r(5, "s5", 50), (), False),
        ac.Conflict("t", {"id": 3}, r(3, "c", 30), r(3, "b3", 30), None, (), False),
    ]
    return executor, sid, expected


# ---------------------------------------------------------------------------------------
# 1. Each kind of conflict
# ---------------------------------------------------------------------------------------


async def test_each_conflict_kind_refuses_commit_and_keeps_everything(conn: Any) -> None:
    executor, sid, expected = await _four_conflicts(conn)
    base = await fetch(conn, BASE_ALL)
    assert base == [(1, "b1", 10), (3, "b3", 30), (4, "d", 40), (5, "b5", 55)]
    seen = await _session_view(conn, sid)
    assert seen == [(1, "s1", 10), (2, "s2", 20), (4, "d", 41), (5, "s5", 50), (6, "s6", 60)]
    changes = await _changes(conn)

    with pytest.raises(ac.CommitConflictError) as caught:
        await ac.commit_cow_session(executor, "t", sid)
    error = caught.value
    assert error.sqlstate == "40001"
    assert isinstance(error, ac.CowError)
    assert error.conflicts == expected
    assert [c.kind for c in error.conflicts] == ["updated", "deleted", "inserted", "updated"]
    assert str(error).startswith("nothing committed: 4 row(s)")
    # The images are the real rows: the base's now, the session's as it reads them.
    for conflict in error.conflicts:
        key = conflict.key["id"]
        assert conflict.base_now == await _base_json(conn, key)
        assert conflict.session == await _session_json(conn, sid, key)

    # Nothing committed, nothing forgotten.
    assert await fetch(conn, BASE_ALL) == base
    assert await _session_view(conn, sid) == seen
    assert await _changes(conn) == changes
    assert await ac.get_dirty_tables(executor, sid) == ["t"]

    # The other entry points refuse alike, and the listing says the same.
    with pytest.raises(ac.CommitConflictError) as caught_schema:
        await ac.commit_cow_session_schema(executor, sid)
    assert caught_schema.value.conflicts == expected
    with pytest.raises(ac.CommitConflictError) as caught_ops:
        await ac.commit_cow_operations(executor, "t", sid, None)
    assert caught_ops.value.conflicts == expected
    ops = await ac.get_session_operations(executor, sid)
    with pytest.raises(ac.CommitConflictError) as caught_ops_schema:
        await ac.commit_cow_operations_schema(executor, sid, ops)
    assert caught_ops_schema.value.conflicts == expected
    # Inside a caller's transaction: the error is raised before anything is written.
    with pytest.raises(ac.CommitConflictError):
        async with conn.transaction():
            await ac.commit_cow_session(executor, "t", sid)
    assert await ac.get_cow_conflicts(executor, sid) == expected
    assert await fetch(conn, BASE_ALL) == base
    assert await _changes(conn) == changes

    # Resolve by putting the base back as the session found it: the same session commits.
    await conn.execute("UPDATE t SET v = 'a' WHERE id = 1")
    await conn.execute("INSERT INTO t VALUES (2, 'b', 20)")
    await conn.execute("DELETE FROM t WHERE id = 5")
    await conn.execute("UPDATE t SET v = 'c' WHERE id = 3")
    assert await ac.get_cow_conflicts(executor, sid) == []
    await ac.commit_cow_session(executor, "t", sid)
    assert await fetch(conn, BASE_ALL) == seen
    assert await changes_count(conn, "t", sid) == 0


async def test_conflict_on_session_update_of_base_deleted_row_alone(conn: Any) -> None:
    """One kind at a time: the error names exactly that key."""
    executor = await make_cow(conn, T, "t")
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("UPDATE t SET n = 21 WHERE id = 2")
    await conn.execute("DELETE FROM t WHERE id = 2")
    with pytest.raises(ac.CommitConflictError) as caught:
        await ac.commit_cow_session(executor, "t", sid)
    assert caught.value.conflicts == [
        ac.Conflict("t", {"id": 2}, r(2, "b", 20), None, r(2, "b", 21), (), False)
    ]
    assert caught.value.conflicts[0].kind == "deleted"
    assert await fetch(conn, BASE_ALL) == [(1, "a", 10), (3, "c", 30), (4, "d", 40)]


async def test_baseline_is_the_first_write_not_the_latest(conn: Any) -> None:
    """The baseline is the stored row when the session first wrote the key: later writes of
    the same key in the session do not move it, whoever wrote the base in between."""
    executor = await make_cow(conn, T, "t")
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("UPDATE t SET v = 'first' WHERE id = 1")
    await conn.execute("UPDATE t SET n = 11 WHERE id = 1")
    async with session(conn, sid):
        # the session still reads its own version (n = 10), and writes on top of it
        await conn.execute("UPDATE t SET v = 'second' WHERE id = 1")
    assert await ac.get_cow_conflicts(executor, sid) == [
        ac.Conflict("t", {"id": 1}, r(1, "a", 10), r(1, "a", 11), r(1, "second", 10), (), True)
    ]


async def test_session_that_reverted_its_own_write_still_conflicts(conn: Any) -> None:
    """The session wrote a key and put it back; the base changed it meanwhile. Committing
    would put the old value back over the base's: a conflict (merge keeps the base's)."""
    executor = await make_cow(conn, T, "t")
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("UPDATE t SET v = 'x' WHERE id = 1")
        await conn.execute("UPDATE t SET v = 'a' WHERE id = 1")
    await conn.execute("UPDATE t SET v = 'base' WHERE id = 1")
    expected = [
        ac.Conflict("t", {"id": 1}, r(1, "a", 10), r(1, "base", 10), r(1, "a", 10), (), True)
    ]
    assert await ac.get_cow_conflicts(executor, sid) == expected
    with pytest.raises(ac.CommitConflictError) as caught:
        await ac.commit_cow_session(executor, "t", sid)
    assert caught.value.conflicts == expected
    await ac.commit_cow_session(executor, "t", sid, on_conflict="merge")
    assert await fetch(conn, BASE_ALL) == [(1, "base", 10), *BASE_ROWS[1:]]
    assert await changes_count(conn) == 0


# ---------------------------------------------------------------------------------------
# 2. No conflict
# ---------------------------------------------------------------------------------------


async def test_base_changes_to_rows_the_session_never_wrote(conn: Any) -> None:
    executor = await make_cow(conn, T, "t")
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("UPDATE t SET v = 's1' WHERE id = 1")
        await conn.execute("INSERT INTO t VALUES (5, 's5', 50)")
        await conn.execute("DELETE FROM t WHERE id = 4")
    await conn.execute("UPDATE t SET v = 'b2' WHERE id = 2")
    await conn.execute("DELETE FROM t WHERE id = 3")
    await conn.execute("INSERT INTO t VALUES (7, 'b7', 70)")
    assert await ac.get_cow_conflicts(executor, sid) == []
    await ac.commit_cow_session(executor, "t", sid)
    assert await fetch(conn, BASE_ALL) == [
        (1, "s1", 10),
        (2, "b2", 20),
        (5, "s5", 50),
        (7, "b7", 70),
    ]
    assert await changes_count(conn) == 0


async def test_base_and_session_converged(conn: Any) -> None:
    """Same update, same delete, same insert on both sides: nothing to resolve."""
    executor = await make_cow(conn, T, "t")
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("UPDATE t SET v = 'same' WHERE id = 1")
        await conn.execute("DELETE FROM t WHERE id = 2")
        await conn.execute("INSERT INTO t VALUES (5, 'e', 50)")
        await conn.execute("UPDATE t SET n = 31 WHERE id = 3")
        await conn.execute("UPDATE t SET n = 30 WHERE id = 3")  # back to the stored row
    await conn.execute("UPDATE t SET v = 'same' WHERE id = 1")
    await conn.execute("DELETE FROM t WHERE id = 2")
    await conn.execute("INSERT INTO t VALUES (5, 'e', 50)")
    assert await ac.get_cow_conflicts(executor, sid) == []
    await ac.commit_cow_session(executor, "t", sid)
    assert await fetch(conn, BASE_ALL) == [
        (1, "same", 10),
        (3, "c", 30),
        (4, "d", 40),
        (5, "e", 50),
    ]
    assert await changes_count(conn) == 0


async def test_base_write_reverted_to_the_identical_row_is_not_a_conflict(conn: Any) -> None:
    """The baseline is compared by value: a base row changed and put back exactly (even
    deleted and inserted again) is the row the session started from."""
    executor = await make_cow(conn, T, "t")
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("UPDATE t SET v = 's1' WHERE id = 1")
        await conn.execute("UPDATE t SET v = 's2' WHERE id = 2")
        await conn.execute("INSERT INTO t VALUES (5, 's5', 50)")
    await conn.execute("UPDATE t SET v = 'other' WHERE id = 1")
    await conn.execute("UPDATE t SET v = 'a' WHERE id = 1")
    await conn.execute("DELETE FROM t WHERE id = 2")
    await conn.execute("INSERT INTO t VALUES (2, 'b', 20)")
    await conn.execute("INSERT INTO t VALUES (5, 'b5', 55)")
    await conn.execute("DELETE FROM t WHERE id = 5")
    assert await ac.get_cow_conflicts(executor, sid) == []
    await ac.commit_cow_session(executor, "t", sid)
    assert await fetch(conn, BASE_ALL) == [
        (1, "s1", 10),
        (2, "s2", 20),
        (3, "c", 30),
        (4, "d", 40),
        (5, "s5", 50),
    ]


async def test_null_where_the_baseline_had_a_value_is_a_conflict(conn: Any) -> None:
    """A base column set to NULL and back is no conflict; left NULL it is one."""
    executor = await make_cow(conn, T, "t")
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("UPDATE t SET v = 's1' WHERE id = 1")
    await conn.execute("UPDATE t SET n = NULL WHERE id = 1")
    await conn.execute("UPDATE t SET n = 10 WHERE id = 1")
    assert await ac.get_cow_conflicts(executor, sid) == []
    await conn.execute("UPDATE t SET n = NULL WHERE id = 1")
    assert await ac.get_cow_conflicts(executor, sid) == [
        ac.Conflict("t", {"id": 1}, r(1, "a", 10), r(1, "a", None), r(1, "s1", 10), (), True)
    ]


async def test_large_toasted_values_compare_by_value(conn: Any) -> None:
    """A stored row with compressed and out-of-line values is the same row as the session's
    baseline image of it (which holds them inline): no conflict until the base changes it."""
    executor = await make_cow(
        conn,
        "CREATE TABLE big (id int PRIMARY KEY, body text, blob bytea, n int);"
        "INSERT INTO big SELECT 1, repeat('compressible ', 50000),"
        " (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 5000) i)::bytea, 0",
        "big",
    )
    stored = await conn.fetchval(f"SELECT pg_column_size(body) FROM {base_table('big')}")
    assert stored < 100_000  # compressed in the base
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("UPDATE big SET n = 1")
    await conn.execute("UPDATE big SET n = n")  # a new version of the identical row
    assert await ac.get_cow_conflicts(executor, sid) == []
    await conn.execute("UPDATE big SET body = body || '.'")
    [conflict] = await ac.get_cow_conflicts(executor, sid)
    assert conflict.kind == "updated"
    assert conflict.mergeable is True
    assert conflict.base_now is not None and conflict.base_then is not None
    assert conflict.base_now["body"] == conflict.base_then["body"] + "."
    await ac.commit_cow_session(executor, "big", sid, on_conflict="merge")
    assert await fetch(
        conn,
        "SELECT length(body), right(body, 2), n, md5(blob) = md5((SELECT string_agg(md5(i::text),"
        f" '') FROM generate_series(1, 5000) i)::bytea) FROM {base_table('big')}",
    ) == [(650_001, " .", 1, True)]


async def test_table_with_a_dropped_column(conn: Any) -> None:
    executor = await make_cow(
        conn,
        "CREATE TABLE d (id int PRIMARY KEY, gone text, v text, n int);"
        "INSERT INTO d VALUES (1, 'x', 'a', 10), (2, 'y', 'b', 20);"
        "ALTER TABLE d DROP COLUMN gone",
        "d",
    )
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("UPDATE d SET v = 's1' WHERE id = 1")
        await conn.execute("UPDATE d SET v = 'same' WHERE id = 2")
    await conn.execute("UPDATE d SET n = 11 WHERE id = 1")
    await conn.execute("UPDATE d SET v = 'same' WHERE id = 2")  # converged
    assert await ac.get_cow_conflicts(executor, sid) == [
        ac.Conflict("d", {"id": 1}, r(1, "a", 10), r(1, "a", 11), r(1, "s1", 10), (), True)
    ]
    await ac.commit_cow_session(executor, "d", sid, on_conflict="merge")
    assert await fetch(conn, f"SELECT * FROM {base_table('d')} ORDER BY id") == [
        (1, "s1", 11),
        (2, "same", 20),
    ]


# ---------------------------------------------------------------------------------------
# 3. overwrite and merge
# ---------------------------------------------------------------------------------------


async def test_overwrite_applies_the_session_rows(conn: Any) -> None:
    executor, sid, expected = await _four_conflicts(conn)
    seen = await _session_view(conn, sid)
    assert await ac.get_cow_conflicts(executor, sid) == expected
    await ac.commit_cow_session(executor, "t", sid, on_conflict="overwrite")
    assert await fetch(conn, BASE_ALL) == seen
    assert seen == [(1, "s1", 10), (2, "s2", 20), (4, "d", 41), (5, "s5", 50), (6, "s6", 60)]
    assert await changes_count(conn) == 0


async def test_overwrite_schema_wide(conn: Any) -> None:
    executor, sid, _ = await _four_conflicts(conn)
    seen = await _session_view(conn, sid)
    assert await ac.commit_cow_session_schema(executor, sid, on_conflict="overwrite") == ["t"]
    assert await fetch(conn, BASE_ALL) == seen


async def test_merge_takes_both_sides_changes_to_different_columns(conn: Any) -> None:
    executor = await make_cow(conn, T, "t")
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("UPDATE t SET v = 's1' WHERE id = 1")
        await conn.execute("UPDATE t SET n = 22 WHERE id = 2")
        await conn.execute("UPDATE t SET v = 's4' WHERE id = 4")  # conflict-free
        await conn.execute("INSERT INTO t VALUES (6, 's6', 60)")  # conflict-free
        await conn.execute("DELETE FROM t WHERE id = 3")  # conflict-free
    await conn.execute("UPDATE t SET n = 11 WHERE id = 1")
    await conn.execute("UPDATE t SET v = 'b2' WHERE id = 2")
    expected = [
        ac.Conflict("t", {"id": 1}, r(1, "a", 10), r(1, "a", 11), r(1, "s1", 10), (), True),
        ac.Conflict("t", {"id": 2}, r(2, "b", 20), r(2, "b2", 20), r(2, "b", 22), (), True),
    ]
    assert await ac.get_cow_conflicts(executor, sid) == expected
    with pytest.raises(ac.CommitConflictError) as caught:
        await ac.commit_cow_session(executor, "t", sid)
    assert caught.value.conflicts == expected
    await ac.commit_cow_session(executor, "t", sid, on_conflict="merge")
    assert await fetch(conn, BASE_ALL) == [
        (1, "s1", 11),
        (2, "b2", 22),
        (4, "s4", 40),
        (6, "s6", 60),
    ]
    assert await changes_count(conn) == 0


async def test_merge_refuses_a_column_both_changed_differently(conn: Any) -> None:
    executor = await make_cow(conn, T, "t")
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("UPDATE t SET v = 's1', n = 12 WHERE id = 1")  # n clashes
        await conn.execute("UPDATE t SET v = 's2' WHERE id = 2")  # mergeable
        await conn.execute("UPDATE t SET v = 's3' WHERE id = 3")  # base deletes it
        await conn.execute("INSERT INTO t VALUES (6, 's6', 60)")  # conflict-free
    await conn.execute("UPDATE t SET n = 11 WHERE id = 1")
    await conn.execute("UPDATE t SET n = 21 WHERE id = 2")
    await conn.execute("DELETE FROM t WHERE id = 3")
    base = await fetch(conn, BASE_ALL)
    seen = await _session_view(conn, sid)
    changes = await _changes(conn)
    clash = ac.Conflict("t", {"id": 1}, r(1, "a", 10), r(1, "a", 11), r(1, "s1", 12), ("n",), False)
    gone = ac.Conflict("t", {"id": 3}, r(3, "c", 30), None, r(3, "s3", 30), (), False)
    mergeable = ac.Conflict("t", {"id": 2}, r(2, "b", 20), r(2, "b", 21), r(2, "s2", 20), (), True)
    assert await ac.get_cow_conflicts(executor, sid) == [clash, mergeable, gone]
    with pytest.raises(ac.CommitConflictError) as caught:
        await ac.commit_cow_session(executor, "t", sid, on_conflict="merge")
    assert caught.value.sqlstate == "40001"
    assert caught.value.conflicts == [clash, gone]
    assert "cannot be merged" in str(caught.value)
    # Nothing merged nor committed, not even the mergeable or conflict-free rows.
    assert await fetch(conn, BASE_ALL) == base
    assert await _session_view(conn, sid) == seen
    assert await _changes(conn) == changes
    # The same column changed to the same value on both sides is not a clash.
    await conn.execute("UPDATE t SET n = 12 WHERE id = 1")
    await conn.execute("INSERT INTO t VALUES (3, 'c', 30)")
    assert await ac.get_cow_conflicts(executor, sid) == [
        ac.Conflict("t", {"id": 1}, r(1, "a", 10), r(1, "a", 12), r(1, "s1", 12), (), True),
        mergeable,
    ]
    await ac.commit_cow_session(executor, "t", sid, on_conflict="merge")
    assert await fetch(conn, BASE_ALL) == [
        (1, "s1", 12),
        (2, "s2", 21),
        (3, "s3", 30),
        (4, "d", 40),
        (6, "s6", 60),
    ]


async def test_merge_refuses_rows_whose_presence_differs(conn: Any) -> None:
    """Inserted by both (differently), or deleted by the session and updated by the base:
    merge cannot take column values from a side that has no row."""
    executor = await make_cow(conn, T, "t")
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("INSERT INTO t VALUES (5, 's5', 50)")
        await conn.execute("DELETE FROM t WHERE id = 2")
    await conn.execute("INSERT INTO t VALUES (5, 'b5', 50)")
    await conn.execute("UPDATE t SET n = 21 WHERE id = 2")
    expected = [
        ac.Conflict("t", {"id": 5}, None, r(5, "b5", 50), r(5, "s5", 50), (), False),
        ac.Conflict("t", {"id": 2}, r(2, "b", 20), r(2, "b", 21), None, (), False),
    ]
    with pytest.raises(ac.CommitConflictError) as caught:
        await ac.commit_cow_session(executor, "t", sid, on_conflict="merge")
    assert caught.value.conflicts == expected
    assert await fetch(conn, BASE_ALL) == [
        (1, "a", 10),
        (2, "b", 21),
        (3, "c", 30),
        (4, "d", 40),
        (5, "b5", 50),
    ]


JSON_GENERATED = """
CREATE TABLE j (
    id int PRIMARY KEY,
    doc json,
    tags jsonb,
    price numeric NOT NULL,
    qty int NOT NULL,
    total numeric GENERATED ALWAYS AS (price * qty) STORED
);
INSERT INTO j (id, doc, tags, price, qty) VALUES
    (1, '{"a": 1}', '["x"]', 2, 1),
    (2, '{"keep":  "spaces"}', '{"k": 1}', 3, 1);
"""
J_ALL = f"SELECT id, doc::text, tags::text, price, qty, total FROM {base_table('j')} ORDER BY id"


async def test_merge_with_json_and_generated_columns(conn: Any) -> None:
    executor = await make_cow(conn, JSON_GENERATED, "j")
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("""UPDATE j SET qty = 3, doc = '{"a": 2}' WHERE id = 1""")
        await conn.execute("""UPDATE j SET tags = '{"k": 2}' WHERE id = 2""")
    # The base changes other columns: the generated column differs on every side, and json
    # (no equality operator) is compared by its text.
    await conn.execute("""UPDATE j SET price = 2.5, tags = '["y"]' WHERE id = 1""")
    await conn.execute("""UPDATE j SET price = 4 WHERE id = 2""")
    conflicts = await ac.get_cow_conflicts(executor, sid)
    assert conflicts == [
        ac.Conflict(
            "j",
            {"id": 1},
            {"id": 1, "doc": {"a": 1}, "tags": ["x"], "price": 2, "qty": 1, "total": 2},
            {"id": 1, "doc": {"a": 1}, "tags": ["y"], "price": 2.5, "qty": 1, "total": 2.5},
            {"id": 1, "doc": {"a": 2}, "tags": ["x"], "price": 2, "qty": 3, "total": 6},
            (),
            True,
        ),
        ac.Conflict(
            "j",
            {"id": 2},
            {
                "id": 2,
                "doc": {"keep": "spaces"},
                "tags": {"k": 1},
                "price": 3,
                "qty": 1,
                "total": 3,
            },
            {
                "id": 2,
                "doc": {"keep": "spaces"},
                "tags": {"k": 1},
                "price": 4,
                "qty": 1,
                "total": 4,
            },
            {
                "id": 2,
                "doc": {"keep": "spaces"},
                "tags": {"k": 2},
                "price": 3,
                "qty": 1,
                "total": 3,
            },
            (),
            True,
        ),
    ]
    await ac.commit_cow_session(executor, "j", sid, on_conflict="merge")
    assert await fetch(conn, J_ALL) == [
        (1, '{"a": 2}', '["y"]', Decimal("2.5"), 3, Decimal("7.5")),
        (2, '{"keep":  "spaces"}', '{"k": 2}', Decimal("4"), 1, Decimal("4")),
    ]
    assert await changes_count(conn, "j") == 0


async def test_json_and_generated_columns_converged(conn: Any) -> None:
    executor = await make_cow(conn, JSON_GENERATED, "j")
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("""UPDATE j SET qty = 3, doc = '{"a": 2}' WHERE id = 1""")
    await conn.execute("""UPDATE j SET qty = 3, doc = '{"a": 2}' WHERE id = 1""")
    assert await ac.get_cow_conflicts(executor, sid) == []
    await ac.commit_cow_session(executor, "j", sid)
    assert await fetch(
        conn, f"SELECT doc::text, qty, total FROM {base_table('j')} WHERE id = 1"
    ) == [('{"a": 2}', 3, 6)]


async def test_merge_json_same_column_changed_differently(conn: Any) -> None:
    executor = await make_cow(conn, JSON_GENERATED, "j")
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("""UPDATE j SET doc = '{"a": 2}' WHERE id = 1""")
    # Equal as jsonb, different as json text: a different json value.
    await conn.execute("""UPDATE j SET doc = '{"a":2}' WHERE id = 1""")
    with pytest.raises(ac.CommitConflictError) as caught:
        await ac.commit_cow_session(executor, "j", sid, on_conflict="merge")
    [conflict] = caught.value.conflicts
    assert conflict.columns == ("doc",)
    assert conflict.mergeable is False
    assert await fetch(conn, f"SELECT doc::text FROM {base_table('j')} WHERE id = 1") == [
        ('{"a":2}',)
    ]


async def test_merge_that_breaks_a_check_constraint_commits_nothing(conn: Any) -> None:
    """Each side is valid alone, the merged row is not: the commit fails as a whole and the
    session's rows are not left merged."""
    executor = await make_cow(
        conn,
        "CREATE TABLE rng (id int PRIMARY KEY, lo int, hi int, CHECK (lo <= hi));"
        "INSERT INTO rng VALUES (1, 1, 5), (2, 0, 0)",
        "rng",
    )
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("UPDATE rng SET lo = 4 WHERE id = 1")
        await conn.execute("UPDATE rng SET hi = 9 WHERE id = 2")
    await conn.execute("UPDATE rng SET hi = 2 WHERE id = 1")
    changes = await _changes(conn, "rng")
    [conflict] = await ac.get_cow_conflicts(executor, sid)
    assert conflict.mergeable is True
    with pytest.raises(asyncpg.CheckViolationError):
        await ac.commit_cow_session(executor, "rng", sid, on_conflict="merge")
    assert await fetch(conn, f"SELECT * FROM {base_table('rng')} ORDER BY id") == [
        (1, 1, 2),
        (2, 0, 0),
    ]
    assert await _changes(conn, "rng") == changes
    async with session(conn, sid, operation_id=None):
        assert await fetch(conn, "SELECT * FROM rng ORDER BY id") == [(1, 4, 5), (2, 0, 9)]


async def test_conflicts_of_a_row_whose_key_the_session_changed(conn: Any) -> None:
    """The session moves row 1 to key 10: the old key's baseline is the stored row 1, the
    new key's is "no row". The base updates row 1 and inserts a row 10 meanwhile."""
    executor = await make_cow(conn, T, "t")
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("UPDATE t SET id = 10, v = 'moved' WHERE id = 1")
    await conn.execute("UPDATE t SET n = 11 WHERE id = 1")
    await conn.execute("INSERT INTO t VALUES (10, 'b10', 100)")
    expected = [
        ac.Conflict("t", {"id": 1}, r(1, "a", 10), r(1, "a", 11), None, (), False),
        ac.Conflict("t", {"id": 10}, None, r(10, "b10", 100), r(10, "moved", 10), (), False),
    ]
    assert await ac.get_cow_conflicts(executor, sid) == expected
    assert [c.kind for c in expected] == ["updated", "inserted"]
    with pytest.raises(ac.CommitConflictError) as caught:
        await ac.commit_cow_session(executor, "t", sid, on_conflict="merge")
    assert caught.value.conflicts == expected
    await ac.commit_cow_session(executor, "t", sid, on_conflict="overwrite")
    assert await fetch(conn, BASE_ALL) == [*BASE_ROWS[1:], (10, "moved", 10)]


# ---------------------------------------------------------------------------------------
# 4. get_cow_conflicts and the policy argument
# ---------------------------------------------------------------------------------------

TW = T + "; CREATE TABLE w (id int PRIMARY KEY, v text); INSERT INTO w VALUES (1, 'w1'), (2, 'w2')"


async def test_get_cow_conflicts_filters_by_operation_and_table(conn: Any) -> None:
    executor = await make_cow(conn, TW, "t", "w")
    sid = new_id()
    op1, op2, op3 = new_id(), new_id(), new_id()
    async with session(conn, sid, op1):
        await conn.execute("UPDATE t SET v = 'op1' WHERE id = 1")
        await conn.execute("UPDATE w SET v = 'op1' WHERE id = 1")
    async with session(conn, sid, op2):
        await conn.execute("UPDATE t SET v = 'op2' WHERE id = 2")
        await conn.execute("UPDATE t SET n = 11 WHERE id = 1")  # rewrites op1's row
    async with session(conn, sid, op3):
        await conn.execute("UPDATE t SET v = 'op3' WHERE id = 3")  # no conflict
    await conn.execute("UPDATE t SET v = 'base' WHERE id IN (1, 2)")
    await conn.execute("UPDATE w SET v = 'base' WHERE id = 1")

    t1_op1 = ac.Conflict(
        "t", {"id": 1}, r(1, "a", 10), r(1, "base", 10), r(1, "op1", 10), ("v",), False
    )
    t1_op2 = ac.Conflict(
        "t", {"id": 1}, r(1, "a", 10), r(1, "base", 10), r(1, "op1", 11), ("v",), False
    )
    t2 = ac.Conflict(
        "t", {"id": 2}, r(2, "b", 20), r(2, "base", 20), r(2, "op2", 20), ("v",), False
    )
    w1 = ac.Conflict(
        "w",
        {"id": 1},
        {"id": 1, "v": "w1"},
        {"id": 1, "v": "base"},
        {"id": 1, "v": "op1"},
        ("v",),
        False,
    )
    everything = await ac.get_cow_conflicts(executor, sid)
    # by table name, then in the order the session last wrote each key
    assert everything == [t2, t1_op2, w1]
    with pytest.raises(ac.CommitConflictError) as caught:
        await ac.commit_cow_session_schema(executor, sid)
    assert caught.value.conflicts == everything
    # One operation: its own version of each row it wrote.
    assert await ac.get_cow_conflicts(executor, sid, [op1]) == [t1_op1, w1]
    assert await ac.get_cow_conflicts(executor, sid, [str(op2)]) == [t2, t1_op2]
    assert await ac.get_cow_conflicts(executor, sid, [op3]) == []
    assert await ac.get_cow_conflicts(executor, sid, []) == []
    assert await ac.get_cow_conflicts(executor, sid, [op1], table="t") == [t1_op1]
    assert await ac.get_cow_conflicts(executor, sid, table="w") == [w1]
    assert await ac.get_cow_conflicts(executor, new_id()) == []
    with pytest.raises(ac.CommitConflictError) as caught_w:
        await ac.commit_cow_session(executor, "w", sid)
    assert caught_w.value.conflicts == [w1]
    # Cherry-picks meet the conflicts of what they commit.
    with pytest.raises(ac.CommitConflictError) as caught_op1:
        await ac.commit_cow_operations_schema(executor, sid, [op1])
    assert caught_op1.value.conflicts == [t1_op1, w1]
    await ac.commit_cow_operations_schema(executor, sid, [op3])
    assert await fetch(conn, f"SELECT v FROM {T_BASE} WHERE id = 3") == [("op3",)]


async def test_get_cow_conflicts_unknown_table(conn: Any) -> None:
    executor = await make_cow(conn, T + "; CREATE TABLE plain (id int PRIMARY KEY)", "t")
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("UPDATE t SET v = 'x' WHERE id = 1")
    with pytest.raises(ac.TableNotFoundError):
        await ac.get_cow_conflicts(executor, sid, table="nope")
    with pytest.raises(ac.TableNotFoundError):
        await ac.get_cow_conflicts(executor, sid, table="plain")  # exists, not COW
    for internal in ("t_base", "t_changes"):  # what enable made: not COW tables
        with pytest.raises(ac.TableNotFoundError):
            await ac.get_cow_conflicts(executor, sid, table=internal)
    with pytest.raises(ac.InvalidIdError):
        await ac.get_cow_conflicts(executor, "not-a-uuid")
    with pytest.raises(ac.InvalidIdError):
        await ac.get_cow_conflicts(executor, sid, ["1' OR '1'='1"])


class _RecordingExecutor:
    """The asyncpg executor, remembering every statement it was given."""

    def __init__(self, conn: Any) -> None:
        self._inner = AsyncpgExecutor(conn)
        self.statements: list[str] = []

    async def execute(self, sql: str) -> list[tuple[Any, ...]]:
        self.statements.append(sql)
        return await self._inner.execute(sql)


def _commit_calls(
    executor: Any, sid: uuid.UUID, op: uuid.UUID, policy: str
) -> dict[str, Callable[[], Awaitable[Any]]]:
    return {
        "commit_cow_session": lambda: ac.commit_cow_session(executor, "t", sid, on_conflict=policy),
        "commit_cow_operations": lambda: ac.commit_cow_operations(
            executor, "t", sid, [op], on_conflict=policy
        ),
        "commit_cow_session_schema": lambda: ac.commit_cow_session_schema(
            executor, sid, on_conflict=policy
        ),
        "commit_cow_operations_schema": lambda: ac.commit_cow_operations_schema(
            executor, sid, [op], on_conflict=policy
        ),
    }


BAD_POLICIES = ["", "FAIL", "Merge", "skip", "overwrite ", "fail; DROP TABLE t"]


@pytest.mark.parametrize("policy", BAD_POLICIES)
async def test_invalid_policy_raises_value_error_and_commits_nothing(
    conn: Any, policy: str
) -> None:
    executor = await make_cow(conn, T, "t")
    sid = new_id()
    async with session(conn, sid) as op:
        await conn.execute("UPDATE t SET v = 'x' WHERE id = 1")
    assert op is not None
    changes = await _changes(conn)
    for call in _commit_calls(executor, sid, op, policy).values():
        with pytest.raises(ValueError, match="on_conflict"):
            await call()
    assert await fetch(conn, BASE_ALL) == BASE_ROWS
    assert await _changes(conn) == changes


@pytest.mark.parametrize("policy", ["bogus", None])
async def test_invalid_policy_is_refused_before_any_sql(conn: Any, policy: Any) -> None:
    await make_cow(conn, T, "t")
    sid = new_id()
    async with session(conn, sid) as op:
        await conn.execute("UPDATE t SET v = 'x' WHERE id = 1")
    assert op is not None
    recorder = _RecordingExecutor(conn)
    statements_run: dict[str, int] = {}
    for name, call in _commit_calls(recorder, sid, op, policy).items():
        recorder.statements.clear()
        with pytest.raises(ValueError, match="on_conflict"):
            await call()
        statements_run[name] = len(recorder.statements)
    assert statements_run == dict.fromkeys(statements_run, 0)
    assert await fetch(conn, BASE_ALL) == BASE_ROWS


# ---------------------------------------------------------------------------------------
# 5. Cherry-picks
# ---------------------------------------------------------------------------------------


async def test_partial_commit_is_the_baseline_of_later_operations(conn: Any) -> None:
    executor = await make_cow(conn, T, "t")
    sid = new_id()
    op1, op2 = new_id(), new_id()
    async with session(conn, sid, op1):
        await conn.execute("UPDATE t SET v = 'op1' WHERE id = 1")
        await conn.execute("UPDATE t SET v = 'op1' WHERE id = 2")
    async with session(conn, sid, op2):
        await conn.execute("UPDATE t SET n = 11 WHERE id = 1")
        await conn.execute("UPDATE t SET n = 21 WHERE id = 2")
    assert await ac.commit_cow_operations_schema(executor, sid, [op1]) == [op1]
    assert await fetch(conn, BASE_ALL) == [
        (1, "op1", 10),
        (2, "op1", 20),
        (3, "c", 30),
        (4, "d", 40),
    ]
    # op1's own commit is not a base change under op2.
    assert await ac.get_cow_conflicts(executor, sid) == []
    assert await ac.get_cow_conflicts(executor, sid, [op2]) == []
    # A base write after it is.
    await conn.execute("UPDATE t SET v = 'base' WHERE id = 2")
    expected = [
        ac.Conflict("t", {"id": 2}, r(2, "op1", 20), r(2, "base", 20), r(2, "op1", 21), (), True)
    ]
    assert await ac.get_cow_conflicts(executor, sid, [op2]) == expected
    with pytest.raises(ac.CommitConflictError) as caught:
        await ac.commit_cow_operations_schema(executor, sid, [op2])
    assert caught.value.conflicts == expected
    assert await fetch(conn, f"SELECT v, n FROM {T_BASE} WHERE id IN (1, 2) ORDER BY id") == [
        ("op1", 10),
        ("base", 20),
    ]
    assert await ac.commit_cow_operations_schema(executor, sid, [op2], on_conflict="merge") == [op2]
    assert await fetch(conn, BASE_ALL) == [
        (1, "op1", 11),
        (2, "base", 21),
        (3, "c", 30),
        (4, "d", 40),
    ]
    assert await changes_count(conn) == 0


async def test_partial_commit_per_table_then_rest_without_conflict(conn: Any) -> None:
    executor = await make_cow(conn, T, "t")
    sid = new_id()
    op1, op2 = new_id(), new_id()
    async with session(conn, sid, op1):
        await conn.execute("INSERT INTO t VALUES (5, 'op1', 50)")
    async with session(conn, sid, op2):
        await conn.execute("UPDATE t SET v = 'op2' WHERE id = 5")
    await ac.commit_cow_operations(executor, "t", sid, [op1])
    assert await ac.get_cow_conflicts(executor, sid) == []
    await ac.commit_cow_operations(executor, "t", sid, [op2])
    assert await fetch(conn, f"SELECT * FROM {T_BASE} WHERE id = 5") == [(5, "op2", 50)]


async def test_partial_commit_then_base_deletes_the_row(conn: Any) -> None:
    executor = await make_cow(conn, T, "t")
    sid = new_id()
    op1, op2 = new_id(), new_id()
    async with session(conn, sid, op1):
        await conn.execute("INSERT INTO t VALUES (5, 'op1', 50)")
    async with session(conn, sid, op2):
        await conn.execute("UPDATE t SET v = 'op2' WHERE id = 5")
    await ac.commit_cow_operations(executor, "t", sid, [op1])
    await conn.execute("DELETE FROM t WHERE id = 5")
    expected = [ac.Conflict("t", {"id": 5}, r(5, "op1", 50), None, r(5, "op2", 50), (), False)]
    with pytest.raises(ac.CommitConflictError) as caught:
        await ac.commit_cow_operations(executor, "t", sid, [op2])
    assert caught.value.conflicts == expected
    assert caught.value.conflicts[0].kind == "deleted"
    assert await fetch(conn, f"SELECT * FROM {T_BASE} WHERE id = 5") == []


# ---------------------------------------------------------------------------------------
# 6. Races with a direct writer on another connection
# ---------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _watcher(database: TestDatabase) -> AsyncIterator[Any]:
    """A third connection, to look at the other two from outside."""
    connection = await asyncpg.connect(database.owner_dsn)
    try:
        yield connection
    finally:
        await connection.close()


async def _wait_for_lock_wait(watcher: Any, pid: int, relation: str = T_BASE) -> None:
    """Return once backend ``pid`` waits for a lock on ``relation`` (seen in pg_locks and
    pg_stat_activity). The bound only keeps a broken engine from hanging the suite."""
    for _ in range(6000):
        waiting = await watcher.fetchval(
            "SELECT EXISTS (SELECT FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.pid = $1 AND NOT l.granted AND l.locktype = 'relation' "
            "AND l.relation = $2::regclass AND a.wait_event_type = 'Lock')",
            pid,
            relation,
        )
        if waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"backend {pid} never waited for a lock on {relation}")


async def _finish(task: asyncio.Task[Any]) -> None:
    """After a failed assertion: let the task end (its lock wait is over by then)."""
    with contextlib.suppress(BaseException):
        await asyncio.wait_for(task, 60)


ROW6 = (6, "s6", 60)
RACES = [
    # (direct write racing the commit, policy, whether the commit fails, the base after)
    ("UPDATE t SET v = 'racer' WHERE id = 1", "fail", True, [(1, "racer", 10), *BASE_ROWS[1:]]),
    ("DELETE FROM t WHERE id = 1", "fail", True, BASE_ROWS[1:]),
    ("UPDATE t SET v = 'racer' WHERE id = 1", "merge", True, [(1, "racer", 10), *BASE_ROWS[1:]]),
    (
        "UPDATE t SET n = 11 WHERE id = 1",
        "merge",
        False,
        [(1, "session", 11), *BASE_ROWS[1:], ROW6],
    ),
    (
        "UPDATE t SET v = 'racer' WHERE id = 1",
        "overwrite",
        False,
        [(1, "session", 10), *BASE_ROWS[1:], ROW6],
    ),
    # a row the session never wrote: the commit waits, then applies over it
    (
        "UPDATE t SET v = 'racer' WHERE id = 2",
        "fail",
        False,
        [(1, "session", 10), (2, "racer", 20), *BASE_ROWS[2:], ROW6],
    ),
]


@pytest.mark.parametrize(("racer", "policy", "fails", "base_after"), RACES)
async def test_direct_write_racing_a_commit(
    conn: Any,
    second_conn: Any,
    database: TestDatabase,
    racer: str,
    policy: str,
    fails: bool,
    base_after: list[tuple[Any, ...]],
) -> None:
    """The racer writes the base before the commit's check and commits while the commit
    waits for its lock: the check under the lock sees it (no lost update)."""
    executor = await make_cow(conn, T, "t")
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("UPDATE t SET v = 'session' WHERE id = 1")
        await conn.execute("INSERT INTO t VALUES (6, 's6', 60)")  # conflict-free
    seen = await _session_view(conn, sid)
    changes = await _changes(conn)

    async with _watcher(database) as watcher:
        racing = second_conn.transaction()
        await racing.start()
        await second_conn.execute(racer)
        # Before the lock: the commit's own pre-check cannot see the uncommitted write.
        assert await ac.get_cow_conflicts(executor, sid) == []
        task = asyncio.create_task(ac.commit_cow_session(executor, "t", sid, on_conflict=policy))
        try:
            await _wait_for_lock_wait(watcher, conn.get_server_pid())
            assert not task.done()
        except BaseException:
            await racing.rollback()
            await _finish(task)
            raise
        await racing.commit()

        if fails:
            with pytest.raises(ac.CommitConflictError) as caught:
                await task
            assert caught.value.sqlstate == "40001"
            # found under the lock by the commit block itself: the database's own 40001
            assert isinstance(caught.value.__cause__, asyncpg.SerializationError)
            assert caught.value.conflicts
            # Nothing of the session applied; the racer's write stands; the session is whole.
            assert await fetch(conn, BASE_ALL) == base_after
            assert await _session_view(conn, sid) == seen
            assert await _changes(conn) == changes
            assert len(await ac.get_cow_conflicts(executor, sid)) == 1
        else:
            await task
            assert await fetch(conn, BASE_ALL) == base_after
            assert await changes_count(conn) == 0


async def test_direct_insert_racing_a_commit_of_the_same_key(
    conn: Any, second_conn: Any, database: TestDatabase
) -> None:
    executor = await make_cow(conn, T, "t")
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("INSERT INTO t VALUES (5, 'session', 50)")
        await conn.execute("UPDATE t SET v = 's4' WHERE id = 4")  # conflict-free
    seen = await _session_view(conn, sid)
    changes = await _changes(conn)

    async with _watcher(database) as watcher:
        racing = second_conn.transaction()
        await racing.start()
        await second_conn.execute("INSERT INTO t VALUES (5, 'racer', 55)")
        task = asyncio.create_task(ac.commit_cow_session(executor, "t", sid))
        try:
            await _wait_for_lock_wait(watcher, conn.get_server_pid())
            assert not task.done()
        except BaseException:
            await racing.rollback()
            await _finish(task)
            raise
        await racing.commit()
        with pytest.raises(ac.CommitConflictError) as caught:
            await task
        assert caught.value.sqlstate == "40001"
        # found under the lock by the commit block itself: the database's own 40001
        assert isinstance(caught.value.__cause__, asyncpg.SerializationError)
        assert caught.value.conflicts

    assert await fetch(conn, BASE_ALL) == [*BASE_ROWS, (5, "racer", 55)]
    assert await _session_view(conn, sid) == seen
    assert await _changes(conn) == changes
    assert await ac.get_cow_conflicts(executor, sid) == [
        ac.Conflict("t", {"id": 5}, None, r(5, "racer", 55), r(5, "session", 50), (), False)
    ]


async def test_direct_write_waits_for_a_commit_in_an_open_transaction(
    conn: Any, second_conn: Any, database: TestDatabase
) -> None:
    """A commit inside the caller's transaction holds its lock until that transaction ends;
    a direct write meanwhile waits, then applies on top of the committed rows."""
    executor = await make_cow(conn, T, "t")
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("UPDATE t SET v = 'session' WHERE id = 1")
        await conn.execute("INSERT INTO t VALUES (5, 's5', 50)")

    async with _watcher(database) as watcher:
        tx = conn.transaction()
        await tx.start()
        await ac.commit_cow_session(executor, "t", sid)
        direct = asyncio.create_task(second_conn.execute("INSERT INTO t VALUES (7, 'direct', 70)"))
        try:
            await _wait_for_lock_wait(watcher, second_conn.get_server_pid())
            assert not direct.done()
            # The commit is not visible outside its transaction yet.
            assert await fetch(watcher, f"SELECT * FROM {T_BASE} WHERE id = 1") == [(1, "a", 10)]
        except BaseException:
            await tx.rollback()
            await _finish(direct)
            raise
        await tx.commit()
        await direct
    assert await fetch(conn, BASE_ALL) == [
        (1, "session", 10),
        *BASE_ROWS[1:],
        (5, "s5", 50),
        (7, "direct", 70),
    ]


async def test_two_sessions_committing_the_same_row(
    conn: Any, second_conn: Any, database: TestDatabase
) -> None:
    """Two sessions wrote row 1 (and both tables). The first commits inside an open
    transaction; the second's commit waits for the locks (same order: no deadlock), then
    finds the first's commit under its row and fails with 40001."""
    executor = await make_cow(conn, TW, "w", "t")
    other_executor = AsyncpgExecutor(second_conn)
    first, second = new_id(), new_id()
    async with session(conn, first):
        await conn.execute("UPDATE t SET v = 'first' WHERE id = 1")
        await conn.execute("UPDATE w SET v = 'first' WHERE id = 2")
    async with session(conn, second):
        await conn.execute("UPDATE w SET v = 'second' WHERE id = 1")
        await conn.execute("UPDATE t SET v = 'second' WHERE id = 1")
    second_changes = await _changes(conn, "t")

    async with _watcher(database) as watcher:
        tx = conn.transaction()
        await tx.start()
        await ac.commit_cow_session_schema(executor, first)
        task = asyncio.create_task(ac.commit_cow_session_schema(other_executor, second))
        try:
            await _wait_for_lock_wait(watcher, second_conn.get_server_pid())
            assert not task.done()
        except BaseException:
            await tx.rollback()
            await _finish(task)
            raise
        await tx.commit()
        with pytest.raises(ac.CommitConflictError) as caught:
            await task
        assert caught.value.sqlstate == "40001"
        # found under the lock by the commit block itself: the database's own 40001
        assert isinstance(caught.value.__cause__, asyncpg.SerializationError)
        assert caught.value.conflicts

    assert await fetch(conn, BASE_ALL) == [(1, "first", 10), *BASE_ROWS[1:]]
    assert await fetch(conn, f"SELECT * FROM {base_table('w')} ORDER BY id") == [
        (1, "w1"),
        (2, "first"),
    ]
    assert [row for row in await _changes(conn, "t") if row[0] == second] == [
        row for row in second_changes if row[0] == second
    ]
    assert await ac.get_cow_conflicts(executor, second) == [
        ac.Conflict(
            "t", {"id": 1}, r(1, "a", 10), r(1, "first", 10), r(1, "second", 10), ("v",), False
        )
    ]


async def test_direct_update_of_a_committed_row_waits_and_keeps_the_commit(
    conn: Any, second_conn: Any, database: TestDatabase
) -> None:
    """The direct writer updates the very row the open commit wrote, another column of it:
    it waits for the commit, then refuses with 40001 (a table would re-read the row; the
    view's trigger cannot re-run the statement), never undoing the commit. In the overlay
    layout production writes the table itself, which re-reads the row the commit wrote."""
    executor = await make_cow(conn, T, "t")
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("UPDATE t SET v = 'session' WHERE id = 1")

    async with _watcher(database) as watcher:
        tx = conn.transaction()
        await tx.start()
        await ac.commit_cow_session(executor, "t", sid)
        direct = asyncio.create_task(second_conn.execute("UPDATE t SET n = n + 1 WHERE id = 1"))
        try:
            await _wait_for_lock_wait(watcher, second_conn.get_server_pid())
            assert not direct.done()
        except BaseException:
            await tx.rollback()
            await _finish(direct)
            raise
        await tx.commit()
        if OVERLAY:
            await direct
        else:
            with pytest.raises(asyncpg.SerializationError):
                await direct
    if not OVERLAY:
        assert await fetch(conn, f"SELECT * FROM {T_BASE} WHERE id = 1") == [(1, "session", 10)]
        await second_conn.execute("UPDATE t SET n = n + 1 WHERE id = 1")  # the retry
    assert await fetch(conn, f"SELECT * FROM {T_BASE} WHERE id = 1") == [(1, "session", 11)]


# ---------------------------------------------------------------------------------------
# 7. Hostile identifiers
# ---------------------------------------------------------------------------------------

SCHEMA = 'we\'ird "s"'
TABLE = 'weird "t"'


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


HOSTILE = f"""
CREATE SCHEMA {_q(SCHEMA)};
CREATE TABLE {_q(SCHEMA)}.{_q(TABLE)} (
    "id x" int,
    "k""q" text,
    "a b" text,
    "_now" int,
    c text,
    f text,
    "key" int,
    "Mixed Case" text UNIQUE,
    PRIMARY KEY ("id x", "k""q")
);
INSERT INTO {_q(SCHEMA)}.{_q(TABLE)} VALUES
    (1, 'o''ne', 'ab1', 10, 'c1', 'f1', 100, 'm1'),
    (2, 'two', 'ab2', 20, 'c2', 'f2', 200, 'm2');
"""
#: What production writes (the view in the rename layout, the table in the overlay layout),
#: what a session writes, and the base.
H_TABLE = qualified(SCHEMA, TABLE)
H_VIEW = cow_view(TABLE, SCHEMA)
H_BASE = base_table(TABLE, SCHEMA)
H_ALL = f'SELECT * FROM {H_BASE} ORDER BY "id x"'


def h(id_: int, k: str, ab: str, now: int, c: str, f: str, key: int, m: str) -> dict[str, Any]:
    return {
        "id x": id_,
        'k"q': k,
        "a b": ab,
        "_now": now,
        "c": c,
        "f": f,
        "key": key,
        "Mixed Case": m,
    }


async def test_conflicts_and_merge_with_hostile_identifiers(conn: Any) -> None:
    executor = await make_cow(conn, HOSTILE)
    await ac.enable_cow(executor, TABLE, schema=SCHEMA, layout=LAYOUT)
    sid = new_id()
    async with session(conn, sid):
        await conn.execute(f"""UPDATE {H_VIEW} SET "a b" = 'session', c = 'sc' WHERE "id x" = 1""")
        await conn.execute(f'UPDATE {H_VIEW} SET "_now" = 21 WHERE "id x" = 2')
    await conn.execute(f'UPDATE {H_TABLE} SET "_now" = 11, f = \'bf\' WHERE "id x" = 1')
    await conn.execute(f'UPDATE {H_TABLE} SET "_now" = 22, "key" = 201 WHERE "id x" = 2')

    one = ac.Conflict(
        TABLE,
        {"id x": 1, 'k"q': "o'ne"},
        h(1, "o'ne", "ab1", 10, "c1", "f1", 100, "m1"),
        h(1, "o'ne", "ab1", 11, "c1", "bf", 100, "m1"),
        h(1, "o'ne", "session", 10, "sc", "f1", 100, "m1"),
        (),
        True,
    )
    two = ac.Conflict(
        TABLE,
        {"id x": 2, 'k"q': "two"},
        h(2, "two", "ab2", 20, "c2", "f2", 200, "m2"),
        h(2, "two", "ab2", 22, "c2", "f2", 201, "m2"),
        h(2, "two", "ab2", 21, "c2", "f2", 200, "m2"),
        ("_now",),
        False,
    )
    assert await ac.get_cow_conflicts(executor, sid, schema=SCHEMA) == [one, two]
    assert await ac.get_cow_conflicts(executor, sid, schema=SCHEMA, table=TABLE) == [one, two]
    with pytest.raises(ac.TableNotFoundError):
        await ac.get_cow_conflicts(executor, sid, schema=SCHEMA, table="weird")
    with pytest.raises(ac.CommitConflictError) as caught:
        await ac.commit_cow_session(executor, TABLE, sid, schema=SCHEMA)
    assert caught.value.conflicts == [one, two]
    with pytest.raises(ac.CommitConflictError) as caught_merge:
        await ac.commit_cow_session_schema(executor, sid, schema=SCHEMA, on_conflict="merge")
    assert caught_merge.value.conflicts == [two]

    # The base takes the session's side of the clash: now it merges.
    await conn.execute(f'UPDATE {H_TABLE} SET "_now" = 21 WHERE "id x" = 2')
    await ac.commit_cow_session(executor, TABLE, sid, schema=SCHEMA, on_conflict="merge")
    assert await fetch(conn, H_ALL) == [
        (1, "o'ne", "session", 11, "sc", "bf", 100, "m1"),
        (2, "two", "ab2", 21, "c2", "f2", 201, "m2"),
    ]
    assert await ac.get_dirty_tables(executor, sid, schema=SCHEMA) == []


async def test_hostile_identifiers_racing_commit(
    conn: Any, second_conn: Any, database: TestDatabase
) -> None:
    """The check under the lock renders the same hostile names (a merge applied there)."""
    executor = await make_cow(conn, HOSTILE)
    await ac.enable_cow(executor, TABLE, schema=SCHEMA, layout=LAYOUT)
    sid = new_id()
    async with session(conn, sid):
        await conn.execute(f"""UPDATE {H_VIEW} SET "a b" = 'session' WHERE "id x" = 1""")
    async with _watcher(database) as watcher:
        racing = second_conn.transaction()
        await racing.start()
        await second_conn.execute(f'UPDATE {H_TABLE} SET "_now" = 11 WHERE "id x" = 1')
        task = asyncio.create_task(
            ac.commit_cow_session(executor, TABLE, sid, schema=SCHEMA, on_conflict="merge")
        )
        try:
            await _wait_for_lock_wait(watcher, conn.get_server_pid(), H_BASE)
            assert not task.done()
        except BaseException:
            await racing.rollback()
            await _finish(task)
            raise
        await racing.commit()
        await task
    assert await fetch(conn, H_ALL) == [
        (1, "o'ne", "session", 11, "c1", "f1", 100, "m1"),
        (2, "two", "ab2", 20, "c2", "f2", 200, "m2"),
    ]


async def _two_writers(
    conn: Any, second_conn: Any, watcher: Any, table: str
) -> list[tuple[Any, ...]]:
    tx = conn.transaction()
    await tx.start()
    await conn.execute(f"UPDATE {table} SET v = 'first' WHERE id = 1")
    second = asyncio.create_task(second_conn.execute(f"UPDATE {table} SET n = n + 1 WHERE id = 1"))
    try:
        state = None
        for _ in range(6000):  # until it waits for the first writer (bounded, see above)
            state = await watcher.fetchval(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1",
                second_conn.get_server_pid(),
            )
            if state == "Lock":
                break
            await asyncio.sleep(0.01)
        assert state == "Lock"
        assert not second.done()
    except BaseException:
        await tx.rollback()
        await _finish(second)
        raise
    await tx.commit()
    try:
        await second
    except asyncpg.SerializationError:
        await second_conn.execute(f"UPDATE {table} SET n = n + 1 WHERE id = 1")  # the retry
    return await fetch(conn, f"SELECT id, v, n FROM {table} WHERE id = 1")


async def test_two_direct_writers_of_one_row_through_the_view(
    conn: Any, second_conn: Any, database: TestDatabase
) -> None:
    """Without any session or commit: two writers update different columns of one row. On a
    plain table the second waits for the first and updates the row the first committed;
    through the view the second waits, then fails with 40001 (it cannot re-read the row),
    and its retry gives the table's result: no write is lost. (In the overlay layout
    production writes the table itself: the plain table's behaviour.)"""
    await make_cow(
        conn,
        T + "; CREATE TABLE plain_t (id int PRIMARY KEY, v text, n int);"
        "INSERT INTO plain_t SELECT * FROM t",
        "t",
    )
    async with _watcher(database) as watcher:
        plain = await _two_writers(conn, second_conn, watcher, "plain_t")
        assert plain == [(1, "first", 11)]
        assert await _two_writers(conn, second_conn, watcher, "t") == plain


async def test_conflict_values_keep_numeric_scale(conn: Any) -> None:
    """Numbers with a fraction come back as Decimal, exactly as stored (35.50, not 35.5)."""
    executor = await make_cow(
        conn,
        "CREATE TABLE money (id int PRIMARY KEY, total numeric(10, 2), rate float8);"
        "INSERT INTO money VALUES (1, 35.50, 0.1)",
        "money",
    )
    sid = new_id()
    async with session(conn, sid):
        await conn.execute("UPDATE money SET total = 40.10 WHERE id = 1")
    await conn.execute("UPDATE money SET total = 36.00 WHERE id = 1")
    [conflict] = await ac.get_cow_conflicts(executor, sid)
    assert conflict.base_then == {"id": 1, "total": Decimal("35.50"), "rate": Decimal("0.1")}
    assert str(conflict.base_now["total"]) == "36.00"  # type: ignore[index]
    assert str(conflict.session["total"]) == "40.10"  # type: ignore[index]
