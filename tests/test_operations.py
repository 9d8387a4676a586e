"""A session as a list of operations: summaries, dependencies, cherry-picks and previews."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import pytest

import agentcow as ac
from tests.helpers import (
    LAYOUT,
    base_table,
    changes_count,
    changes_table,
    ex,
    fetch,
    kit_schema,
    make_cow,
    new_id,
    outcome,
    session,
)

Pair = tuple[uuid.UUID, uuid.UUID]

T = "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')"
ALL = "SELECT id, v FROM t ORDER BY id"
BASE_ROWS = [(1, "a"), (2, "b"), (3, "c")]


class SpyExecutor:
    """The real executor, recording every statement it is asked to run."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.statements: list[str] = []

    async def execute(self, sql: str) -> list[tuple[Any, ...]]:
        self.statements.append(sql)
        return list(await self.inner.execute(sql))


async def _write(conn: Any, sid: uuid.UUID, *statements: str, op: Any = None) -> uuid.UUID:
    """One operation of the session: ``statements`` in one transaction; returns its id."""
    op = op or new_id()
    async with session(conn, sid, op):
        for statement in statements:
            await conn.execute(statement)
    return op


async def _view(conn: Any, sid: uuid.UUID, sql: str = ALL) -> list[tuple[Any, ...]]:
    """What the session sees (read-only: no operation id)."""
    async with session(conn, sid, operation_id=None):
        return await fetch(conn, sql)


async def _log(conn: Any, table: str) -> list[tuple[Any, ...]]:
    """Every version in a change table, whole, in write order."""
    return await fetch(conn, f"SELECT c::text FROM {changes_table(table)} c ORDER BY _cow_seq")


async def _deps(executor: Any, sid: uuid.UUID) -> set[Pair]:
    deps = await ac.get_operation_dependencies(executor, sid)
    assert len(deps) == len(set(deps)), f"duplicate pairs in {deps}"
    assert all(a != b for a, b in deps), f"self-edge in {deps}"
    return set(deps)


def _same(found: Any, expected: Any) -> bool:
    """Same operations, each once (the order of a returned selection is not specified)."""
    return sorted(found, key=str) == sorted(expected, key=str)


# ---------------------------------------------------------------------------------------
# Summaries
# ---------------------------------------------------------------------------------------


async def test_summaries_count_distinct_rows_per_kind(conn: Any) -> None:
    executor = await make_cow(conn, T + ", (4, 'd')", "t")
    sid = new_id()
    op1 = await _write(
        conn,
        sid,
        "INSERT INTO t VALUES (10, 'x'), (11, 'y')",
        "UPDATE t SET v = 'p' WHERE id = 1",
        "UPDATE t SET v = 'q' WHERE id = 1",  # the same row again: one updated row
        "DELETE FROM t WHERE id = 2",
    )
    op2 = await _write(conn, sid, "UPDATE t SET id = 30 WHERE id = 3")  # a key change
    op3 = await _write(conn, sid, "UPDATE t SET v = 'z' WHERE id = 10")
    await _write(conn, sid, "DELETE FROM t WHERE id = 4", op=op1)  # op1 writes again, last
    summaries = await ac.get_operation_summaries(executor, sid)
    assert [s.operation_id for s in summaries] == [op1, op2, op3]
    s1, s2, s3 = summaries
    assert (s1.tables, s1.inserted, s1.updated, s1.deleted) == (("t",), 2, 1, 2)
    assert (s2.tables, s2.inserted, s2.updated, s2.deleted) == (("t",), 0, 1, 0)
    assert (s3.tables, s3.inserted, s3.updated, s3.deleted) == (("t",), 0, 1, 0)
    assert isinstance(s1, ac.OperationSummary)
    # Positions in the session's write order.
    assert s1.first_write < s2.first_write < s2.last_write < s3.first_write
    assert s3.first_write == s3.last_write < s1.last_write
    # Another session, and an unknown one, are not mixed in.
    other = new_id()
    await _write(conn, other, "UPDATE t SET v = 'o' WHERE id = 1")
    assert await ac.get_operation_summaries(executor, sid) == summaries
    assert await ac.get_operation_summaries(executor, new_id()) == []
    assert await ac.get_operation_dependencies(executor, new_id()) == []


SUMMARY_FK = """
CREATE TABLE p (id int PRIMARY KEY, name text);
CREATE TABLE c (id int PRIMARY KEY, p_id int REFERENCES p ON DELETE CASCADE ON UPDATE CASCADE);
CREATE TABLE w (id int PRIMARY KEY);
INSERT INTO p VALUES (1, 'one'), (2, 'two');
INSERT INTO c VALUES (10, 1), (11, 1), (20, 2);
"""


async def test_summaries_across_tables_count_cascades_in_the_causing_operation(
    conn: Any,
) -> None:
    executor = await make_cow(conn, SUMMARY_FK, "p", "c", "w")
    sid = new_id()
    op1 = await _write(
        conn,
        sid,
        "INSERT INTO p VALUES (3, 'three')",
        "INSERT INTO c VALUES (30, 3)",
        "INSERT INTO w VALUES (1)",
    )
    op2 = await _write(conn, sid, "DELETE FROM p WHERE id = 1")  # cascades to c 10 and 11
    op3 = await _write(conn, sid, "UPDATE c SET p_id = 3 WHERE id = 20")
    op4 = await _write(conn, sid, "UPDATE p SET name = 'TWO' WHERE id = 2")
    op5 = await _write(conn, sid, "UPDATE p SET id = 33 WHERE id = 3")  # cascades to c 20, 30
    assert await _view(conn, sid, "SELECT id, p_id FROM c ORDER BY id") == [(20, 33), (30, 33)]
    summaries = await ac.get_operation_summaries(executor, sid)
    assert [s.operation_id for s in summaries] == [op1, op2, op3, op4, op5]
    got = {s.operation_id: (sorted(s.tables), s.inserted, s.updated, s.deleted) for s in summaries}
    assert got == {
        op1: (["c", "p", "w"], 3, 0, 0),
        op2: (["c", "p"], 0, 0, 3),
        op3: (["c"], 0, 1, 0),
        op4: (["p"], 0, 1, 0),
        op5: (["c", "p"], 0, 3, 0),
    }
    for s in summaries:
        assert s.first_write <= s.last_write
    for earlier, later in itertools.pairwise(summaries):
        assert earlier.last_write < later.first_write


BAD_IDS = ["not-a-uuid", "", "1' OR '1'='1", 42]


@pytest.mark.parametrize("bad", BAD_IDS)
async def test_bad_ids_raise_before_any_sql(conn: Any, bad: Any) -> None:
    await make_cow(conn, T, "t")
    sid = new_id()
    op = await _write(conn, sid, "UPDATE t SET v = 'A' WHERE id = 1")
    spy = SpyExecutor(ex(conn))
    calls = [
        ac.get_operation_summaries(spy, bad),
        ac.get_operation_dependencies(spy, bad),
        ac.commit_cow_operations_schema(spy, bad, [op]),
        ac.commit_cow_operations_schema(spy, sid, [op, bad]),
        ac.discard_cow_operations_schema(spy, bad, [op]),
        ac.discard_cow_operations_schema(spy, sid, [op, bad]),
        ac.commit_cow_operations(spy, "t", bad, [op]),
        ac.commit_cow_operations(spy, "t", sid, [op, bad]),
        ac.discard_cow_operations(spy, "t", bad, [op]),
        ac.discard_cow_operations(spy, "t", sid, [op, bad]),
    ]
    for call in calls:
        with pytest.raises(ac.InvalidIdError):
            await call
        assert spy.statements == []
    assert await fetch(conn, ALL) == BASE_ROWS
    assert await ac.get_session_operations(ex(conn), sid) == [op]


# ---------------------------------------------------------------------------------------
# Dependencies, one kind at a time, each with a control that must give no edge
# ---------------------------------------------------------------------------------------


async def test_same_row_depends_on_every_earlier_writer(conn: Any) -> None:
    executor = await make_cow(conn, T, "t")
    sid = new_id()
    a = await _write(conn, sid, "INSERT INTO t VALUES (10, 'x')")
    b = await _write(conn, sid, "UPDATE t SET v = 'y' WHERE id = 10")
    control = await _write(conn, sid, "UPDATE t SET v = 'A' WHERE id = 1")
    d = await _write(conn, sid, "DELETE FROM t WHERE id = 10")
    e = await _write(
        conn,
        sid,
        "INSERT INTO t VALUES (10, 'again')",
        "UPDATE t SET v = 'again2' WHERE id = 10",  # the same operation twice: no self-edge
    )
    deps = await ac.get_operation_dependencies(executor, sid)
    assert len(deps) == len(set(deps)), f"each pair must be listed once: {deps}"
    # Ordered by the dependent's first write (then by the dependency's).
    assert deps == [(a, b), (a, d), (b, d), (a, e), (b, e), (d, e)]
    assert all(control not in pair for pair in deps)


async def test_key_change_depends_on_both_keys(conn: Any) -> None:
    executor = await make_cow(
        conn,
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a'), (5, 'e')",
        "t",
    )
    sid = new_id()
    a = await _write(conn, sid, "UPDATE t SET id = 2 WHERE id = 1")
    x = await _write(conn, sid, "UPDATE t SET v = 'E' WHERE id = 5")  # control
    b = await _write(conn, sid, "UPDATE t SET v = 'b' WHERE id = 2")  # the moved row
    c = await _write(conn, sid, "INSERT INTO t VALUES (1, 'new')")  # the key a freed
    y = await _write(conn, sid, "INSERT INTO t VALUES (3, 'three')")  # control
    assert await _deps(executor, sid) == {(a, b), (a, c)}
    assert await ac.get_session_operations(executor, sid) == [a, x, b, c, y]


NEW_PARENT = """
CREATE TABLE p (id int PRIMARY KEY, name text);
CREATE TABLE c (id int PRIMARY KEY, p_id int REFERENCES p, note text);
INSERT INTO p VALUES (1, 'one'), (2, 'two');
INSERT INTO c VALUES (10, 2, 'n');
"""


async def test_new_parent(conn: Any) -> None:
    executor = await make_cow(conn, NEW_PARENT, "p", "c")
    sid = new_id()
    a = await _write(conn, sid, "INSERT INTO p VALUES (5, 'five')")
    b = await _write(conn, sid, "INSERT INTO c VALUES (50, 5, 'x')")
    a2 = await _write(conn, sid, "UPDATE p SET name = 'ONE' WHERE id = 1")  # keeps its key
    b2 = await _write(conn, sid, "INSERT INTO c VALUES (51, 1, 'y')")  # no edge to a2
    b3 = await _write(conn, sid, "UPDATE c SET p_id = 5 WHERE id = 10")  # re-pointed to 5
    # Keeps its reference: depends on the row's writer only, not on the parent's creator.
    x = await _write(conn, sid, "UPDATE c SET note = 'z' WHERE id = 50")
    a4 = await _write(conn, sid, "INSERT INTO p VALUES (6, 'six')")  # nobody refers to it
    assert await _deps(executor, sid) == {(a, b), (a, b3), (b, x)}
    assert await ac.get_session_operations(executor, sid) == [a, b, a2, b2, b3, x, a4]


async def test_new_parent_through_a_unique_column(conn: Any) -> None:
    executor = await make_cow(
        conn,
        """
        CREATE TABLE p (id int PRIMARY KEY, code text UNIQUE, name text);
        CREATE TABLE c (id int PRIMARY KEY, p_code text REFERENCES p (code));
        INSERT INTO p VALUES (1, 'a', 'one'), (2, 'b', 'two'), (3, 'c', 'three');
        INSERT INTO c VALUES (3, 'c');
        """,
        "p",
        "c",
    )
    sid = new_id()
    a = await _write(conn, sid, "UPDATE p SET code = 'v' WHERE id = 1")
    b = await _write(conn, sid, "INSERT INTO c VALUES (1, 'v')")
    a2 = await _write(conn, sid, "UPDATE p SET name = 'TWO' WHERE id = 2")  # code kept
    b2 = await _write(conn, sid, "INSERT INTO c VALUES (2, 'b')")
    # And the other way: a referenced value changes once its last reference is gone.
    a3 = await _write(conn, sid, "DELETE FROM c WHERE id = 3")
    b3 = await _write(conn, sid, "UPDATE p SET code = 'cc' WHERE id = 3")
    assert await _deps(executor, sid) == {(a, b), (a3, b3)}
    assert await ac.get_session_operations(executor, sid) == [a, b, a2, b2, a3, b3]


@pytest.mark.parametrize("action", ["NO ACTION", "RESTRICT"])
async def test_freed_parent(conn: Any, action: str) -> None:
    executor = await make_cow(
        conn,
        f"""
        CREATE TABLE p (id int PRIMARY KEY, name text);
        CREATE TABLE c (id int PRIMARY KEY,
                        p_id int REFERENCES p ON DELETE {action} ON UPDATE {action});
        INSERT INTO p VALUES (1, 'one'), (3, 'three'), (6, 'six'), (7, 'seven'), (8, 'eight'),
                             (9, 'nine');
        INSERT INTO c VALUES (10, 1), (11, 1), (70, 7), (80, 8), (90, 9);
        """,
        "p",
        "c",
    )
    sid = new_id()
    # Without the first write, the second one fails (the parent is still referenced).
    async with session(conn, sid):
        assert (await outcome(conn, "DELETE FROM p WHERE id = 7"))[0] == "error"
    a = await _write(conn, sid, "DELETE FROM c WHERE id = 70")  # the only child of 7
    b = await _write(conn, sid, "DELETE FROM p WHERE id = 7")
    a2 = await _write(conn, sid, "UPDATE c SET p_id = 1 WHERE id = 80")  # re-pointed off 8
    b2 = await _write(conn, sid, "DELETE FROM p WHERE id = 8")
    a3 = await _write(conn, sid, "DELETE FROM c WHERE id = 90")
    b3 = await _write(conn, sid, "UPDATE p SET id = 19 WHERE id = 9")  # the value goes away
    # Controls: 1 keeps a child; 6 and 3 never had one.
    d = await _write(conn, sid, "DELETE FROM c WHERE id = 11")
    e = await _write(conn, sid, "DELETE FROM p WHERE id = 6", "DELETE FROM p WHERE id = 3")
    assert await _deps(executor, sid) == {(a, b), (a2, b2), (a3, b3)}
    assert await ac.get_session_operations(executor, sid) == [a, b, a2, b2, a3, b3, d, e]


async def test_unique_value_released_then_taken(conn: Any) -> None:
    executor = await make_cow(
        conn,
        """
        CREATE TABLE u (id int PRIMARY KEY, email text UNIQUE, name text);
        INSERT INTO u VALUES (1, 'x@', 'one'), (2, 'y@', 'two'), (3, 'z@', 'three'),
                             (7, 'k@', 'seven'), (8, 'm@', 'eight');
        """,
        "u",
    )
    sid = new_id()
    # Without the first write, the second one fails.
    async with session(conn, sid):
        assert await outcome(conn, "INSERT INTO u VALUES (4, 'x@', 'four')") == (
            "error",
            "23505",
        )
    a = await _write(conn, sid, "DELETE FROM u WHERE id = 1")
    b = await _write(conn, sid, "INSERT INTO u VALUES (4, 'x@', 'four')")
    a2 = await _write(conn, sid, "UPDATE u SET email = 'w@' WHERE id = 2")
    b2 = await _write(conn, sid, "UPDATE u SET email = 'y@' WHERE id = 3")  # taken by an update
    h = await _write(conn, sid, "INSERT INTO u VALUES (9, 'z@', 'nine')")  # what b2 released
    # Controls: a write that keeps its value; a value released but not taken.
    c = await _write(conn, sid, "UPDATE u SET name = 'SEVEN' WHERE id = 7")
    d = await _write(conn, sid, "INSERT INTO u VALUES (5, 'n@', 'five')")
    f = await _write(conn, sid, "DELETE FROM u WHERE id = 8")
    g = await _write(conn, sid, "INSERT INTO u VALUES (6, 'g@', 'six')")
    assert await _deps(executor, sid) == {(a, b), (a2, b2), (b2, h)}
    assert await ac.get_session_operations(executor, sid) == [a, b, a2, b2, h, c, d, f, g]


@pytest.mark.parametrize(
    ("action", "after"),
    [("CASCADE", [(41, 4)]), ("SET NULL", [(30, None), (41, 4), (60, None)])],
)
async def test_cascade_writes_an_earlier_operations_row(
    conn: Any, action: str, after: list[tuple[Any, ...]]
) -> None:
    executor = await make_cow(
        conn,
        f"""
        CREATE TABLE p (id int PRIMARY KEY);
        CREATE TABLE c (id int PRIMARY KEY, p_id int REFERENCES p ON DELETE {action});
        INSERT INTO p VALUES (3), (4), (6);
        INSERT INTO c VALUES (60, 6);
        """,
        "p",
        "c",
    )
    sid = new_id()
    a = await _write(conn, sid, "INSERT INTO c VALUES (30, 3)")
    b = await _write(conn, sid, "DELETE FROM p WHERE id = 3")  # its cascade writes a's row
    c = await _write(conn, sid, "INSERT INTO c VALUES (41, 4)")  # control
    d = await _write(conn, sid, "DELETE FROM p WHERE id = 6")  # cascades to a base row only
    assert await _view(conn, sid, "SELECT id, p_id FROM c ORDER BY id") == after
    assert await _deps(executor, sid) == {(a, b)}
    assert await ac.get_session_operations(executor, sid) == [a, b, c, d]


# ---------------------------------------------------------------------------------------
# Cherry-picks must be closed under the dependencies
# ---------------------------------------------------------------------------------------


async def _chain(conn: Any, sid: uuid.UUID) -> tuple[uuid.UUID, ...]:
    """a inserts row 10, b and c update it (c depends on a and b); d is independent."""
    a = await _write(conn, sid, "INSERT INTO t VALUES (10, 'x')")
    b = await _write(conn, sid, "UPDATE t SET v = 'y' WHERE id = 10")
    c = await _write(conn, sid, "UPDATE t SET v = 'z' WHERE id = 10")
    d = await _write(conn, sid, "UPDATE t SET v = 'A' WHERE id = 1")
    return a, b, c, d


async def test_commit_schema_refuses_a_selection_missing_dependencies(conn: Any) -> None:
    executor = await make_cow(conn, T, "t")
    sid = new_id()
    a, b, c, d = await _chain(conn, sid)
    log, view = await _log(conn, "t"), await _view(conn, sid)
    assert view == [(1, "A"), (2, "b"), (3, "c"), (10, "z")]

    with pytest.raises(ac.OperationsNotClosedError) as refused:
        await ac.commit_cow_operations_schema(executor, sid, [c])
    assert _same(refused.value.missing, [a, b])
    assert str(a) in str(refused.value) and str(b) in str(refused.value)
    assert str(d) not in str(refused.value)
    with pytest.raises(ac.OperationsNotClosedError) as refused:
        await ac.commit_cow_operations_schema(executor, sid, [b, d], include_dependencies=False)
    assert refused.value.missing == [a]
    assert str(a) in str(refused.value)
    # Nothing moved: base, change log and session view are as before.
    assert await fetch(conn, ALL) == BASE_ROWS
    assert await _log(conn, "t") == log
    assert await _view(conn, sid) == view
    assert await ac.get_session_operations(executor, sid) == [a, b, c, d]

    committed = await ac.commit_cow_operations_schema(executor, sid, [c], include_dependencies=True)
    assert _same(committed, [a, b, c])
    assert await fetch(conn, ALL) == [*BASE_ROWS, (10, "z")]
    assert await ac.get_session_operations(executor, sid) == [d]
    assert await _view(conn, sid) == view
    assert await ac.commit_cow_operations_schema(executor, sid, [d, str(d), d]) == [d]
    assert await fetch(conn, ALL) == view
    assert await changes_count(conn, "t") == 0


async def test_discard_schema_refuses_keeping_dependents(conn: Any) -> None:
    executor = await make_cow(conn, T, "t")
    sid = new_id()
    a, b, c, d = await _chain(conn, sid)
    log, view = await _log(conn, "t"), await _view(conn, sid)

    with pytest.raises(ac.OperationsNotClosedError) as refused:
        await ac.discard_cow_operations_schema(executor, sid, [a])
    assert _same(refused.value.missing, [b, c])
    assert str(b) in str(refused.value) and str(c) in str(refused.value)
    assert str(d) not in str(refused.value)
    with pytest.raises(ac.OperationsNotClosedError) as refused:
        await ac.discard_cow_operations_schema(executor, sid, [b, d], include_dependents=False)
    assert refused.value.missing == [c]
    assert await fetch(conn, ALL) == BASE_ROWS
    assert await _log(conn, "t") == log
    assert await _view(conn, sid) == view

    discarded = await ac.discard_cow_operations_schema(executor, sid, [b], include_dependents=True)
    assert _same(discarded, [b, c])
    assert await ac.get_session_operations(executor, sid) == [a, d]
    assert await _view(conn, sid) == [(1, "A"), (2, "b"), (3, "c"), (10, "x")]
    assert await fetch(conn, ALL) == BASE_ROWS
    # Closed already: nothing is added.
    assert await ac.discard_cow_operations_schema(executor, sid, [a]) == [a]
    assert await _view(conn, sid) == [(1, "A"), (2, "b"), (3, "c")]


async def test_per_table_cherry_picks_are_closed_over_that_table(conn: Any) -> None:
    executor = await make_cow(conn, T + "; CREATE TABLE w (id int PRIMARY KEY, v text)", "t", "w")
    sid = new_id()
    a = await _write(
        conn, sid, "UPDATE t SET v = 'A' WHERE id = 1", "INSERT INTO w VALUES (5, 'five')"
    )
    b = await _write(conn, sid, "UPDATE t SET v = 'B' WHERE id = 1")
    c = await _write(conn, sid, "INSERT INTO w VALUES (6, 'six')")
    d = await _write(conn, sid, "UPDATE w SET v = 'SIX' WHERE id = 6")
    t_log, w_log = await _log(conn, "t"), await _log(conn, "w")

    with pytest.raises(ac.OperationsNotClosedError) as refused:
        await ac.commit_cow_operations(executor, "t", sid, [b])
    assert refused.value.missing == [a]
    assert str(a) in str(refused.value)
    with pytest.raises(ac.OperationsNotClosedError) as refused:
        await ac.discard_cow_operations(executor, "w", sid, [c])
    assert refused.value.missing == [d]
    assert str(d) in str(refused.value)
    assert await fetch(conn, ALL) == BASE_ROWS
    assert await fetch(conn, "SELECT * FROM w") == []
    assert (await _log(conn, "t"), await _log(conn, "w")) == (t_log, w_log)

    # t: b with a, and only their writes to t.
    await ac.commit_cow_operations(executor, "t", sid, [b], include_dependencies=True)
    assert await fetch(conn, ALL) == [(1, "B"), (2, "b"), (3, "c")]
    assert await fetch(conn, "SELECT * FROM w") == []
    assert await ac.get_dirty_tables(executor, sid) == ["w"]
    assert await ac.get_session_operations(executor, sid) == [a, c, d]
    # w: c with d; a's row stays.
    await ac.discard_cow_operations(executor, "w", sid, [c], include_dependents=True)
    assert await _view(conn, sid, "SELECT * FROM w ORDER BY id") == [(5, "five")]
    assert await ac.get_session_operations(executor, sid) == [a]
    await ac.commit_cow_operations(executor, "w", sid, [a])
    assert await fetch(conn, "SELECT * FROM w") == [(5, "five")]
    assert await ac.get_session_operations(executor, sid) == []


async def test_unknown_operation_ids_are_refused(conn: Any) -> None:
    executor = await make_cow(conn, T, "t")
    sid, other = new_id(), new_id()
    a = await _write(conn, sid, "UPDATE t SET v = 'A' WHERE id = 1")
    elsewhere = await _write(conn, other, "UPDATE t SET v = 'O' WHERE id = 2")
    log = await _log(conn, "t")
    for missing in (new_id(), elsewhere):
        with pytest.raises(ac.OperationNotFoundError) as refused:
            await ac.commit_cow_operations_schema(executor, sid, [a, missing])
        assert str(missing) in str(refused.value)
        with pytest.raises(ac.OperationNotFoundError) as refused:
            await ac.discard_cow_operations_schema(executor, sid, [str(missing)])
        assert str(missing) in str(refused.value)
    assert await fetch(conn, ALL) == BASE_ROWS
    assert await _log(conn, "t") == log
    # An empty choice does nothing.
    assert await ac.commit_cow_operations_schema(executor, sid, []) == []
    assert await ac.discard_cow_operations_schema(executor, sid, []) == []
    assert await _log(conn, "t") == log
    # Once committed, the operation is gone from the session.
    assert await ac.commit_cow_operations_schema(executor, sid, [str(a)]) == [a]
    with pytest.raises(ac.OperationNotFoundError):
        await ac.commit_cow_operations_schema(executor, sid, [a])
    with pytest.raises(ac.OperationNotFoundError):
        await ac.discard_cow_operations_schema(executor, sid, [a])
    assert await fetch(conn, ALL) == [(1, "A"), (2, "b"), (3, "c")]
    assert await ac.get_session_operations(executor, other) == [elsewhere]


# ---------------------------------------------------------------------------------------
# The state after committing or discarding some operations
# ---------------------------------------------------------------------------------------


async def test_partial_commit_keeps_the_rest_of_the_session(conn: Any) -> None:
    executor = await make_cow(conn, T, "t")
    sid = new_id()
    op1 = await _write(conn, sid, "UPDATE t SET v = 'A1' WHERE id = 1")
    op2 = await _write(conn, sid, "INSERT INTO t VALUES (9, 'i')")
    op3 = await _write(conn, sid, "UPDATE t SET v = 'I3' WHERE id = 9")
    op4 = await _write(conn, sid, "DELETE FROM t WHERE id = 3")
    assert await _deps(executor, sid) == {(op2, op3)}
    full = await _view(conn, sid)
    assert full == [(1, "A1"), (2, "b"), (9, "I3")]

    assert _same(await ac.commit_cow_operations_schema(executor, sid, [op1, op2]), [op1, op2])
    # The base holds op1 and op2 as they left the rows (op2's version of row 9, not op3's).
    assert await fetch(conn, ALL) == [(1, "A1"), (2, "b"), (3, "c"), (9, "i")]
    assert await _view(conn, sid) == full
    assert await ac.get_session_operations(executor, sid) == [op3, op4]
    assert await ac.get_operation_dependencies(executor, sid) == []

    assert _same(await ac.commit_cow_operations_schema(executor, sid, [op4, op3]), [op3, op4])
    assert await fetch(conn, ALL) == full
    assert await changes_count(conn, "t") == 0


async def test_commit_one_operation_at_a_time(conn: Any) -> None:
    """Each closed step leaves the base as the operations so far left it, while the session
    keeps showing its whole state."""
    executor = await make_cow(
        conn,
        "CREATE TABLE t (id int PRIMARY KEY, v text, u text UNIQUE);"
        "INSERT INTO t VALUES (1, 'a', 'u1'), (2, 'b', 'u2')",
        "t",
    )
    sid = new_id()
    a = await _write(conn, sid, "UPDATE t SET v = 'A' WHERE id = 1")
    b = await _write(conn, sid, "DELETE FROM t WHERE id = 1")
    c = await _write(conn, sid, "INSERT INTO t VALUES (9, 'i', 'u1')")  # b freed u1
    d = await _write(conn, sid, "UPDATE t SET id = 10 WHERE id = 9")
    e = await _write(conn, sid, "UPDATE t SET v = 'B' WHERE id = 2")
    query = "SELECT id, v, u FROM t ORDER BY id"
    full = await _view(conn, sid, query)
    assert full == [(2, "B", "u2"), (10, "i", "u1")]
    steps = [
        ([a, e], [(1, "A", "u1"), (2, "B", "u2")]),
        ([b], [(2, "B", "u2")]),
        ([c], [(2, "B", "u2"), (9, "i", "u1")]),
        ([d], full),
    ]
    for chosen, base in steps:
        assert _same(await ac.commit_cow_operations_schema(executor, sid, chosen), chosen)
        assert await fetch(conn, query) == base
        assert await _view(conn, sid, query) == full
    assert await changes_count(conn, "t") == 0


TWIN = """
CREATE SCHEMA {s};
CREATE TABLE {s}.p (id int PRIMARY KEY, name text);
CREATE TABLE {s}.c (id int PRIMARY KEY, p_id int NOT NULL REFERENCES {s}.p, tag text UNIQUE);
INSERT INTO {s}.p VALUES (1, 'one'), (2, 'two');
INSERT INTO {s}.c VALUES (10, 1, 't10'), (20, 2, 't20');
"""
TWIN_OPS = [
    ["INSERT INTO {s}.p VALUES (3, 'three')", "INSERT INTO {s}.c VALUES (30, 3, 't30')"],
    ["UPDATE {s}.p SET name = 'TWO' WHERE id = 2"],
    ["DELETE FROM {s}.c WHERE id = 10", "INSERT INTO {s}.c VALUES (11, 2, 't10')"],
    ["DELETE FROM {s}.p WHERE id = 1"],
    ["UPDATE {s}.c SET p_id = 3 WHERE id = 20"],
    ["INSERT INTO {s}.p VALUES (4, 'four')", "UPDATE {s}.c SET tag = 't20b' WHERE id = 20"],
]


async def test_commits_in_two_steps_equal_one_commit(conn: Any) -> None:
    """The same operations in two schemas: all at once in one, in two closed steps in the
    other; the bases end equal."""
    executor = await make_cow(conn, TWIN.format(s="one") + TWIN.format(s="two"))
    for schema in ("one", "two"):
        for table in ("c", "p"):  # children first: catalog order is not key order
            await ac.enable_cow(executor, table, schema=schema, layout=LAYOUT)
    sid = new_id()
    ops = [new_id() for _ in TWIN_OPS]
    for op, statements in zip(ops, TWIN_OPS, strict=True):
        async with session(conn, sid, op):
            for schema in ("one", "two"):  # the views (in "one_cow" in the overlay layout)
                for statement in statements:
                    await conn.execute(statement.format(s=kit_schema(schema)))
    op1, op2, op3, op4, op5, op6 = ops
    expected_deps = {(op3, op4), (op1, op5), (op5, op6)}
    counts = [
        (["c", "p"], 2, 0, 0),
        (["p"], 0, 1, 0),
        (["c"], 1, 0, 1),
        (["p"], 0, 0, 1),
        (["c"], 0, 1, 0),
        (["c", "p"], 1, 1, 0),
    ]
    for schema in ("one", "two"):
        assert set(await ac.get_operation_dependencies(executor, sid, schema)) == expected_deps
        summaries = await ac.get_operation_summaries(executor, sid, schema=schema)
        assert [s.operation_id for s in summaries] == ops
        assert [(sorted(s.tables), s.inserted, s.updated, s.deleted) for s in summaries] == counts

    async def state(schema: str) -> tuple[list[tuple[Any, ...]], ...]:
        return (
            await fetch(conn, f"SELECT * FROM {schema}.p ORDER BY id"),
            await fetch(conn, f"SELECT * FROM {schema}.c ORDER BY id"),
        )

    async def session_state(schema: str) -> tuple[list[tuple[Any, ...]], ...]:
        async with session(conn, sid, operation_id=None):
            return await state(kit_schema(schema))

    full = await session_state("one")
    assert full == (
        [(2, "TWO"), (3, "three"), (4, "four")],
        [(11, 2, "t10"), (20, 3, "t20b"), (30, 3, "t30")],
    )
    assert await session_state("two") == full
    assert await ac.commit_cow_session_schema(executor, sid, "one") == ["p", "c"]
    assert await state("one") == full
    assert await ac.get_operation_summaries(executor, sid, schema="one") == []
    assert len(await ac.get_operation_summaries(executor, sid, schema="two")) == len(ops)

    first = await ac.commit_cow_operations_schema(
        executor, sid, [op2, op4], "two", include_dependencies=True
    )
    assert _same(first, [op2, op3, op4])
    assert await state("two") == ([(2, "TWO")], [(11, 2, "t10"), (20, 2, "t20")])
    assert await session_state("two") == full
    assert await ac.get_session_operations(executor, sid, "two") == [op1, op5, op6]
    rest = await ac.commit_cow_operations_schema(
        executor, sid, [op6], "two", include_dependencies=True
    )
    assert _same(rest, [op1, op5, op6])
    assert await state("two") == full == await state("one")
    assert await ac.get_dirty_tables(executor, sid, "two") == []


async def test_schema_cherry_pick_orders_parents_first(conn: Any) -> None:
    executor = await make_cow(
        conn,
        """
        CREATE TABLE parent (id int PRIMARY KEY, name text);
        CREATE TABLE child (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES parent);
        CREATE TABLE grandchild (id int PRIMARY KEY, child_id int REFERENCES child);
        INSERT INTO parent VALUES (1, 'one'), (2, 'two');
        INSERT INTO child VALUES (10, 1), (20, 2);
        """,
        "grandchild",
        "child",
        "parent",
    )
    sid = new_id()
    a = await _write(conn, sid, "INSERT INTO parent VALUES (3, 'three')")
    b = await _write(
        conn, sid, "INSERT INTO child VALUES (30, 3)", "INSERT INTO grandchild VALUES (300, 30)"
    )
    c = await _write(conn, sid, "DELETE FROM child WHERE id = 20")
    d = await _write(conn, sid, "DELETE FROM parent WHERE id = 2")
    e = await _write(conn, sid, "UPDATE parent SET name = 'ONE' WHERE id = 1")
    assert await _deps(executor, sid) == {(a, b), (c, d)}
    with pytest.raises(ac.OperationsNotClosedError) as refused:
        await ac.commit_cow_operations_schema(executor, sid, [b, d])
    assert _same(refused.value.missing, [a, c])
    assert await fetch(conn, f"SELECT * FROM {base_table('parent')} ORDER BY id") == [
        (1, "one"),
        (2, "two"),
    ]

    assert _same(await ac.commit_cow_operations_schema(executor, sid, [d, b, c, a]), [a, b, c, d])
    assert await fetch(conn, "SELECT * FROM parent ORDER BY id") == [(1, "one"), (3, "three")]
    assert await fetch(conn, "SELECT * FROM child ORDER BY id") == [(10, 1), (30, 3)]
    assert await fetch(conn, "SELECT * FROM grandchild") == [(300, 30)]
    assert await ac.get_session_operations(executor, sid) == [e]
    assert await _view(conn, sid, "SELECT * FROM parent ORDER BY id") == [
        (1, "ONE"),
        (3, "three"),
    ]


@pytest.mark.parametrize("per_table", [False, True])
async def test_discarding_an_independent_operation_keeps_the_others(
    conn: Any, per_table: bool
) -> None:
    executor = await make_cow(conn, T, "t")
    sid = new_id()
    op1 = await _write(conn, sid, "UPDATE t SET v = 'A' WHERE id = 1")
    op2 = await _write(conn, sid, "UPDATE t SET v = 'B' WHERE id = 2")
    op3 = await _write(conn, sid, "INSERT INTO t VALUES (9, 'i')")
    op4 = await _write(conn, sid, "UPDATE t SET id = 4 WHERE id = 3")  # a key change
    assert await ac.get_operation_dependencies(executor, sid) == []

    async def discard(op: uuid.UUID) -> None:
        if per_table:
            await ac.discard_cow_operations(executor, "t", sid, [op])
        else:
            assert await ac.discard_cow_operations_schema(executor, sid, [op]) == [op]

    await discard(op2)
    assert await _view(conn, sid) == [(1, "A"), (2, "b"), (4, "c"), (9, "i")]
    await discard(op4)
    assert await _view(conn, sid) == [(1, "A"), (2, "b"), (3, "c"), (9, "i")]
    assert await ac.get_session_operations(executor, sid) == [op1, op3]
    assert await fetch(conn, ALL) == BASE_ROWS
    await ac.commit_cow_session_schema(executor, sid)
    assert await fetch(conn, ALL) == [(1, "A"), (2, "b"), (3, "c"), (9, "i")]


# ---------------------------------------------------------------------------------------
# Preview
# ---------------------------------------------------------------------------------------


async def test_preview_shows_only_the_chosen_operations(conn: Any) -> None:
    executor = await make_cow(conn, T + "; CREATE TABLE w (id int PRIMARY KEY)", "t", "w")
    sid = new_id()
    op1 = await _write(conn, sid, "UPDATE t SET v = 'A' WHERE id = 1", "INSERT INTO w VALUES (1)")
    op2 = await _write(conn, sid, "INSERT INTO t VALUES (9, 'i')")
    op3 = await _write(conn, sid, "UPDATE t SET v = 'I3' WHERE id = 9")
    op4 = await _write(conn, sid, "DELETE FROM t WHERE id = 2")
    full = [(1, "A"), (3, "c"), (9, "I3")]
    async with conn.transaction():
        await ac.apply_cow_variables(executor, sid)
        assert await fetch(conn, ALL) == full
        await ac.set_visible_operations(executor, [op1])
        assert await fetch(conn, ALL) == [(1, "A"), (2, "b"), (3, "c")]
        assert await fetch(conn, "SELECT id FROM w") == [(1,)]
        await ac.set_visible_operations(executor, [op2])
        assert await fetch(conn, ALL) == [(1, "a"), (2, "b"), (3, "c"), (9, "i")]
        assert await fetch(conn, "SELECT id FROM w") == []
        await ac.set_visible_operations(executor, [op2, str(op3)])
        assert await fetch(conn, ALL) == [(1, "a"), (2, "b"), (3, "c"), (9, "I3")]
        assert await fetch(conn, "SELECT v FROM t WHERE id = 9") == [("I3",)]
        await ac.set_visible_operations(executor, None)
        assert await fetch(conn, ALL) == full
    async with conn.transaction():
        await ac.apply_cow_variables(executor, sid, visible_operations=[op1, op4])
        assert await fetch(conn, ALL) == [(1, "A"), (3, "c")]
        assert await fetch(conn, "SELECT v FROM t WHERE id = 2") == []
    # Outside the session nothing changed.
    assert await fetch(conn, ALL) == BASE_ROWS


async def test_writes_are_refused_in_preview(conn: Any) -> None:
    executor = await make_cow(conn, T, "t")
    sid = new_id()
    op1 = await _write(conn, sid, "UPDATE t SET v = 'A' WHERE id = 1")
    log = await _log(conn, "t")
    writes = [
        "INSERT INTO t VALUES (20, 'x')",
        "UPDATE t SET v = 'q' WHERE id = 2",
        "DELETE FROM t WHERE id = 3",
    ]
    async with conn.transaction():
        await ac.apply_cow_variables(executor, sid, new_id(), visible_operations=[op1])
        for statement in writes:
            assert await outcome(conn, statement) == ("error", "25006"), statement
    async with conn.transaction():
        await ac.apply_cow_variables(executor, sid, new_id())
        await ac.set_visible_operations(executor, [op1])
        for statement in writes:
            assert await outcome(conn, statement) == ("error", "25006"), statement
        assert await _log(conn, "t") == log
        # Leaving the preview allows writes again.
        await ac.set_visible_operations(executor, None)
        assert await outcome(conn, writes[0]) == ("ok", [])
    assert await changes_count(conn, "t", sid) == len(log) + 1
    assert await _view(conn, sid) == [(1, "A"), (2, "b"), (3, "c"), (20, "x")]
