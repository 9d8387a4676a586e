"""Random sessions for the cherry-pick differential test (``tests/test_cherry_pick.py``).

Same tables as ``tests/differential_programs.py``. Every statement names one row by its key
and writes constants (or a value computed from that row alone), so what a statement does
depends only on the rows it writes and on the keys it checks. Those are exactly what the
dependency graph follows; a statement whose effect depended on rows it merely read (``WHERE
v = 'a'`` over many rows) could change effect when other operations are left out, and no
write-based graph can see that. Serial values are given explicitly for the same reason.
"""

from __future__ import annotations

from hypothesis import strategies as st

from tests.differential_programs import Program, Step, lit

# Small domains, and a seed that fills most of them: operations meet on the same rows.
T_IDS = st.integers(1, 4)
K_VALUES = st.one_of(st.integers(1, 3), st.none())
TEXTS = st.sampled_from(["a", "b", None])
AB = st.integers(1, 2)
C_IDS = st.integers(1, 3)
NODE_IDS = st.integers(1, 3)


@st.composite
def t_statement(draw: st.DrawFn) -> str:
    i = draw(T_IDS)
    # k (UNIQUE, referenced by c.q) twice as often: operations trade its values
    kind = draw(st.sampled_from(["insert", "v", "n", "k", "k", "move", "delete"]))
    if kind == "insert":
        k, v = draw(K_VALUES), draw(TEXTS)
        return f"INSERT INTO {{s}}.t (id, k, v, s) VALUES ({i}, {lit(k)}, {lit(v)}, {i})"
    if kind == "v":
        return f"UPDATE {{s}}.t SET v = {lit(draw(TEXTS))} WHERE id = {i}"
    if kind == "n":
        return f"UPDATE {{s}}.t SET n = n + 1 WHERE id = {i}"
    if kind == "k":
        return f"UPDATE {{s}}.t SET k = {lit(draw(K_VALUES))} WHERE id = {i}"
    if kind == "move":
        return f"UPDATE {{s}}.t SET id = {draw(T_IDS)} WHERE id = {i}"
    return f"DELETE FROM {{s}}.t WHERE id = {i}"


@st.composite
def p_statement(draw: st.DrawFn) -> str:
    a, b = draw(AB), draw(AB)
    kind = draw(st.sampled_from(["insert", "w", "move", "delete"]))
    if kind == "insert":
        return f"INSERT INTO {{s}}.p (a, b, w) VALUES ({a}, {b}, {lit(draw(TEXTS))})"
    if kind == "w":
        return f"UPDATE {{s}}.p SET w = {lit(draw(TEXTS))} WHERE a = {a} AND b = {b}"
    if kind == "move":
        return f"UPDATE {{s}}.p SET b = {draw(AB)} WHERE a = {a} AND b = {b}"
    return f"DELETE FROM {{s}}.p WHERE a = {a} AND b = {b}"


@st.composite
def c_statement(draw: st.DrawFn) -> str:
    i = draw(C_IDS)
    kind = draw(st.sampled_from(["insert", "r", "q", "ab", "delete"]))
    r = draw(st.one_of(T_IDS, st.none()))
    q = draw(K_VALUES)
    ab = draw(st.one_of(st.tuples(AB, AB), st.just((None, None))))
    if kind == "insert":
        return (
            f"INSERT INTO {{s}}.c (id, a, b, r, q) "
            f"VALUES ({i}, {lit(ab[0])}, {lit(ab[1])}, {lit(r)}, {lit(q)})"
        )
    if kind == "r":
        return f"UPDATE {{s}}.c SET r = {lit(r)} WHERE id = {i}"
    if kind == "q":
        return f"UPDATE {{s}}.c SET q = {lit(q)} WHERE id = {i}"
    if kind == "ab":
        return f"UPDATE {{s}}.c SET a = {lit(ab[0])}, b = {lit(ab[1])} WHERE id = {i}"
    return f"DELETE FROM {{s}}.c WHERE id = {i}"


@st.composite
def node_statement(draw: st.DrawFn) -> str:
    i = draw(NODE_IDS)
    parent = draw(st.one_of(NODE_IDS, st.none()))
    kind = draw(st.sampled_from(["insert", "parent", "tag", "move", "delete"]))
    if kind == "insert":
        return f"INSERT INTO {{s}}.node (id, parent, tag) VALUES ({i}, {lit(parent)}, 'n')"
    if kind == "parent":
        return f"UPDATE {{s}}.node SET parent = {lit(parent)} WHERE id = {i}"
    if kind == "tag":
        return f"UPDATE {{s}}.node SET tag = {lit(draw(TEXTS))} WHERE id = {i}"
    if kind == "move":
        return f"UPDATE {{s}}.node SET id = {draw(NODE_IDS)} WHERE id = {i}"
    return f"DELETE FROM {{s}}.node WHERE id = {i}"


@st.composite
def dense_seeds(draw: st.DrawFn) -> list[str]:
    """Most keys of the small domains, with references between the tables (all valid)."""
    t_ids = draw(st.lists(T_IDS, min_size=2, max_size=4, unique=True))
    ks = draw(st.permutations([1, 2, 3, None, None, None]))
    t_rows = [f"({i}, {lit(ks[n])}, {lit(draw(TEXTS))})" for n, i in enumerate(t_ids)]
    p_keys = draw(st.permutations([(1, 1), (1, 2), (2, 1), (2, 2)]))[: draw(st.integers(2, 4))]
    p_rows = [f"({a}, {b}, {lit(draw(TEXTS))})" for a, b in p_keys]
    used_k = [k for k in ks[: len(t_ids)] if k is not None]
    c_rows = []
    for i in draw(st.lists(C_IDS, min_size=1, max_size=4, unique=True)):
        a, b = draw(st.sampled_from([*p_keys, (None, None)]))
        r = draw(st.sampled_from([*t_ids, None]))
        q = draw(st.sampled_from([*used_k, None]))
        c_rows.append(f"({i}, {lit(a)}, {lit(b)}, {lit(r)}, {lit(q)})")
    node_ids = draw(st.lists(NODE_IDS, min_size=2, max_size=3, unique=True))
    node_rows = [
        f"({i}, {lit(draw(st.sampled_from([*node_ids[:n], None])))}, 'n')"
        for n, i in enumerate(node_ids)
    ]
    return [
        f"INSERT INTO {{s}}.t (id, k, v) VALUES {', '.join(t_rows)}",
        f"INSERT INTO {{s}}.p (a, b, w) VALUES {', '.join(p_rows)}",
        f"INSERT INTO {{s}}.c (id, a, b, r, q) VALUES {', '.join(c_rows)}",
        # parents first: without a session the view writes the base row by row
        f"INSERT INTO {{s}}.node (id, parent, tag) VALUES {', '.join(node_rows)}",
    ]


STATEMENTS = st.one_of(t_statement(), t_statement(), p_statement(), c_statement(), node_statement())


@st.composite
def sessions(draw: st.DrawFn, max_steps: int = 16) -> Program:
    """A seed and a session of up to four operations whose statements interleave."""
    seed = draw(dense_seeds())
    n_ops = draw(st.integers(2, 4))
    statements = draw(st.lists(STATEMENTS, min_size=6, max_size=max_steps))
    steps = [Step(sql, op=draw(st.integers(0, n_ops - 1))) for sql in statements]
    return Program(seed=seed, steps=steps, finish="cherry-pick")
