"""The SQL guard: what an agent's SQL may be before it is sent, checked on the text itself.

One statement, a query or a write (``SELECT``, ``INSERT``, ``UPDATE``, ``DELETE``, ``MERGE``,
with ``WITH`` around them) of the COW tables and of the read-only tables the caller names,
calling only functions of an allow-list. The session's binding cannot be changed from SQL
that passes (no settings, no transaction control, no other statement), nor can the SQL reach
the kit's objects, the catalogs or anything outside the statement.

Two readings of the text must agree: PostgreSQL's lexer (:mod:`agentcow.agent.sql_lexer`,
which also counts the statements) and sqlglot's, which parses it. The parse tree says what
is refused (statements, tables, ``INTO``, row locks); the tokens are checked again for every
call (``name(``) and operator, so a construct sqlglot reads as something else still meets
the allow-list by the name PostgreSQL would call.
"""

from __future__ import annotations

import collections
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import Token as SqlglotToken
from sqlglot import TokenType, exp
from sqlglot.dialects.dialect import Dialect

from agentcow.agent.functions import SAFE_FUNCTIONS, SAFE_OPERATORS, words
from agentcow.agent.sql_lexer import LexError, Token, tokenize
from agentcow.errors import GuardRefusal, GuardSetupError
from agentcow.executor import Executor
from agentcow.naming import OVERLAY_SUFFIX
from agentcow.templates import render

_FIRST_WORDS = {"select", "insert", "update", "delete", "merge", "with", "values", "table"}
_TRANSACTION_WORDS = {
    "begin", "start", "commit", "end", "rollback", "abort", "savepoint", "release",
}  # fmt: skip
_SETTING_WORDS = {"set", "reset", "show"}
#: Words a ``(`` may follow without a function being called.
_STRUCTURAL = words(
    """select from where in exists values as on using and or not any some all array row over
    filter group by set when then else case returning join lateral conflict distinct rollup
    cube sets system bernoulli repeatable only is like ilike similar to between symmetric
    escape union intersect except materialized limit offset having insert for into do
    numeric decimal varchar char character varying bit varbit time timestamp timestamptz
    timetz interval float nchar national zone window recursive cast"""
)
_REG_TYPES = {
    "regclass", "regcollation", "regconfig", "regdictionary", "regnamespace", "regoper",
    "regoperator", "regproc", "regprocedure", "regrole", "regtype",
}  # fmt: skip
_LOCK_STRENGTHS = {"update", "share", "no", "key"}
_SYSTEM_SCHEMAS = {"pg_catalog", "information_schema", "pg_toast"}
_KIT_SCHEMA = "agentcow"
_KIT_SUFFIXES = ("_base", "_changes")
_STRING_TOKENS = {
    TokenType.STRING, TokenType.BYTE_STRING, TokenType.HEREDOC_STRING,
    TokenType.NATIONAL_STRING, TokenType.BIT_STRING, TokenType.HEX_STRING,
    TokenType.UNICODE_STRING, TokenType.RAW_STRING,
}  # fmt: skip
_WORD_TEXT = re.compile(r"[A-Za-z_\x80-\U0010ffff][\w$\x80-\U0010ffff]*(?:\s+[A-Za-z_]\w*)*")

#: Nodes refused wherever they are in the tree: (reason code, message).
_REFUSED_NODES: dict[type[exp.Expr], tuple[str, str]] = {
    exp.Command: ("statement_not_allowed", "only one query or write"),
    exp.Set: ("setting", "settings are not accepted"),
    exp.Create: ("statement_not_allowed", "only one query or write"),
    exp.Drop: ("statement_not_allowed", "only one query or write"),
    exp.Copy: ("statement_not_allowed", "only one query or write"),
    exp.Transaction: ("transaction_control", "transaction control is not accepted"),
    exp.Commit: ("transaction_control", "transaction control is not accepted"),
    exp.Rollback: ("transaction_control", "transaction control is not accepted"),
    exp.Into: ("select_into", "SELECT INTO creates a table"),
    exp.Lock: ("locking_clause", "row locks are not accepted"),
    exp.Operator: ("operator_not_allowed", "OPERATOR() is not accepted"),
}
_POSTGRES = Dialect.get_or_raise("postgres")
_PSYCOPG_PLACEHOLDER = re.compile(r"%%|%(?:\([A-Za-z_][A-Za-z0-9_]*\))?[sbt]")

_HINTS = {
    "empty_statement": "send one SQL statement",
    "multiple_statements": "send one statement per call; several statements that belong "
    "together go in one operation block",
    "parse_error": "write the statement in plain PostgreSQL syntax (without U& escapes or "
    "unusual quoting)",
    "unicode_escape": "write the characters themselves in the string or identifier",
    "not_sql_text": "pass the statement as SQL text (or a SQLAlchemy text() or Core statement)",
    "setting": "settings belong to the application: the session's own are already set",
    "transaction_control": "each call runs in a transaction of its own; several statements "
    "that belong together go in one operation block",
    "statement_not_allowed": "use SELECT, INSERT, UPDATE, DELETE or MERGE (with WITH) on "
    "the tables you were given",
    "select_into": "SELECT the rows, or INSERT INTO one of your tables ... SELECT",
    "locking_clause": "leave out FOR UPDATE/SHARE: the session is your own copy, no other "
    "agent writes it",
    "function_not_allowed": "use built-in functions on values (arithmetic, text, dates, "
    "JSON, aggregates, windows); ask the application to allow this function",
    "operator_not_allowed": "use the usual operators (comparison, arithmetic, text, JSON, arrays)",
    "cast_not_allowed": "cast to a data type, not to a catalog reference type",
    "system_catalog": "ask the application which tables and columns there are",
    "kit_object": "use the tables by their own names: your changes are kept in the session for you",
    "table_not_allowed": "use the tables you were given, by their own names",
    "read_only_table": "this table may be read, not written",
}


@dataclass(frozen=True)
class TableRef:
    """A relation a statement names: its schema when written, and its name."""

    schema: str | None
    name: str

    def __str__(self) -> str:
        return self.name if self.schema is None else f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class GuardedStatement:
    """A statement the guard let through: its text as checked (psycopg's placeholders as
    ``$n``), its kind (``select``, ``insert``, ``update``, ``delete``, ``merge``), the tables
    it reads or writes, those it writes, and sqlglot's tree."""

    sql: str
    kind: str
    tables: frozenset[TableRef]
    writes: frozenset[TableRef]
    tree: exp.Expr = field(repr=False, compare=False)


def _refuse(code: str, message: str, refused: str) -> GuardRefusal:
    return GuardRefusal(code, message, refused=refused, hint=_HINTS[code])


def _fragment(text: str, start: int, length: int = 80) -> str:
    return " ".join(text[start : start + length].split())


def _name(identifier: Any) -> str:
    """An identifier's name as PostgreSQL resolves it: folded unless quoted."""
    if isinstance(identifier, exp.Identifier):
        return str(identifier.this) if identifier.quoted else str(identifier.this).lower()
    return str(identifier).lower()


def _split(name: str) -> TableRef:
    schema, _, bare = name.rpartition(".")
    return TableRef(schema or None, bare)


class SqlGuard:
    """Checks an agent's SQL before it is sent (see the module). Names are as the agent
    writes them, unquoted names lowercase:

    - ``cow_tables``: the COW tables, bare (``"orders"``: also allowed qualified with each
      of ``schemas``) or qualified (``"sales.orders"``: exactly that);
    - ``read_only_tables``: other tables the agent may read, not write (same forms);
    - ``functions``: functions allowed beside the built-in allow-list (bare, or qualified:
      exactly that call), for example ``"generate_series"`` or ``"app.price_with_tax"``;
    - ``schemas``: the schemas a bare entry may be qualified with. Leave out the schema of
      overlay-layout tables (``schemas=()``): qualified, the name reaches the real table.
    """

    def __init__(
        self,
        *,
        cow_tables: Iterable[str],
        read_only_tables: Iterable[str] = (),
        functions: Iterable[str] = (),
        schemas: Iterable[str] = ("public",),
    ) -> None:
        self.cow_tables = frozenset(_split(n) for n in cow_tables)
        self.read_only_tables = frozenset(_split(n) for n in read_only_tables)
        self.schemas = frozenset(schemas)
        self.functions = frozenset(f.lower() for f in functions)
        self._configured = {t.name.lower() for t in self.cow_tables | self.read_only_tables}
        self._kit_names = {
            t.name.lower() + suffix for t in self.cow_tables for suffix in _KIT_SUFFIXES
        }
        clash = [
            str(t)
            for t in self.cow_tables | self.read_only_tables
            if t.name.lower() in self._kit_names
        ]
        if clash:
            raise GuardSetupError(f"{', '.join(clash)}: the base or change table of a COW table")
        self._kit_schemas = {_KIT_SCHEMA} | {
            s + OVERLAY_SUFFIX
            for s in self.schemas | {t.schema for t in self.cow_tables if t.schema}
        }

    def __repr__(self) -> str:
        return (
            f"SqlGuard(cow_tables={sorted(map(str, self.cow_tables))}, "
            f"read_only_tables={sorted(map(str, self.read_only_tables))}, "
            f"functions={sorted(self.functions)}, schemas={sorted(self.schemas)})"
        )

    # -- the checks ---------------------------------------------------------------------

    def check(self, sql: str) -> GuardedStatement:
        """The statement, if the guard lets it through; else :class:`GuardRefusal`.
        Parameters may be written ``$1``, ``:name`` or psycopg's ``%s`` / ``%(name)s``."""
        sql = _numbered_parameters(sql)
        try:
            read = tokenize(sql)
        except LexError as error:
            raise _refuse(error.code, str(error), _fragment(sql, error.start)) from None
        if read.further:
            raise _refuse(
                "multiple_statements",
                "only one statement is accepted per call",
                _fragment(sql, read.further[0]),
            )
        tokens = read.tokens
        if not tokens:
            raise _refuse("empty_statement", "there is no statement", sql.strip())
        self._check_first_word(sql, tokens[0])
        theirs = _sqlglot_tokens(sql)
        self._check_same_reading(sql, tokens, theirs)
        tree = self._parse(sql, theirs)
        kind = self._check_kind(tree)
        self._check_tokens(sql, tokens, tree)
        tables, writes = self._check_tree(tree)
        return GuardedStatement(sql, kind, frozenset(tables), frozenset(writes), tree)

    def _check_first_word(self, sql: str, first: Token) -> None:
        if first.kind == "punct" and first.text == "(":
            return
        word = first.text if first.kind == "word" else ""
        if word in _FIRST_WORDS:
            return
        fragment = _fragment(sql, first.start)
        if word in _SETTING_WORDS:
            raise _refuse("setting", f"{word.upper()} of settings is not accepted", fragment)
        if word in _TRANSACTION_WORDS or fragment.lower().startswith("prepare transaction"):
            raise _refuse("transaction_control", "transaction control is not accepted", fragment)
        shown = word.upper() or fragment.split(" ", 1)[0]
        raise _refuse("statement_not_allowed", f"{shown} statements are not accepted", fragment)

    def _parse(self, sql: str, tokens: list[SqlglotToken]) -> exp.Expr:
        try:
            parsed = _POSTGRES.parser().parse(tokens, sql)
            trees = [t for t in parsed if t is not None and not isinstance(t, exp.Semicolon)]
        except sqlglot.errors.SqlglotError as error:
            message = " ".join(str(error).split())[:200]
            raise _refuse(
                "parse_error", f"the statement cannot be parsed ({message})", sql
            ) from None
        if len(trees) != 1:
            raise _refuse("multiple_statements", "only one statement is accepted per call", sql)
        return trees[0]

    def _check_same_reading(self, sql: str, tokens: list[Token], found: list[SqlglotToken]) -> None:
        """The words, strings and quoted identifiers sqlglot reads are PostgreSQL's."""
        ours = [_signature(t) for t in tokens if t.kind in ("word", "qident", "string")]
        theirs = list(_sqlglot_signatures(found))
        if ours != theirs:
            at = next(
                (i for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b),
                min(len(ours), len(theirs)),
            )
            start = tokens[0].start
            for t in tokens:
                if t.kind in ("word", "qident", "string"):
                    if at == 0:
                        start = t.start
                        break
                    at -= 1
            raise _refuse(
                "parse_error",
                "the guard's parser and PostgreSQL would read this text differently",
                _fragment(sql, start),
            )

    def _check_kind(self, tree: exp.Expr) -> str:
        if isinstance(tree, exp.Insert | exp.Update | exp.Delete | exp.Merge):
            return type(tree).__name__.lower()
        if isinstance(tree, exp.Query | exp.Values):
            return "select"
        if isinstance(tree, exp.Command):  # sqlglot's reading of what it cannot parse
            raise _refuse("parse_error", "the guard cannot read this statement", tree.sql())
        raise _refuse(
            "statement_not_allowed",
            "only SELECT, INSERT, UPDATE, DELETE and MERGE are accepted",
            tree.sql(dialect="postgres"),
        )

    def _check_tree(self, tree: exp.Expr) -> tuple[set[TableRef], set[TableRef]]:
        targets = {id(t) for t in _write_targets(tree)}
        tables: set[TableRef] = set()
        writes: set[TableRef] = set()
        functions_in_from = _function_aliases(tree)
        for node in tree.walk():
            refused = _REFUSED_NODES.get(type(node))
            if refused is not None:
                raise _refuse(*refused, node.sql(dialect="postgres"))
            if isinstance(node, exp.Column) and node.table.lower() in functions_in_from:
                self._check_function_column(node, functions_in_from[node.table.lower()])
            if isinstance(node, exp.Anonymous):
                self._check_call(node)
            if isinstance(node, exp.Table) and isinstance(node.this, exp.Identifier):
                written = id(node) in targets
                ref = self._check_table(node, written)
                if ref is not None:
                    tables.add(ref)
                    if written:
                        writes.add(ref)
        return tables, writes

    def _check_call(self, node: exp.Anonymous) -> None:
        name = node.name.lower()
        parent = node.parent
        qualifier = ""
        shown = node.sql(dialect="postgres")
        if isinstance(parent, exp.Dot) and parent.expression is node:
            qualifier = _name(parent.this).lower()
            shown = parent.sql(dialect="postgres")
        if not self._function_allowed(qualifier, name):
            raise _refuse("function_not_allowed", f"function {name} is not allowed", shown)

    def _function_allowed(self, qualifier: str, name: str) -> bool:
        if not qualifier:
            return name in SAFE_FUNCTIONS or name in self.functions
        return (qualifier == "pg_catalog" and name in SAFE_FUNCTIONS) or (
            f"{qualifier}.{name}" in self.functions
        )

    def _check_table(self, node: exp.Table, written: bool) -> TableRef | None:
        name = _name(node.this)
        shown = node.sql(dialect="postgres")
        schema = _name(node.args["db"]) if node.args.get("db") else None
        if node.args.get("catalog"):
            raise _refuse("table_not_allowed", "names with a database part are refused", shown)
        if schema is None and not written and _is_cte(node, name):
            return None
        ref = TableRef(schema, name)
        lowered = (schema or "").lower()
        if lowered in _SYSTEM_SCHEMAS or lowered.startswith("pg_"):
            raise _refuse("system_catalog", "system catalogs are not accepted", shown)
        if lowered in self._kit_schemas or lowered.endswith(OVERLAY_SUFFIX):
            raise _refuse("kit_object", "agentcow's own objects are not accepted", shown)
        if self._allowed(ref, self.cow_tables):
            return ref
        if self._allowed(ref, self.read_only_tables):
            if written:
                raise _refuse("read_only_table", f"{ref} may be read, not written", shown)
            return ref
        if name.lower() in self._kit_names or name.lower().endswith(_KIT_SUFFIXES):
            raise _refuse("kit_object", "the base and change tables are agentcow's", shown)
        if name.lower().startswith("pg_"):
            raise _refuse("system_catalog", "system catalogs are not accepted", shown)
        raise _refuse("table_not_allowed", f"table {ref} is not one of the agent's", shown)

    def _allowed(self, ref: TableRef, entries: frozenset[TableRef]) -> bool:
        if ref in entries:
            return True
        return ref.schema in self.schemas and TableRef(None, ref.name) in entries

    def _check_tokens(self, sql: str, tokens: list[Token], tree: exp.Expr) -> None:
        """Every call, operator and name PostgreSQL would read, whatever sqlglot made of it."""
        named = _relation_names(tree)
        for i, token in enumerate(tokens):
            if token.kind == "op":
                if token.text not in SAFE_OPERATORS:
                    message = f"operator {token.text} is not allowed"
                    raise _refuse("operator_not_allowed", message, _fragment(sql, token.start))
            elif token.kind in ("word", "qident"):
                following = tokens[i + 1] if i + 1 < len(tokens) else None
                if _selects_from_expression(tokens, i):
                    self._check_attribute_call(sql, tokens, i)
                    continue
                if _opens(following):
                    self._check_called(sql, tokens, i, named)
                    continue
                refused = self._refused_name(tokens, i)
                if refused is not None:
                    raise _refuse(*refused, _fragment(sql, token.start))

    def _refused_name(self, tokens: list[Token], i: int) -> tuple[str, str] | None:
        """Why a name (not a call) is refused: a reg* cast, FOR UPDATE/SHARE, INTO outside
        INSERT and MERGE, and names of the kit and of the catalogs wherever they stand (a
        relation sqlglot would read as something else included)."""
        token = tokens[i]
        word = token.text if token.kind == "word" else ""
        following = tokens[i + 1] if i + 1 < len(tokens) else None
        if token.text.lower() in _REG_TYPES:
            return ("cast_not_allowed", f"{token.text} reads the catalog")
        if word == "for" and _locks(following):
            return ("locking_clause", "row locks are not accepted")
        if word == "into" and not (i and _is_word(tokens[i - 1], "insert", "merge")):
            return ("select_into", "SELECT INTO creates a table")
        name = token.text.lower()
        if name in self._configured or _qualifies_a_call(tokens, i):
            return None
        qualifier = following is not None and _is_dot(following)
        if name == _KIT_SCHEMA or name in self._kit_names:
            return ("kit_object", "agentcow's own objects are not accepted")
        if qualifier and (name in self._kit_schemas or name.endswith(OVERLAY_SUFFIX)):
            return ("kit_object", "agentcow's own objects are not accepted")
        if name in _SYSTEM_SCHEMAS or name.startswith("pg_"):
            return ("system_catalog", "system catalogs are not accepted")
        return None

    def _check_function_column(self, node: exp.Column, columns: set[str]) -> None:
        """``s.name``, ``s`` a function in FROM: unless ``name`` is one of its columns,
        PostgreSQL calls ``name(s)`` (``FROM unnest(array['…']) s`` then
        ``s.current_setting``)."""
        name = node.name.lower()
        if name in columns or name in SAFE_FUNCTIONS or name in self.functions:
            return
        raise _refuse(
            "function_not_allowed",
            f"{node.table}.{node.name} may call the function {name}, which is not allowed",
            node.sql(dialect="postgres") + "; hint: name the columns, as in AS s(x)",
        )

    def _check_attribute_call(self, sql: str, tokens: list[Token], i: int) -> None:
        """``(expr).name`` may call any one-argument function (``('…'::text).current_setting``),
        so the name must be one the agent may call; a field is selected with a table alias."""
        name = tokens[i].text.lower()
        if name in SAFE_FUNCTIONS or name in self.functions:
            return
        raise _refuse(
            "function_not_allowed",
            f"(expression).{name} may call the function {name}, which is not allowed; "
            "select a field through a table alias instead",
            _fragment(sql, tokens[i].start),
        )

    def _check_called(
        self, sql: str, tokens: list[Token], i: int, named: collections.Counter[str]
    ) -> None:
        token = tokens[i]
        name = token.text.lower()
        if token.kind == "word" and name == "operator":
            raise _refuse(
                "operator_not_allowed",
                "OPERATOR() is not accepted",
                _call_text(sql, tokens, i, i + 1),
            )
        parts = [name]
        j = i
        while j >= 2 and _is_dot(tokens[j - 1]) and tokens[j - 2].kind in ("word", "qident"):
            parts.insert(0, tokens[j - 2].text.lower())
            j -= 2
        shown = _call_text(sql, tokens, j, i + 1)
        if len(parts) == 1:
            if token.kind == "word" and name in _STRUCTURAL:
                return
            if name in SAFE_FUNCTIONS or name in self.functions or _take(named, name):
                return
        elif len(parts) == 2 and (
            self._function_allowed(parts[0], parts[1]) or _take(named, parts[1])
        ):
            return
        raise _refuse("function_not_allowed", f"function {'.'.join(parts)} is not allowed", shown)


def _function_aliases(tree: exp.Expr) -> dict[str, set[str]]:
    """The names functions in FROM go by (their alias, else their own name), each with the
    column names it may be followed by: those of its alias, its own and its name's, and
    those of ``json_each``-like functions and WITH ORDINALITY."""
    found: dict[str, set[str]] = {}
    for item in tree.walk():
        if isinstance(item, exp.Table) and not isinstance(item.this, exp.Identifier):
            function = item.this
        elif isinstance(item, exp.Unnest) and (
            isinstance(item.parent, (exp.From, exp.Join)) or item.arg_key == "using"
        ):
            function = item
        elif isinstance(item, exp.Lateral) and not isinstance(item.this, exp.Subquery):
            function = item.this
        else:
            continue
        # ROWS FROM (f(…), g(…)) has no single function: any of them may name it
        called = {_written_name(f) for f in ([function] if function else item.find_all(exp.Func))}
        alias = item.args.get("alias")
        columns = called | {"key", "value", "ordinality"}
        names = called
        if isinstance(alias, exp.TableAlias):
            columns |= {c.name.lower() for c in alias.columns} | {alias.name.lower()}
            names = {alias.name.lower()} if alias.name else called
        for name in names:
            found.setdefault(name, set()).update(columns)
    return found


def _written_name(function: exp.Expr) -> str:
    """A function's name as PostgreSQL reads it (sqlglot's ``Lower`` is ``lower``; a
    qualified call's name is its last part): the default alias of a function in FROM."""
    written = function.sql(dialect="postgres").split("(", 1)[0]
    return written.rsplit(".", 1)[-1].strip().strip('"').lower()


def _selects_from_expression(tokens: list[Token], i: int) -> bool:
    """Whether the name at ``i`` follows ``).`` or ``].``: PostgreSQL reads ``(x).f`` as a
    field of ``x`` or, failing that, as the call ``f(x)`` (attribute notation)."""
    return (
        i >= 2
        and _is_dot(tokens[i - 1])
        and tokens[i - 2].kind == "punct"
        and tokens[i - 2].text in (")", "]")
    )


def _qualifies_a_call(tokens: list[Token], i: int) -> bool:
    """Whether the name at ``i`` qualifies a call (``pg_catalog.lower(``): the call is
    checked as a whole, at its name."""
    j = i
    while (
        j + 2 < len(tokens) and _is_dot(tokens[j + 1]) and tokens[j + 2].kind in ("word", "qident")
    ):
        j += 2
    return j > i and _opens(tokens[j + 1] if j + 1 < len(tokens) else None)


def _is_word(token: Token, *words: str) -> bool:
    return token.kind == "word" and token.text in words


def _is_dot(token: Token) -> bool:
    return token.kind == "punct" and token.text == "."


def _call_text(sql: str, tokens: list[Token], first: int, opening: int) -> str:
    """The text of a call, from its name to the parenthesis that closes its arguments."""
    depth = 0
    for token in tokens[opening:]:
        if token.kind == "punct" and token.text in ("(", ")"):
            depth += 1 if token.text == "(" else -1
            if depth == 0:
                return " ".join(sql[tokens[first].start : token.start + 1].split())
    return _fragment(sql, tokens[first].start)


def _numbered_parameters(sql: str) -> str:
    """psycopg's placeholders as the ``$n`` psycopg sends for them. Sent as they are (by
    another driver), PostgreSQL reads ``%(name)s`` as a modulo by a column and a word, so
    reading it as a parameter hides no call, string or comment: only a plain name."""
    count = 0

    def number(match: re.Match[str]) -> str:
        nonlocal count
        if match.group() == "%%":
            return "%%"
        count += 1
        return f"${count}"

    return _PSYCOPG_PLACEHOLDER.sub(number, sql)


def _locks(token: Token | None) -> bool:
    return token is not None and token.kind == "word" and token.text in _LOCK_STRENGTHS


def _opens(token: Token | None) -> bool:
    return token is not None and token.kind == "punct" and token.text == "("


def _signature(token: Token) -> tuple[str, str]:
    if token.kind == "string":
        return ("string", "")
    return (token.kind, token.text)


def _sqlglot_tokens(sql: str) -> list[SqlglotToken]:
    try:
        return _POSTGRES.tokenize(sql)
    except sqlglot.errors.SqlglotError as error:
        message = " ".join(str(error).split())[:200]
        raise _refuse("parse_error", f"the statement cannot be read ({message})", sql) from None


def _sqlglot_signatures(found: list[SqlglotToken]) -> Iterator[tuple[str, str]]:
    for t in found:
        if t.token_type in _STRING_TOKENS:
            yield ("string", "")
        elif t.token_type == TokenType.IDENTIFIER:
            yield ("qident", t.text)
        elif _WORD_TEXT.fullmatch(t.text):
            for word in t.text.split():
                yield ("word", word.lower())


def _write_targets(tree: exp.Expr) -> Iterator[exp.Table]:
    """The tables INSERT, UPDATE, DELETE and MERGE write (never a CTE in PostgreSQL)."""
    for node in tree.walk():
        if isinstance(node, exp.Insert | exp.Update | exp.Delete | exp.Merge):
            target = node.this
            if isinstance(target, exp.Schema):
                target = target.this
            if isinstance(target, exp.Table):
                yield target


def _is_cte(table: exp.Table, name: str) -> bool:
    """Whether a bare name refers to a CTE in scope: of an enclosing WITH, one defined before
    the CTE the name is in (or the CTE itself, under RECURSIVE), or any for the main query."""
    child: exp.Expr = table
    node = table.parent
    while node is not None:
        with_ = node.args.get("with_") or node.args.get("with")
        if isinstance(with_, exp.With):
            ctes = list(with_.expressions)
            names = [_name(c.args["alias"].this) for c in ctes if c.args.get("alias")]
            if child is with_:
                inside = _enclosing_cte(table, with_)
                index = ctes.index(inside) if inside in ctes else len(ctes)
                visible = names[: index + 1] if with_.args.get("recursive") else names[:index]
            else:
                visible = names
            if name in visible:
                return True
        child = node
        node = node.parent
    return False


def _enclosing_cte(table: exp.Expr, with_: exp.With) -> exp.Expr | None:
    node: exp.Expr | None = table
    while node is not None and node.parent is not with_:
        node = node.parent
    return node


def _relation_names(tree: exp.Expr) -> collections.Counter[str]:
    """Names a ``(`` may follow that are no call, as often as it may: tables with a column
    list, aliases and CTEs with one. Counted, so that a CTE or alias named like a function
    (``WITH current_schemas(a) AS …``) does not let calls of that name through."""
    names: collections.Counter[str] = collections.Counter()
    for node in tree.walk():
        if isinstance(node, exp.Schema) and isinstance(node.this, exp.Table):
            table = node.this
            names[(table.alias or table.name).lower()] += 1
            if table.alias:
                names[table.name.lower()] += 1
        elif isinstance(node, exp.TableAlias) and node.columns and node.name:
            names[node.name.lower()] += 1
    return names


def _take(named: collections.Counter[str], name: str) -> bool:
    """Whether ``name`` is one more of the relation names a ``(`` may follow."""
    if named[name] <= 0:
        return False
    named[name] -= 1
    return True


async def guard_from_catalog(
    executor: Executor,
    *,
    read_only_tables: Iterable[str] = (),
    functions: Iterable[str] = (),
) -> SqlGuard:
    """A guard for every COW table the kit's catalog lists: by bare name, and qualified
        with its schema in the rename layout (in the overlay layout the qualified name is the
        real table's, so only the bare name is allowed). The connection must read strings as
    the guard does (``standard_conforming_strings`` on), else :class:`GuardSetupError`."""
    [(strings,)] = await executor.execute(render("guard_strings.sql"))
    if strings != "on":
        raise GuardSetupError(
            "standard_conforming_strings is off for this connection: the guard reads strings "
            "as PostgreSQL does with it on (its default); turn it on for the agents' role"
        )
    names: list[str] = []
    for schema, table, overlay in await executor.execute(render("guard_tables.sql")):
        names.append(str(table))
        if overlay is None:
            names.append(f"{schema}.{table}")
    return SqlGuard(
        cow_tables=names, read_only_tables=read_only_tables, functions=functions, schemas=()
    )


def sql_text(statement: object) -> str:
    """The SQL text of a statement: a string, or a SQLAlchemy ``text()`` or Core statement
    (compiled for PostgreSQL); anything else is refused."""
    if isinstance(statement, str):
        return statement
    sqlalchemy = sys.modules.get("sqlalchemy")
    if sqlalchemy is not None:
        if isinstance(statement, sqlalchemy.TextClause):
            return str(statement.text)
        if isinstance(statement, sqlalchemy.ClauseElement):
            from sqlalchemy.dialects import postgresql

            return str(statement.compile(dialect=postgresql.dialect()))  # type: ignore[no-untyped-call]
    raise _refuse(
        "not_sql_text",
        f"a {type(statement).__name__} is not SQL text the guard can check",
        repr(statement)[:80],
    )
