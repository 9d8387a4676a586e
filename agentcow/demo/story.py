"""The demo from start to end: a shop, an agent, a review, a commit of the good half, an undo.

Everything happens in a scratch schema of the server given (a unique name), which is dropped
afterwards whatever happens, Ctrl-C included; the kit is deployed only when the database has
none, and then removed again. :func:`run_demo` narrates each step on a Rich console and
returns what happened as a JSON-ready report (``agentcow demo --json``).
"""

from __future__ import annotations

import contextlib
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from typing import TYPE_CHECKING, Any

import asyncpg
from rich.console import Console
from rich.table import Table
from rich.text import Text

from agentcow.adapters.asyncpg import AsyncpgExecutor
from agentcow.agent.session import CowSession
from agentcow.catalog import kit_version, registered_tables
from agentcow.conflicts import Conflict
from agentcow.demo import models
from agentcow.demo.agent import CONTESTED_ORDER, OTHER_TENANT, TENANT, Action, script
from agentcow.deploy import deploy_cow_functions
from agentcow.errors import KitVersionError
from agentcow.identifiers import quote_ident, uuid_array_literal
from agentcow.review.diff import ChangeSet
from agentcow.review.encoding import value_text
from agentcow.review.policy import Policy, PolicyReport
from agentcow.review.reviewer import Reviewer
from agentcow.schema import disable_cow_schema, enable_cow_schema
from agentcow.templates import render
from agentcow.undo import undo
from agentcow.versions import KIT_VERSION

TABLES = ("tenants", "customers", "products", "orders", "order_items")
SHOWN = ("customers", "products", "orders", "order_items")
Rows = dict[str, list[dict[str, Any]]]
if TYPE_CHECKING:
    Connection = asyncpg.Connection[asyncpg.Record]


@dataclass(frozen=True)
class Where:
    """Where the demo runs: a DSN (a superuser's, or a role with CREATE on the database)
    and how to describe the server to the user."""

    dsn: str
    server: str
    #: When the demo began (``time.monotonic()``): server start included in its time.
    started: float


def _resource(name: str) -> str:
    return files("agentcow.demo").joinpath(name).read_text(encoding="utf-8")


class _Narrator:
    """The demo's voice: numbered steps, one line per fact."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._step = 0

    def step(self, title: str, note: str = "") -> None:
        self._step += 1
        self.console.print()
        self.console.print(
            Text.assemble((f"{self._step}  {title}", "bold magenta"), (f"  {note}", "dim"))
        )

    def say(self, *parts: str | tuple[str, str]) -> None:
        self.console.print(Text.assemble("   ", *parts))


async def run_demo(where: Where, console: Console) -> dict[str, Any]:
    """Run the whole demo on ``where``; narrate on ``console``; return the report."""
    schema = f"agentcow_demo_{secrets.token_hex(4)}"
    say = _Narrator(console)
    console.print(
        Text.assemble(
            ("agentcow demo", "bold"),
            "  an AI agent edits a live shop database; nothing it writes reaches production "
            "until a reviewer commits it",
        )
    )
    report: dict[str, Any] = {"schema": schema, "server": where.server, "tenant": TENANT}
    async with _scratch(where.dsn, schema, report) as scratch:
        await _story(where, schema, scratch, say, report)
    report["seconds"] = round(time.monotonic() - where.started, 2)
    kit = report["kit"]
    left = "dropped" + (", the kit removed" if kit["deployed_by_demo"] else "")
    say.console.print()
    say.console.print(
        Text.assemble(
            ("Done", "bold green"),
            f" in {report['seconds']:.1f} s. Schema {schema} {left}.",
            *(f" {note}" for note in report["cleanup_notes"]),
        )
    )
    return report


@dataclass
class _Scratch:
    """What the demo made, for its cleanup: its connections and the sessions it entered."""

    connections: _Connections
    sessions: list[uuid.UUID] = field(default_factory=list)


@contextlib.asynccontextmanager
async def _scratch(dsn: str, schema: str, report: dict[str, Any]) -> AsyncIterator[_Scratch]:
    """The scratch schema (and the kit, if the database has none) for the block; afterwards
    every connection the demo opened is ended and what it made is dropped, also when the
    block failed or was cancelled (Ctrl-C). Only what it made: a schema or kit it could not
    create (someone's ``agentcow`` schema that is no kit) is left alone."""
    scratch = _Scratch(_Connections(dsn, schema))
    kit_deployed = created = False
    try:
        db = AsyncpgExecutor(await scratch.connections.open(search_path=False))
        installed = await kit_version(db)
        if installed is not None and installed != KIT_VERSION:
            raise KitVersionError(
                f"this database has agentcow kit {installed}, the demo needs {KIT_VERSION}: "
                "run the demo on another database (it never upgrades a kit it did not deploy)"
            )
        report["kit"] = {
            "version": KIT_VERSION,
            "deployed_by_demo": installed is None,
            "removed": False,
        }
        if installed is None:
            await deploy_cow_functions(db)
            kit_deployed = True
        await db.execute(render("demo_scratch.sql", step="create", schema=schema))
        created = True
        yield scratch
    finally:
        scratch.connections.terminate()
        if created or kit_deployed:
            report["cleanup_notes"] = await _clean_up(
                dsn,
                schema if created else None,
                drop_kit=kit_deployed,
                sessions=scratch.sessions,
            )
            report["kit"]["removed"] = kit_deployed


async def _clean_up(
    dsn: str, schema: str | None, *, drop_kit: bool, sessions: Sequence[uuid.UUID]
) -> list[str]:
    """Drop the scratch schema and the kit the demo deployed; with a kit that was there
    before, unregister the demo's tables first and delete its sessions' records. Returns
    what it could not remove, as sentences for the user."""
    conn = await asyncpg.connect(dsn)
    try:
        db = AsyncpgExecutor(conn)
        if schema is not None:
            if not drop_kit and await registered_tables(db, schema):
                await disable_cow_schema(db, schema, discard_changes=True)
            await db.execute(render("demo_scratch.sql", step="drop", schema=schema))
        if drop_kit:
            await db.execute(render("demo_scratch.sql", step="drop_kit"))
            return []
        if not sessions:
            return []
        try:
            await db.execute(
                render(
                    "demo_scratch.sql",
                    step="forget",
                    schema=schema,
                    sessions=uuid_array_literal(sessions, "session id"),
                )
            )
        except asyncpg.InsufficientPrivilegeError:
            return [
                f"The kit's registry and history keep the records of the demo's "
                f"{len(sessions)} session(s): only the kit's owner may delete them."
            ]
        return []
    finally:
        await conn.close()


class _Connections:
    """The demo's connections (the application's, the agent's, the reviewer's), each with
    the scratch schema as its search_path from the start, so that ``DISCARD ALL`` (which
    CowSession runs around every call) keeps it."""

    def __init__(self, dsn: str, schema: str) -> None:
        self._dsn = dsn
        self._schema = schema
        self._open: list[Connection] = []

    async def open(self, *, search_path: bool = True) -> Connection:
        path = str.__str__(quote_ident(self._schema))  # a plain str: asyncpg encodes it
        settings = {"search_path": path} if search_path else {}
        conn = await asyncpg.connect(self._dsn, server_settings=settings)
        self._open.append(conn)
        return conn

    def terminate(self) -> None:
        """End every connection at once (a cancelled statement may still hold locks the
        cleanup needs)."""
        for conn in self._open:
            conn.terminate()


async def _rows(conn: Connection, schema: str) -> Rows:
    """Every table as production sees it (no session)."""
    return {
        table: [
            dict(row)
            for row in await conn.fetch(
                render("demo_shop.sql", step="rows", schema=schema, table=table)
            )
        ]
        for table in TABLES
    }


async def _story(
    where: Where,
    schema: str,
    scratch: _Scratch,
    say: _Narrator,
    report: dict[str, Any],
) -> None:
    connections = scratch.connections
    production = await connections.open()
    db = AsyncpgExecutor(production)

    # 1. The shop
    say.step("The shop", "a small shop two tenants share, in PostgreSQL")
    version = ".".join(map(str, production.get_server_version()[:2]))
    say.say(f"PostgreSQL {version}, {where.server}")
    if report["kit"]["deployed_by_demo"]:
        say.say(f"kit {KIT_VERSION} deployed in schema agentcow by the demo (removed afterwards)")
    else:
        say.say(f"kit {KIT_VERSION} already deployed in schema agentcow: used, and left as it is")
    await production.execute(_resource("shop.sql"))
    enabled = await enable_cow_schema(
        db, schema, tenant_columns="tenant_id", read_only_for_tenants=["tenants"]
    )
    before = await _rows(production, schema)
    counts = ", ".join(f"{len(before[t])} {t.replace('_', ' ')}" for t in TABLES)
    say.say(f"schema {schema}: {counts}")
    say.say(
        f"copy-on-write on {', '.join(sorted(enabled))}; each row's tenant in tenant_id; "
        "tenants is read-only for tenant sessions"
    )

    # 2. The agent
    agent = CowSession(await connections.open(), tenant_id=TENANT, label="agentcow demo")
    scratch.sessions.append(agent.session_id)
    report["session_id"] = str(agent.session_id)
    say.step(
        "The agent",
        f"session {agent.session_id} bound to tenant {TENANT}; every statement through "
        "the SQL guard (CowSession)",
    )
    actions = script()
    for action in actions:
        await action.perform(agent)
        _narrate_action(say, action)
        if action.key == "conflict":
            await production.execute(
                render("demo_shop.sql", step="ship", schema=schema, order=CONTESTED_ORDER)
            )
            say.say(
                ("   production, meanwhile: ", "bold"),
                f"ships order #{CONTESTED_ORDER} (another connection, no session)",
            )
    report["actions"] = [_action_data(action) for action in actions]
    during = await _rows(production, schema)
    expected = _with_shipped(before)
    report["production_untouched_by_agent"] = during == expected
    say.say(
        ("production so far: ", "bold"),
        f"none of the agent's writes, only its own shipment of order #{CONTESTED_ORDER}"
        if during == expected
        else "CHANGED by the agent (this should never happen)",
    )

    # 3. The review
    names = {action.operation_id: action.key for action in actions}
    titles = {action.operation_id: action.title for action in actions}
    policy = Policy.from_toml(_resource("policy.toml"))
    review_conn = await connections.open()
    reviewer = Reviewer(
        review_conn,
        agent.session_id,
        schema=schema,
        policy=policy,
        tenant_id=TENANT,
        registry=models.registry,
    )
    say.step("The review", "what each operation wrote, the diff, the gates, conflicts")
    say.say(
        "gates: the team's Pydantic models (agentcow/demo/models.py) and policy "
        "(agentcow/demo/policy.toml: shipped orders stay shipped; order lines stay in their "
        "order's tenant)"
    )
    operations = await reviewer.operations()
    dependencies = await reviewer.dependencies()
    changes = await reviewer.diff()
    judged = await reviewer.check()
    conflicts = await reviewer.conflicts()
    flagged = _flagged(changes, judged, conflicts)
    say.console.print(_operations_table(operations, titles, flagged))
    for needed, needing in dependencies:
        say.say(f"“{titles[needing]}” needs “{titles[needed]}” (it uses the row that one wrote)")
    say.console.print()
    changes.render(say.console, judgement=judged)
    for check in judged.checks:
        state = "passed" if check.passed else f"FAILED ({check.row_count} rows)"
        say.say(f"check “{check.name}”: {state}")
    for conflict in conflicts:
        say.say(("conflict ", "bold red"), _conflict_text(conflict))
    report["review"] = {
        "operations": [
            {
                "action": names[op.operation_id],
                "tables": list(op.tables),
                "inserted": op.inserted,
                "updated": op.updated,
                "deleted": op.deleted,
                "findings": flagged.get(op.operation_id, []),
            }
            for op in operations
        ],
        "dependencies": [[names[a], names[b]] for a, b in dependencies],
        "summary": changes.summary,
        "decision": judged.decision.value,
        "reasons": judged.reasons,
        "blocked_rows": [
            {
                "table": row.table,
                "key": row.pk,
                "findings": found,
                "actions": [names[op] for op in row.operations],
            }
            for row in changes.diffs
            if (found := judged.row_findings(row))
        ],
        "conflicts": [
            {
                "table": c.table,
                "key": c.key,
                "kind": c.kind,
                "columns": list(c.columns),
                "base_then": c.base_then,
                "base_now": c.base_now,
                "session": c.session,
            }
            for c in conflicts
        ],
    }

    # 4. Commit the good operations
    good = [op.operation_id for op in operations if op.operation_id not in flagged]
    say.step("Commit the good operations", "cherry-picked, with the reviewed fingerprint")
    say.say("chosen: " + ", ".join(f"“{titles[op]}”" for op in good) + " (nothing flagged them)")
    chosen = await reviewer.diff(good)
    verdict = await reviewer.check(good)
    say.say(f"policy on that choice: {verdict.decision.value}")
    say.say(
        f"fingerprint {chosen.fingerprint[:16]}…: the commit applies exactly the "
        f"{len(chosen.diffs)} rows reviewed, or nothing"
    )
    applied = await reviewer.commit(good)
    say.say(("committed ", "bold green"), _counts(applied))
    rest = Reviewer(review_conn, agent.session_id, schema=schema)
    discarded = await rest.discard()
    say.say(
        ("discarded ", "bold"),
        f"the rest ({_counts(discarded)}): flagged, it never reached production",
    )
    report["commit"] = {
        "actions": [names[op] for op in good],
        "fingerprint": chosen.fingerprint,
        "decision": verdict.decision.value,
        "rows": applied,
    }
    report["discard"] = {"rows": discarded}

    # 5. Undo
    restock = next(a for a in actions if a.key == "restock")
    say.step("Undo one committed operation", "history keeps each committed row's before-image")
    stock_then = _stock(await _rows(production, schema), "GRND-01")
    undone = await undo(
        AsyncpgExecutor(review_conn),
        agent.session_id,
        operation_ids=[restock.operation_id],
        schema=schema,
    )
    scratch.sessions.append(undone.undo_session_id)
    after = await _rows(production, schema)
    say.say(
        f"undid “{restock.title}”: {_counts(undone.rows)} back; burr grinder stock "
        f"{stock_then} → {_stock(after, 'GRND-01')} (undo session {undone.undo_session_id})"
    )
    report["undo"] = {
        "action": restock.key,
        "rows": undone.rows,
        "undo_session_id": str(undone.undo_session_id),
    }

    # 6. The final base
    say.step("Production now", f"tenant {TENANT}'s rows; + new, ~ changed since the start")
    for table in SHOWN:
        say.console.print(_table_view(table, before[table], after[table]))
    others_then = _tenant_rows(before, OTHER_TENANT)
    others_now = _tenant_rows(after, OTHER_TENANT)
    report["other_tenant_unchanged"] = others_then == others_now
    say.say(
        f"{OTHER_TENANT}: "
        + (
            f"all {sum(map(len, others_now.values()))} rows exactly as before"
            if others_then == others_now
            else "CHANGED (this should never happen)"
        )
    )
    report["final"] = after
    say.console.print()
    say.console.print(
        Text(
            "Here the agent's connection logs in as the DSN's role with agent-cow's session "
            "settings; in production give agents a hardened role and bind each transaction "
            "with a key (README: Security model).",
            style="dim",
        )
    )


def _with_shipped(rows: Rows) -> Rows:
    """``rows`` after production shipped the contested order."""
    return {
        table: [
            {**row, "status": "shipped"}
            if table == "orders" and row["id"] == CONTESTED_ORDER
            else row
            for row in found
        ]
        for table, found in rows.items()
    }


def _tenant_rows(rows: Rows, tenant: str) -> Rows:
    return {
        table: [row for row in found if row.get("tenant_id") == tenant]
        for table, found in rows.items()
    }


def _stock(rows: Rows, sku: str) -> int:
    return int(next(row["stock"] for row in rows["products"] if row["sku"] == sku))


def _counts(per_table: dict[str, int]) -> str:
    return ", ".join(f"{table} {n}" for table, n in per_table.items()) or "nothing"


def _action_data(action: Action) -> dict[str, Any]:
    return {
        "action": action.key,
        "title": action.title,
        "operation_id": str(action.operation_id),
        "ok": action.ok,
        "outcome": action.outcome,
        "refused_by": action.refused_by,
        "sqlstate": action.sqlstate,
        "sql": action.sql,
    }


def _narrate_action(say: _Narrator, action: Action) -> None:
    if action.ok:
        say.say(("✓ ", "green"), (f"{action.title:<34}", "bold"), action.outcome)
    else:
        say.say(
            ("✗ ", "bold red"),
            (f"{action.title:<34}", "bold"),
            (f"refused by {action.refused_by}: {action.outcome}", "red"),
        )
    for statement in action.sql:
        say.say(("    " + statement, "cyan"))


def _flagged(
    changes: ChangeSet, judged: PolicyReport, conflicts: Sequence[Conflict]
) -> dict[uuid.UUID, list[str]]:
    """Per operation, what holds it back: findings on the rows it wrote (models, rules),
    and conflicts with production on them."""
    flagged: dict[uuid.UUID, list[str]] = {}
    contested = {(c.table, _key(c.key)) for c in conflicts}
    for row in changes.diffs:
        found = list(judged.row_findings(row) or [])
        if (row.table, _key(row.pk)) in contested:
            found.append("conflicts with a production write")
        for op in row.operations if found else ():
            flagged.setdefault(op, []).extend(f"{row.table} {_key(row.pk)}: {f}" for f in found)
    return flagged


def _key(key: dict[str, Any]) -> str:
    return ", ".join(f"{column}={value_text(value)}" for column, value in key.items())


def _conflict_text(conflict: Conflict) -> str:
    columns = conflict.columns or tuple((conflict.session or {}).keys())
    parts = []
    for column in columns:
        then = (conflict.base_then or {}).get(column)
        now = (conflict.base_now or {}).get(column)
        mine = (conflict.session or {}).get(column)
        parts.append(
            f"{column} was {then} when the agent made it {mine}; production has since made it {now}"
        )
    return (
        f"{conflict.table} {_key(conflict.key)}: {'; '.join(parts)}. Committing the agent's "
        "version would overwrite production's"
    )


def _operations_table(
    operations: Sequence[Any], titles: dict[uuid.UUID, str], flagged: dict[uuid.UUID, list[str]]
) -> Table:
    table = Table(box=None, padding=(0, 1), pad_edge=False, show_edge=False)
    table.add_column("   #", justify="right")
    table.add_column("operation")
    table.add_column("+", justify="right", style="green")
    table.add_column("~", justify="right", style="yellow")
    table.add_column("-", justify="right", style="red")
    table.add_column("review")
    for number, op in enumerate(operations, 1):
        found = flagged.get(op.operation_id)
        table.add_row(
            f"   {number}",
            titles[op.operation_id],
            str(op.inserted),
            str(op.updated),
            str(op.deleted),
            Text("flagged", style="bold red") if found else Text("ok", style="green"),
        )
    return table


def _table_view(name: str, before: list[dict[str, Any]], after: list[dict[str, Any]]) -> Table:
    """A table's rows of the demo's tenant, new and changed rows marked."""
    then = {row["id"]: row for row in before}
    table = Table(
        title=f"   {name}", title_justify="left", box=None, padding=(0, 1), pad_edge=False
    )
    rows = [row for row in after if row["tenant_id"] == TENANT]
    columns = [c for c in (rows[0] if rows else {}) if c != "tenant_id"]
    table.add_column("   ")
    for column in columns:
        table.add_column(column)
    for row in rows:
        old = then.get(row["id"])
        mark, style = ("+", "green") if old is None else ("~", "yellow") if old != row else ("", "")
        table.add_row(
            f"   {mark}",
            *(value_text(row[c]) for c in columns),
            style=style,
        )
    return table


__all__ = ["Where", "run_demo"]
