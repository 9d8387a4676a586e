"""Random SQL programs for the differential test (``tests/test_differential.py``).

The same schema exists twice, as ``plain`` (ordinary tables) and ``cow`` (put under
copy-on-write). Every statement is a template with ``{s}`` where the schema goes, so one
program runs word for word against both.

Tables (identical in both schemas)::

    t  id PK, k UNIQUE, v text, n NOT NULL DEFAULT 7 CHECK (n >= 0), d DEFAULT 42, s serial
    p  (a, b) composite PK, w text
    c  id PK, (a, b) -> p ON DELETE CASCADE ON UPDATE CASCADE,
       r -> t(id) ON DELETE SET NULL (ON UPDATE NO ACTION),
       q -> t(k) (a UNIQUE column, not the key) ON DELETE/UPDATE RESTRICT
    node  id PK, parent -> node(id) (NO ACTION: checked when the statement ends)
    log   no key (append-only in sessions): at NOT NULL DEFAULT 0, msg CHECK (msg <> ''),
          n DEFAULT 1; only INSERT and SELECT (a session refuses UPDATE and DELETE of it)

Upserts (``INSERT ... ON CONFLICT``) of t, p, c and log, and MERGE into t, are in the mix too:
a session sends them as ``CowSession`` does (rewritten, ``agentcow.agent.upserts``); MERGE
before PostgreSQL 17 is checked to be refused with the kit's error instead.

The grammar keeps away from statements whose outcome depends on the order in which rows are
visited (a table and a view visit rows in different physical orders): multi-row UPDATEs never
change a key or a UNIQUE column row by row (``k = k + 1`` could fail or not depending on the
order), and at most one assignment of a multi-row UPDATE can fail, so the SQLSTATE does not
depend on which row fails first. Single-row key changes (``SET id = id + 100``) are fine.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from hypothesis import strategies as st

__all__ = [
    "DDL",
    "TABLES",
    "Program",
    "Step",
    "programs",
    "snapshot_sql",
]

#: The schema, created once as ``plain`` and once as ``cow``.
DDL = """
CREATE TABLE {s}.t (
    id int PRIMARY KEY,
    k int UNIQUE,
    v text,
    n int NOT NULL DEFAULT 7 CHECK (n >= 0),
    d int DEFAULT 42,
    s serial
);
CREATE TABLE {s}.p (a int, b int, w text, PRIMARY KEY (a, b));
CREATE TABLE {s}.c (
    id int PRIMARY KEY,
    a int,
    b int,
    r int REFERENCES {s}.t (id) ON DELETE SET NULL,
    q int REFERENCES {s}.t (k) ON DELETE RESTRICT ON UPDATE RESTRICT,
    FOREIGN KEY (a, b) REFERENCES {s}.p ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE TABLE {s}.node (id int PRIMARY KEY, parent int REFERENCES {s}.node (id), tag text);
CREATE TABLE {s}.log (at int NOT NULL DEFAULT 0, msg text CHECK (msg <> ''), n int DEFAULT 1);
"""

#: Table name -> ORDER BY that makes its rows' order total.
TABLES: dict[str, str] = {"t": "id", "p": "a, b", "c": "id", "node": "id", "log": "at, msg, n"}


def snapshot_sql(schema: str, suffix: str = "") -> str:
    """Every row of every table as text, in key order, in one round trip. ``suffix``
    ``"_base"`` reads COW base tables directly."""
    return "SELECT " + ", ".join(
        f"ARRAY(SELECT x::text FROM {schema}.{name}{suffix} x ORDER BY {order}) AS {name}"
        for name, order in TABLES.items()
    )


class _Default:
    """The ``DEFAULT`` keyword as a value."""

    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT = _Default()
Value = int | str | None | _Default


def lit(value: Value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, _Default):
        return "DEFAULT"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(value)


@dataclass(frozen=True)
class Step:
    """One statement. ``sql`` has ``{s}`` for the schema; ``op`` picks the operation id it
    runs under; ``ordered``: the row order of its result is part of the result; ``any_row``:
    it writes rows in the order the scan finds them (a table's and a view's differ), so
    which row an error reports in its DETAIL is not part of the result."""

    sql: str
    op: int = 0
    ordered: bool = False
    any_row: bool = False

    def render(self, schema: str) -> str:
        return self.sql.format(s=schema)

    def label(self) -> str:
        """``INSERT t``, ``UPSERT t``, ``SELECT c``, ``WITH t``...: the verb and the first
        table named."""
        table = self.sql.split("{s}.", 1)[1].split(" ", 1)[0]
        verb = "UPSERT" if " ON CONFLICT " in self.sql else self.sql.split(" ", 1)[0]
        return f"{verb} {table}"


@dataclass(frozen=True)
class Program:
    seed: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    finish: str = "commit"

    def script(self, schema: str = "cow", seed_schema: str | None = None) -> str:
        """The program as SQL, for failure messages: the seed names ``seed_schema`` (else
        ``schema``), the session's statements ``schema``."""
        lines = ["-- seed (no session)"]
        lines += [f"{sql.format(s=seed_schema or schema)};" for sql in self.seed]
        lines.append("-- session")
        lines += [f"{step.render(schema)};  -- operation {step.op}" for step in self.steps]
        lines.append(f"-- then {self.finish} the session")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# Values: small domains, so keys collide often.
# ---------------------------------------------------------------------------------------

T_IDS = st.integers(1, 10)
K_VALUES = st.one_of(st.integers(1, 6), st.none())
V_VALUES = st.sampled_from(["a", "b", "c", None])
N_VALUES = st.sampled_from([0, 1, 3, 5, 8, -1, None, DEFAULT])
D_VALUES = st.sampled_from([0, 1, None, DEFAULT])
AB = st.integers(1, 3)
C_IDS = st.integers(1, 6)


def _maybe_null(strategy: st.SearchStrategy[int], p_null: int = 8) -> st.SearchStrategy[Value]:
    """Mostly ``strategy``, sometimes NULL (about 1 in ``p_null``)."""
    return st.integers(1, p_null).flatmap(lambda i: st.none() if i == 1 else strategy)


RETURNING = st.sampled_from(["", " RETURNING *"])

T_PREDICATES = st.one_of(
    T_IDS.map(lambda i: f"id = {i}"),
    T_IDS.map(lambda i: f"id < {i}"),
    T_IDS.map(lambda i: f"id > {i}"),
    st.integers(1, 6).map(lambda k: f"k = {k}"),
    st.just("k IS NULL"),
    st.just("k IS NOT NULL"),
    st.integers(0, 6).map(lambda n: f"n < {n}"),
    st.sampled_from(["v = 'a'", "v IS NULL", "d IS NULL", "true", "id IN (SELECT r FROM {s}.c)"]),
)

P_PREDICATES = st.one_of(
    AB.map(lambda a: f"a = {a}"),
    st.tuples(AB, AB).map(lambda ab: f"a = {ab[0]} AND b = {ab[1]}"),
    AB.map(lambda b: f"b > {b}"),
    st.sampled_from(["w IS NULL", "w = 'x'", "true"]),
)

C_PREDICATES = st.one_of(
    C_IDS.map(lambda i: f"id = {i}"),
    C_IDS.map(lambda i: f"id > {i}"),
    AB.map(lambda a: f"a = {a}"),
    st.sampled_from(["r IS NULL", "b IS NULL", "true", "r IN (SELECT id FROM {s}.t)"]),
)


# ---------------------------------------------------------------------------------------
# Table t
# ---------------------------------------------------------------------------------------

T_COLUMN_VALUES: dict[str, st.SearchStrategy[Value]] = {
    "id": _maybe_null(T_IDS, 12),
    "k": K_VALUES,
    "v": V_VALUES,
    "n": N_VALUES,
    "d": D_VALUES,
}


def write(sql: str, any_row: bool = False) -> Step:
    return Step(sql, any_row=any_row)


def query(sql: str, ordered: bool) -> Step:
    return Step(sql, ordered=ordered)


@st.composite
def t_insert_values(draw: st.DrawFn) -> Step:
    columns = draw(
        st.lists(st.sampled_from(list(T_COLUMN_VALUES)), min_size=1, max_size=5, unique=True)
    )
    if "id" not in columns and draw(st.integers(1, 6)) > 1:
        columns.insert(0, "id")  # mostly with a key; without one the row has a NULL key
    n_rows = draw(st.integers(1, 3))
    rows = [
        "(" + ", ".join(lit(draw(T_COLUMN_VALUES[c])) for c in columns) + ")" for _ in range(n_rows)
    ]
    returning = draw(RETURNING)
    sql = f"INSERT INTO {{s}}.t ({', '.join(columns)}) VALUES {', '.join(rows)}{returning}"
    return write(sql)


@st.composite
def t_insert_default_values(draw: st.DrawFn) -> Step:
    return write(f"INSERT INTO {{s}}.t DEFAULT VALUES{draw(RETURNING)}")


@st.composite
def t_insert_select(draw: st.DrawFn) -> Step:
    # ORDER BY: the serial column is drawn in row order, which must not be the scan's.
    offset = draw(st.sampled_from([1, 10, 100]))
    k = draw(st.sampled_from(["NULL", "k + 10", "k"]))
    pred = draw(T_PREDICATES)
    returning = draw(RETURNING)
    return write(
        f"INSERT INTO {{s}}.t (id, k, v, n) SELECT id + {offset}, {k}, v, n FROM {{s}}.t "
        f"WHERE {pred} ORDER BY id{returning}"
    )


@st.composite
def t_move(draw: st.DrawFn) -> Step:
    """Delete rows and insert them again under new keys, in one statement (the sort makes
    every delete happen before the first insert)."""
    offset = draw(st.sampled_from([1, 100]))
    pred = draw(T_PREDICATES)
    returning = draw(RETURNING)
    return write(
        f"WITH m AS (DELETE FROM {{s}}.t WHERE {pred} RETURNING *) "
        f"INSERT INTO {{s}}.t (id, k, v, n, d) SELECT id + {offset}, k, v, n, d FROM m "
        f"ORDER BY id{returning}",
        any_row=True,
    )


T_SINGLE_ASSIGNMENTS = {
    "id": st.one_of(
        st.sampled_from(["id + 100", "id - 100", "id + 1", "NULL"]),
        T_IDS.map(str),
    ),
    "k": st.one_of(st.sampled_from(["NULL", "k + 1", "DEFAULT"]), st.integers(1, 6).map(str)),
    "v": st.sampled_from(["'a'", "'z'", "NULL", "v || 'x'"]),
    "n": st.sampled_from(["n - 3", "n + 1", "0", "-1", "NULL", "DEFAULT"]),
    "d": st.sampled_from(["d + 1", "NULL", "DEFAULT"]),
    "s": st.just("DEFAULT"),
}


@st.composite
def t_update_single(draw: st.DrawFn) -> Step:
    columns = draw(
        st.lists(st.sampled_from(list(T_SINGLE_ASSIGNMENTS)), min_size=1, max_size=3, unique=True)
    )
    sets = ", ".join(f"{c} = {draw(T_SINGLE_ASSIGNMENTS[c])}" for c in columns)
    key = draw(st.one_of(T_IDS, st.integers(101, 104)))
    returning = draw(RETURNING)
    return write(f"UPDATE {{s}}.t SET {sets} WHERE id = {key}{returning}")


#: Multi-row assignments that cannot fail.
T_SAFE_ASSIGNMENTS = st.sampled_from(
    [
        "v = 'm'",
        "v = NULL",
        "v = v || 'y'",
        "d = d * 2",
        "d = DEFAULT",
        "n = n + 2",
        "d = (SELECT count(*) FROM {s}.c WHERE c.r = t.id)",
    ]
)
#: Multi-row assignments that can fail, all with one SQLSTATE (at most one per UPDATE).
T_RISKY_ASSIGNMENTS = st.one_of(
    st.sampled_from(["n = n - 3", "n = NULL", "n = -1", "n = 0", "n = DEFAULT", "k = NULL"]),
    st.integers(1, 6).map(lambda k: f"k = {k}"),
)


@st.composite
def t_update_multi(draw: st.DrawFn) -> Step:
    sets = draw(st.lists(T_SAFE_ASSIGNMENTS, max_size=2, unique=True))
    if not sets or draw(st.booleans()):
        sets.append(draw(T_RISKY_ASSIGNMENTS))
    if len({a.split(" ")[0] for a in sets}) < len(sets):  # one assignment per column
        sets = sets[-1:]
    pred = draw(T_PREDICATES)
    returning = draw(RETURNING)
    return write(f"UPDATE {{s}}.t SET {', '.join(sets)} WHERE {pred}{returning}", any_row=True)


@st.composite
def t_delete(draw: st.DrawFn) -> Step:
    pred = draw(st.one_of(T_PREDICATES, C_PREDICATES.map(_referenced_by_c)))
    returning = draw(RETURNING)
    return write(f"DELETE FROM {{s}}.t WHERE {pred}{returning}", any_row=True)


def _referenced_by_c(c_predicate: str) -> str:
    return f"id IN (SELECT r FROM {{s}}.c WHERE {c_predicate})"


@st.composite
def t_select(draw: st.DrawFn) -> Step:
    pred = draw(T_PREDICATES)
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return query(f"SELECT * FROM {{s}}.t WHERE {pred} ORDER BY id", True)
    if kind == 1:
        return query(f"SELECT * FROM {{s}}.t WHERE {pred}", False)
    if kind == 2:
        return query(f"SELECT id, k FROM {{s}}.t WHERE {pred} ORDER BY id LIMIT 2 OFFSET 1", True)
    return query(
        f"SELECT count(*), sum(n), min(k), max(v), count(d) FROM {{s}}.t WHERE {pred}", True
    )


#: ON CONFLICT targets of t, and what DO UPDATE may assign for each (never its own
#: columns: a DO UPDATE that moves the conflict key is judged against the keys the statement
#: began with in a session, see docs-upserts.md)
T_TARGETS = ["(id)", "(k)", "ON CONSTRAINT t_pkey", "ON CONSTRAINT t_k_key", ""]
#: Assignments of DO UPDATE that cannot fail in the update itself: a session applies its
#: updates before its inserts, so when an update fails a sequence may have drawn another
#: number of values than the table's (see docs-upserts.md). Failures of the proposed rows
#: (NOT NULL, CHECK, duplicates, 21000) and of inserts are drawn freely.
T_UPSERT_ASSIGNMENTS = st.sampled_from(
    [
        "v = excluded.v",
        "v = t.v || excluded.v",
        "v = NULL",
        "n = t.n + 1",
        "n = excluded.n",
        "d = DEFAULT",
        "d = excluded.d",
        "d = t.d + excluded.n",
        "(v, d) = (excluded.v, 1)",
    ]
)
T_UPSERT_WHERE = st.sampled_from(
    ["", " WHERE t.n > 2", " WHERE excluded.v IS NOT NULL", " WHERE t.v IS DISTINCT FROM 'a'"]
)


@st.composite
def t_upsert(draw: st.DrawFn) -> Step:
    """INSERT ... ON CONFLICT: DO NOTHING or DO UPDATE (with EXCLUDED, with and without
    WHERE), by either unique key, by constraint name, or without target; RETURNING in the
    order of the rows."""
    columns = draw(
        st.lists(st.sampled_from(list(T_COLUMN_VALUES)), min_size=1, max_size=5, unique=True)
    )
    target = draw(st.sampled_from(T_TARGETS))
    for key in ("id", "k"):
        if key in target and key not in columns:
            columns.insert(0, key)
    if "id" not in columns and draw(st.integers(1, 6)) > 1:
        columns.insert(0, "id")
    rows = [
        "(" + ", ".join(lit(draw(T_COLUMN_VALUES[c])) for c in columns) + ")"
        for _ in range(draw(st.integers(1, 3)))
    ]
    if target and draw(st.booleans()):
        sets = draw(T_UPSERT_ASSIGNMENTS)
        if "n =" not in sets and draw(st.booleans()):
            sets += ", n = t.n + 1"
        action = f"DO UPDATE SET {sets}{draw(T_UPSERT_WHERE)}"
    else:
        action = "DO NOTHING"
    returning = draw(st.sampled_from(["", " RETURNING *", " RETURNING id, s, v || n"]))
    sql = (
        f"INSERT INTO {{s}}.t AS t ({', '.join(columns)}) VALUES {', '.join(rows)} "
        f"ON CONFLICT {target}{' ' if target else ''}{action}{returning}"
    )
    return Step(sql.replace("  ", " "), ordered=True)


@st.composite
def t_upsert_select(draw: st.DrawFn) -> Step:
    """An upsert of rows read from the table itself, in key order."""
    offset = draw(st.sampled_from([0, 1, 5]))
    pred = draw(T_PREDICATES)
    action = draw(st.sampled_from(["DO NOTHING", "DO UPDATE SET v = excluded.v || '!'"]))
    return Step(
        f"INSERT INTO {{s}}.t AS t (id, v) SELECT id + {offset}, v FROM {{s}}.t WHERE {pred} "
        f"ORDER BY id ON CONFLICT (id) {action} RETURNING id, v",
        ordered=True,
    )


@st.composite
def t_merge(draw: st.DrawFn) -> Step:
    """MERGE (through the view's triggers from PostgreSQL 17; refused with a kit error in a
    session before that, which the test checks instead)."""
    rows = draw(
        st.lists(st.tuples(T_IDS, V_VALUES), min_size=1, max_size=3, unique_by=lambda r: r[0])
    )
    source = ", ".join(f"({i}, {lit(v)})" for i, v in rows)
    matched = draw(
        st.sampled_from(
            [
                "WHEN MATCHED THEN UPDATE SET v = s.v",
                "WHEN MATCHED AND s.v IS NULL THEN DELETE WHEN MATCHED THEN UPDATE SET n = t.n + 1",
                "WHEN MATCHED THEN DO NOTHING",
            ]
        )
    )
    unmatched = draw(
        st.sampled_from(
            [
                "",
                "WHEN NOT MATCHED THEN INSERT (id, v) VALUES (s.id, s.v)",
                "WHEN NOT MATCHED AND s.id > 5 THEN INSERT (id, k, v) VALUES (s.id, s.id, s.v)",
            ]
        )
    )
    if unmatched:  # rows are inserted (s drawn) in join order: one source row then
        source = f"({rows[0][0]}, {lit(rows[0][1])})"
    by_source = draw(st.sampled_from(["", " WHEN NOT MATCHED BY SOURCE AND t.id > 8 THEN DELETE"]))
    return Step(
        f"MERGE INTO {{s}}.t AS t USING (VALUES {source}) AS s(id, v) ON t.id = s.id "
        f"{matched} {unmatched}{by_source}".replace("  ", " "),
        any_row=True,
    )


# ---------------------------------------------------------------------------------------
# Tables p and c
# ---------------------------------------------------------------------------------------

W_VALUES = st.sampled_from(["x", "y", None])
#: Values of the child's references: literals (which may reference nothing) or subqueries
#: that find a row that exists, if there is one.
R_VALUES = st.sampled_from(
    ["NULL", "(SELECT min(id) FROM {s}.t)", "(SELECT max(id) FROM {s}.t)", "1", "2", "5", "9"]
)
Q_VALUES = st.sampled_from(
    ["NULL", "NULL", "(SELECT min(k) FROM {s}.t)", "(SELECT max(k) FROM {s}.t)", "1", "3"]
)
_FIRST_P = (
    "(SELECT min(a) FROM {s}.p)",
    "(SELECT min(b) FROM {s}.p WHERE a = (SELECT min(a) FROM {s}.p))",
)
AB_VALUES = st.sampled_from([_FIRST_P, _FIRST_P, ("NULL", "1"), ("1", "1"), ("2", "2"), ("3", "1")])


@st.composite
def p_insert(draw: st.DrawFn) -> Step:
    rows = draw(
        st.lists(
            st.tuples(_maybe_null(AB), _maybe_null(st.integers(1, 5)), W_VALUES),
            min_size=1,
            max_size=3,
        )
    )
    values = ", ".join(f"({lit(a)}, {lit(b)}, {lit(w)})" for a, b, w in rows)
    sql = f"INSERT INTO {{s}}.p (a, b, w) VALUES {values}{draw(RETURNING)}"
    return write(sql)


@st.composite
def p_update_key(draw: st.DrawFn) -> Step:
    """Changes one parent's key; ON UPDATE CASCADE moves its children along."""
    a, b = draw(AB), draw(AB)
    sets = draw(
        st.sampled_from(
            ["b = b + 10", "a = a + 10", "b = NULL", "w = 'k', b = b + 1"]
            + [f"a = {x}, b = {y}" for x in (1, 2, 3) for y in (1, 2)]
        )
    )
    sql = f"UPDATE {{s}}.p SET {sets} WHERE a = {a} AND b = {b}{draw(RETURNING)}"
    return write(sql)


@st.composite
def p_update_multi(draw: st.DrawFn) -> Step:
    sets = draw(st.sampled_from(["w = 'u'", "w = NULL", "w = w || 'v'"]))
    sql = f"UPDATE {{s}}.p SET {sets} WHERE {draw(P_PREDICATES)}{draw(RETURNING)}"
    return write(sql, any_row=True)


@st.composite
def p_delete(draw: st.DrawFn) -> Step:
    return write(f"DELETE FROM {{s}}.p WHERE {draw(P_PREDICATES)}{draw(RETURNING)}", any_row=True)


@st.composite
def p_upsert(draw: st.DrawFn) -> Step:
    """Upserts on the composite key; DO UPDATE changes w only (children follow the key)."""
    rows = draw(
        st.lists(
            st.tuples(_maybe_null(AB), _maybe_null(st.integers(1, 5)), W_VALUES),
            min_size=1,
            max_size=3,
        )
    )
    values = ", ".join(f"({lit(a)}, {lit(b)}, {lit(w)})" for a, b, w in rows)
    action = draw(
        st.sampled_from(
            [
                "DO NOTHING",
                "DO UPDATE SET w = excluded.w",
                "DO UPDATE SET w = p.w || 'u' WHERE p.w IS NOT NULL",
            ]
        )
    )
    target = draw(st.sampled_from(["(a, b)", "(b, a)", "ON CONSTRAINT p_pkey"]))
    if action == "DO NOTHING" and draw(st.booleans()):
        target = ""
    return Step(
        f"INSERT INTO {{s}}.p AS p (a, b, w) VALUES {values} ON CONFLICT {target} {action}"
        f"{draw(RETURNING)}".replace("  ", " "),
        ordered=True,
    )


@st.composite
def c_upsert(draw: st.DrawFn) -> Step:
    """Upserts of children: their foreign keys are checked when the statement ends."""
    i, r = draw(C_IDS), draw(R_VALUES)
    action = draw(st.sampled_from(["DO NOTHING", "DO UPDATE SET r = excluded.r"]))
    return Step(
        f"INSERT INTO {{s}}.c AS c (id, r) VALUES ({i}, {r}) ON CONFLICT (id) {action}"
        f"{draw(RETURNING)}",
        ordered=True,
    )


@st.composite
def log_upsert(draw: st.DrawFn) -> Step:
    """No unique key: DO NOTHING without target skips nothing."""
    msg = draw(st.sampled_from(["'x'", "'y'", "NULL"]))
    return Step(
        f"INSERT INTO {{s}}.log (msg) VALUES ({msg}) ON CONFLICT DO NOTHING{draw(RETURNING)}"
    )


@st.composite
def c_insert(draw: st.DrawFn) -> Step:
    rows = draw(
        st.lists(
            st.tuples(_maybe_null(st.integers(1, 12), 12).map(lit), AB_VALUES, R_VALUES, Q_VALUES),
            min_size=1,
            max_size=2,
        )
    )
    values = ", ".join(f"({i}, {a}, {b}, {r}, {q})" for i, (a, b), r, q in rows)
    sql = f"INSERT INTO {{s}}.c (id, a, b, r, q) VALUES {values}{draw(RETURNING)}"
    return write(sql)


@st.composite
def pc_insert_family(draw: st.DrawFn) -> Step:
    """A parent and its child in one statement, the parent written first."""
    a, b, child = draw(AB), draw(st.integers(1, 5)), draw(st.integers(1, 9))
    return write(
        f"WITH i AS (INSERT INTO {{s}}.p (a, b, w) VALUES ({a}, {b}, 'n') RETURNING a, b) "
        f"INSERT INTO {{s}}.c (id, a, b) SELECT {child}, a, b FROM i{draw(RETURNING)}"
    )


C_SINGLE_ASSIGNMENTS = st.sampled_from(
    ["a = 1, b = 1", "a = 2, b = 2", "a = 3, b = 3", "b = NULL", "a = a + 1", "r = NULL"]
    + [f"r = {i}" for i in (1, 2, 5, 9, 101)]
    + ["q = NULL", "q = 1", "q = 2", "q = 4", "q = q + 1"]
    + ["id = id + 10", "id = 1", "id = 2", "id = NULL"]
)


@st.composite
def c_update_single(draw: st.DrawFn) -> Step:
    sets = draw(C_SINGLE_ASSIGNMENTS)
    sql = f"UPDATE {{s}}.c SET {sets} WHERE id = {draw(C_IDS)}{draw(RETURNING)}"
    return write(sql)


@st.composite
def c_update_multi(draw: st.DrawFn) -> Step:
    # Each can fail only with 23503 (a missing parent), whichever row fails first.
    sets = draw(
        st.sampled_from(
            ["r = NULL", "r = 1", "r = 3", "r = r + 1", "a = 1, b = 1", "q = NULL", "q = 2"]
        )
    )
    sql = f"UPDATE {{s}}.c SET {sets} WHERE {draw(C_PREDICATES)}{draw(RETURNING)}"
    return write(sql, any_row=True)


@st.composite
def c_update_from(draw: st.DrawFn) -> Step:
    """A join on a unique key: each child matches at most one row of t."""
    sql = "UPDATE {s}.c SET r = t.id FROM {s}.t WHERE t.k = c.id" + draw(RETURNING)
    return write(sql, any_row=True)


@st.composite
def c_delete(draw: st.DrawFn) -> Step:
    pred = draw(C_PREDICATES)
    sql = f"DELETE FROM {{s}}.c WHERE {pred}{draw(RETURNING)}"
    return write(sql, any_row=True)


@st.composite
def c_delete_using(draw: st.DrawFn) -> Step:
    pred = draw(st.sampled_from(["p.w IS NULL", "p.w = 'x'", "p.a = 1", "p.b > 1"]))
    return write(
        f"DELETE FROM {{s}}.c USING {{s}}.p WHERE p.a = c.a AND p.b = c.b AND {pred}"
        + draw(RETURNING),
        any_row=True,
    )


PC_SELECTS = st.sampled_from(
    [
        query("SELECT * FROM {s}.p ORDER BY a, b", True),
        query("SELECT * FROM {s}.c ORDER BY id", True),
        query("SELECT * FROM {s}.c WHERE a IS NOT NULL", False),
        query(
            "SELECT c.id, p.w, t.v, t.n FROM {s}.c LEFT JOIN {s}.p USING (a, b) "
            "LEFT JOIN {s}.t ON t.id = c.r ORDER BY c.id",
            True,
        ),
        query(
            "SELECT c.id, t.id, t.k FROM {s}.c JOIN {s}.t ON t.k = c.q ORDER BY c.id",
            True,
        ),
        query("SELECT a, count(*) FROM {s}.p GROUP BY a", False),
    ]
)


# ---------------------------------------------------------------------------------------
# Table node (references itself)
# ---------------------------------------------------------------------------------------

NODE_IDS = st.integers(1, 8)
NODE_PREDICATES = st.one_of(
    NODE_IDS.map(lambda i: f"id = {i}"),
    NODE_IDS.map(lambda i: f"id > {i}"),
    NODE_IDS.map(lambda i: f"parent = {i}"),
    st.tuples(NODE_IDS, NODE_IDS).map(lambda ij: f"id IN ({ij[0]}, {ij[1]})"),
    NODE_IDS.map(lambda i: f"(id = {i} OR parent = {i})"),
    st.sampled_from(["parent IS NULL", "tag = 'x'", "parent = id", "true"]),
)


@st.composite
def node_insert(draw: st.DrawFn) -> Step:
    """Children may come before their parents in the VALUES list."""
    rows = draw(
        st.lists(
            st.tuples(_maybe_null(NODE_IDS, 12), _maybe_null(NODE_IDS, 3), W_VALUES),
            min_size=1,
            max_size=3,
        )
    )
    values = ", ".join(f"({lit(i)}, {lit(parent)}, {lit(tag)})" for i, parent, tag in rows)
    sql = f"INSERT INTO {{s}}.node (id, parent, tag) VALUES {values}{draw(RETURNING)}"
    return write(sql)


@st.composite
def node_update_single(draw: st.DrawFn) -> Step:
    sets = draw(
        st.one_of(
            NODE_IDS.map(lambda i: f"parent = {i}"),
            NODE_IDS.map(lambda i: f"id = {i}"),
            st.sampled_from(["parent = NULL", "parent = id", "id = id + 10", "id = id - 10"]),
        )
    )
    key = draw(st.one_of(NODE_IDS, st.integers(11, 14)))
    return write(f"UPDATE {{s}}.node SET {sets} WHERE id = {key}{draw(RETURNING)}")


@st.composite
def node_update_multi(draw: st.DrawFn) -> Step:
    # Only the parent changes (can fail with 23503 only), or a column without constraints.
    sets = draw(
        st.one_of(
            NODE_IDS.map(lambda i: f"parent = {i}"),
            st.sampled_from(["parent = NULL", "tag = 'y'", "parent = id"]),
        )
    )
    sql = f"UPDATE {{s}}.node SET {sets} WHERE {draw(NODE_PREDICATES)}{draw(RETURNING)}"
    return write(sql, any_row=True)


@st.composite
def node_delete(draw: st.DrawFn) -> Step:
    """Deleting a parent fails unless its children go in the same statement."""
    pred = draw(NODE_PREDICATES)
    sql = f"DELETE FROM {{s}}.node WHERE {pred}{draw(RETURNING)}"
    return write(sql, any_row=True)


NODE_SELECTS = st.sampled_from(
    [
        query("SELECT * FROM {s}.node ORDER BY id", True),
        query(
            "WITH RECURSIVE tree AS (SELECT id, parent, 0 AS depth FROM {s}.node "
            "WHERE parent IS NULL UNION ALL SELECT n.id, n.parent, tree.depth + 1 "
            "FROM {s}.node n JOIN tree ON n.parent = tree.id AND n.id <> n.parent) "
            "SELECT * FROM tree",
            False,
        ),
    ]
)


# ---------------------------------------------------------------------------------------
# Table log (no key: append-only in sessions)
# ---------------------------------------------------------------------------------------

LOG_COLUMN_VALUES: dict[str, st.SearchStrategy[Value]] = {
    "at": st.sampled_from([0, 1, 2, 3, None, DEFAULT]),
    "msg": st.sampled_from(["x", "y", "", None]),
    "n": st.sampled_from([1, 2, None, DEFAULT]),
}


@st.composite
def log_insert(draw: st.DrawFn) -> Step:
    columns = draw(
        st.lists(st.sampled_from(list(LOG_COLUMN_VALUES)), min_size=1, max_size=3, unique=True)
    )
    rows = [
        "(" + ", ".join(lit(draw(LOG_COLUMN_VALUES[c])) for c in columns) + ")"
        for _ in range(draw(st.integers(1, 3)))
    ]
    return write(
        f"INSERT INTO {{s}}.log ({', '.join(columns)}) VALUES {', '.join(rows)}{draw(RETURNING)}"
    )


@st.composite
def log_insert_select(draw: st.DrawFn) -> Step:
    pred = draw(T_PREDICATES)
    at = draw(st.sampled_from(["id", "n", "k"]))  # k may be NULL: NOT NULL violations
    return write(
        f"INSERT INTO {{s}}.log (at, msg) SELECT {at}, v FROM {{s}}.t WHERE {pred} "
        f"ORDER BY id{draw(RETURNING)}",
        any_row=True,
    )


@st.composite
def log_select(draw: st.DrawFn) -> Step:
    at = draw(st.integers(0, 4))
    if draw(st.booleans()):
        return query(f"SELECT * FROM {{s}}.log WHERE at < {at} ORDER BY at, msg, n", True)
    return query(f"SELECT count(*), sum(n), count(msg) FROM {{s}}.log WHERE at >= {at}", True)


# ---------------------------------------------------------------------------------------
# Programs
# ---------------------------------------------------------------------------------------

STATEMENTS: st.SearchStrategy[Step] = st.one_of(
    t_insert_values(),
    t_insert_default_values(),
    t_insert_select(),
    t_move(),
    t_update_single(),
    t_update_multi(),
    t_delete(),
    t_select(),
    p_insert(),
    p_update_key(),
    p_update_multi(),
    p_delete(),
    c_insert(),
    pc_insert_family(),
    c_update_single(),
    c_update_multi(),
    c_update_from(),
    c_delete(),
    c_delete_using(),
    PC_SELECTS,
    node_insert(),
    node_update_single(),
    node_update_multi(),
    node_delete(),
    NODE_SELECTS,
    log_insert(),
    log_insert_select(),
    log_select(),
    t_upsert(),
    t_upsert(),
    t_upsert_select(),
    t_merge(),
    p_upsert(),
    c_upsert(),
    log_upsert(),
)


@st.composite
def seeds(draw: st.DrawFn) -> list[str]:
    """INSERTs that fill the tables before the session starts (all valid)."""
    t_ids = draw(st.lists(st.integers(1, 8), max_size=6, unique=True))
    t_rows = []
    used_k: set[int] = set()
    for i in t_ids:
        k = draw(K_VALUES)
        if k in used_k:
            k = None
        if k is not None:
            used_k.add(k)
        v = draw(V_VALUES)
        n = draw(st.integers(0, 9))
        d = draw(st.sampled_from([None, 1, 2]))
        t_rows.append(f"({i}, {lit(k)}, {lit(v)}, {n}, {lit(d)})")
    p_keys = draw(st.lists(st.tuples(AB, AB), max_size=5, unique=True))
    p_rows = [f"({a}, {b}, {lit(draw(W_VALUES))})" for a, b in p_keys]
    c_ids = draw(st.lists(C_IDS, max_size=5, unique=True))
    c_rows = []
    for i in c_ids:
        a, b = draw(st.sampled_from([*p_keys, (None, None), (3, None)])) if p_keys else (None, None)
        r = draw(st.sampled_from([*t_ids, None]))
        q = draw(st.sampled_from([*sorted(used_k), None]))
        c_rows.append(f"({i}, {lit(a)}, {lit(b)}, {lit(r)}, {lit(q)})")
    seed = []
    if t_rows:
        seed.append(f"INSERT INTO {{s}}.t (id, k, v, n, d) VALUES {', '.join(t_rows)}")
    if p_rows:
        seed.append(f"INSERT INTO {{s}}.p (a, b, w) VALUES {', '.join(p_rows)}")
    if c_rows:
        seed.append(f"INSERT INTO {{s}}.c (id, a, b, r, q) VALUES {', '.join(c_rows)}")
    node_ids = draw(st.lists(st.integers(1, 6), max_size=5, unique=True))
    node_rows = [
        f"({i}, {lit(draw(st.sampled_from([*node_ids[: n + 1], None])))}, {lit(draw(W_VALUES))})"
        for n, i in enumerate(node_ids)
    ]
    if node_rows:
        # Parents first (or the row itself): without a session the view writes the base row
        # by row, so a child before its parent in one statement fails (README, known limits).
        seed.append(f"INSERT INTO {{s}}.node (id, parent, tag) VALUES {', '.join(node_rows)}")
    log_rows = [
        f"({draw(st.integers(0, 3))}, {lit(draw(st.sampled_from(['x', 'y', None])))})"
        for _ in range(draw(st.integers(0, 3)))
    ]
    if log_rows:
        seed.append(f"INSERT INTO {{s}}.log (at, msg) VALUES {', '.join(log_rows)}")
    return seed


@st.composite
def programs(draw: st.DrawFn, max_steps: int = 15) -> Program:
    seed = draw(seeds())
    n_ops = draw(st.integers(1, 3))
    statements = draw(st.lists(STATEMENTS, min_size=1, max_size=max_steps))
    steps = [replace(step, op=draw(st.integers(0, n_ops - 1))) for step in statements]
    finish = draw(st.sampled_from(["commit", "commit", "commit", "discard"]))
    return Program(seed=seed, steps=steps, finish=finish)
