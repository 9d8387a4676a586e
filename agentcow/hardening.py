"""Role hardening: agent roles that reach production only through a COW schema's views, and
reviewer roles that can inspect and commit what agents wrote.

``check_cow_privileges`` reads the catalogs and reports every privilege an agent role holds
beyond what its sessions need (and what a reviewer lacks), each with why it matters and the
SQL that removes it. ``harden_cow_schema`` grants what agents and reviewers need, applies the
fixes that concern those roles alone, and checks again: what it could not fix (grants to
PUBLIC or to other roles, role attributes only a superuser may change, objects agents own)
is left for an administrator, in the report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agentcow.catalog import require_kit
from agentcow.errors import UnknownRoleError
from agentcow.executor import Executor
from agentcow.identifiers import quote_ident
from agentcow.script import run_pinned
from agentcow.templates import render, render_statements

#: Kit functions only the owners of COW tables (and so reviewers) may run: they end, record,
#: lock for or prune what commits write, or keep the triggers' state.
OWNER_ONLY_FUNCTIONS = (
    "agentcow.end_session(uuid, boolean, boolean, oid[])",
    "agentcow.record_undo(uuid, uuid, oid[])",
    "agentcow.discard_idle_sessions(name, interval)",
    "agentcow.lock_for_commit(uuid, regclass[])",
    "agentcow.lock_session(uuid, boolean)",
    "agentcow.prune_history()",
    "agentcow.set_table_layout(name, name, text)",
    "agentcow.unregister_table(name, name)",
    "agentcow.grant_owner_functions(name)",
    "agentcow.owns_cow_tables(oid[])",
    "agentcow.share_session(uuid)",
    "agentcow.remember(text, bigint)",
    "agentcow.recall(text)",
    "agentcow.take(text)",
    "agentcow.limits_of(uuid, name)",
    "agentcow.may_set_limits(boolean)",
    "agentcow.inserted_versions()",
    "agentcow.add_agent_role(name)",
    "agentcow.remove_agent_role(name)",
    "agentcow.refresh_session_functions()",
)

#: What the kit itself grants PUBLIC on its relations (the rest of agentcow's are private).
KIT_PUBLIC_GRANTS = (
    ("agentcow.kit", "SELECT"),
    ("agentcow.cow_tables", "SELECT"),
    ("agentcow.settings", "SELECT"),
    ("agentcow.session_binding", "SELECT"),
    ("agentcow.session_row_limit", "SELECT"),
    ("agentcow.change_seq", "SELECT"),
    ("agentcow.change_seq", "USAGE"),
    # row-level security lets each role reach the history of the tables it owns only
    ("agentcow.history", "SELECT"),
    ("agentcow.history", "INSERT"),
    ("agentcow.history", "UPDATE"),
    ("agentcow.history", "DELETE"),
)

_PRIVILEGE_RISKS = {
    "TRIGGER": "a trigger the agent hangs on it runs for every writer, and as the owner when "
    "the owner's code writes",
    "REFERENCES": "a foreign key the agent creates to it pins its rows: production can no "
    "longer delete or re-key them",
    "TRUNCATE": "TRUNCATE goes around every trigger: it empties the relation itself",
    "MAINTAIN": "VACUUM FULL, CLUSTER, REINDEX, REFRESH and LOCK TABLE take locks that stop "
    "every session and production",
}

_ATTRIBUTE_RISKS = {
    "SUPERUSER": "a superuser bypasses every privilege check",
    "CREATEROLE": "it can create roles and grant itself their memberships",
    "BYPASSRLS": "it bypasses row-level security, which keeps the kit's history and state "
    "per table owner",
    "REPLICATION": "it can stream the whole database, every session's rows included",
    "CREATEDB": "it can create databases, outside every check of this one",
}

_WHY = {
    "base_table": "the table holds production's rows: with it the agent reads or writes "
    "production outside its session",
    "change_table": "the change table holds every session's versions: the agent could read "
    "other sessions' rows or forge versions",
    "kit_table": "the kit's own tables (session registry, bindings, limits, state) are "
    "written and read by the kit's functions only",
    "sequence_update": "setval moves the sequence production draws its ids from",
    "production_write": "the relation is not COW-enabled: a write reaches production at once",
    "kit_function": "only the owners of COW tables may run it (commit, discard, undo, the "
    "session records, the triggers' state)",
    "definer_function": "it runs as its owner: it reads and writes tables as the owner, "
    "outside the session and its tenant",
    "schema_create": "what the agent creates there (functions, operators, types, tables) can "
    "capture names other roles resolve, and outlives the session",
    "database_create": "CREATE on the database lets the agent create schemas, then any object",
    "default_privilege": "tables or sequences created later would be granted to the agent "
    "before COW is enabled on them",
    "membership": "the agent can act as that role (SET ROLE, or its inherited privileges)",
    "role_setting": "a role setting applies to every connection the role opens: it changes "
    "how the agent's and the kit's SQL resolve names, or what a session is",
    "ownership": "an owner holds every privilege on the object, and can drop it, alter it or "
    "grant it",
    "not_registered": "an agent role not registered (agentcow.add_agent_role) is in whatever "
    "session app.session_id names, which its own SQL can change",
    "reviewer_not_owner": "commit, discard, undo and list_sessions act as the tables' owner: "
    "a reviewer must be able to act as every owner of the schema's COW tables",
}

# Findings harden_cow_schema fixes when the grant names the role itself (role_setting only
# when asked); the others are an administrator's decision, and stay in the report.
_FIXED_BY_HARDEN = frozenset(
    {
        "base_table",
        "change_table",
        "view_privilege",
        "kit_table",
        "dangerous_privilege",
        "sequence_update",
        "production_write",
        "kit_function",
        "definer_function",
        "schema_create",
        "database_create",
        "default_privilege",
        "membership",
        "role_attribute",
        "not_registered",
        "reviewer_not_owner",
    }
)


_FINDING_COLUMNS = (
    "kind pg_catalog.text, role pg_catalog.text, object pg_catalog.text, "
    "privilege pg_catalog.text, via pg_catalog.text, grantee pg_catalog.text, fix pg_catalog.text"
)


@dataclass(frozen=True)
class PrivilegeFinding:
    """One privilege a role holds beyond what it needs (or, for a reviewer, lacks).

    ``kind`` names the rule (``base_table``, ``view_privilege``, ``schema_create``, ...),
    ``object`` what it is held on, ``via`` how the role holds it (``direct``, ``PUBLIC``,
    ``member of <role>``, or for memberships which dangerous role it reaches), ``grantee``
    the role the grant names, whom ``fix`` changes (``None``: PUBLIC, every role)."""

    kind: str
    role: str
    object: str
    privilege: str
    via: str
    why: str
    fix: str
    grantee: str | None = None

    def __str__(self) -> str:
        where = f"{self.privilege} on {self.object} ({self.via})"
        return f"{self.role}: {where}: {self.why}. Fix: {self.fix}"


@dataclass(frozen=True)
class HardeningReport:
    """What :func:`harden_cow_schema` did: the statements it ran, those that failed (with
    the server's error), and the findings left afterwards (``ok`` when none)."""

    schema: str
    applied: tuple[str, ...]
    failed: tuple[tuple[str, str], ...]
    remaining: tuple[PrivilegeFinding, ...]

    @property
    def ok(self) -> bool:
        return not self.remaining and not self.failed


def _why(kind: str, privilege: str) -> str:
    if kind in ("view_privilege", "dangerous_privilege"):
        return _PRIVILEGE_RISKS.get(privilege, f"{privilege} is more than an agent needs")
    if kind == "role_attribute":
        return _ATTRIBUTE_RISKS.get(privilege, f"{privilege} escapes the agent's privileges")
    return _WHY.get(kind, kind)


def _roles(values: Sequence[str], what: str) -> list[str]:
    if isinstance(values, str):
        raise TypeError(f"{what} must be a sequence of role names, not a string")
    roles = list(dict.fromkeys(values))
    for role in roles:
        quote_ident(role)  # refuses what cannot be a role name
    return roles


async def _require_roles(executor: Executor, roles: Sequence[str]) -> None:
    found = {str(row[0]) for row in await executor.execute(render("roles_exist.sql", roles=roles))}
    missing = [role for role in roles if role not in found]
    if missing:
        raise UnknownRoleError(f"no such role: {', '.join(missing)}")


async def check_cow_privileges(
    executor: Executor,
    schema: str = "public",
    *,
    agent_roles: Sequence[str],
    reviewer_roles: Sequence[str] = (),
) -> list[PrivilegeFinding]:
    """Every excess privilege of ``agent_roles`` over the COW tables of ``schema`` (and the
    memberships ``reviewer_roles`` lack to commit them), read-only. Empty when the roles are
    as :func:`harden_cow_schema` leaves them."""
    agents = _roles(agent_roles, "agent_roles")
    reviewers = _roles(reviewer_roles, "reviewer_roles")
    await require_kit(executor)
    await _require_roles(executor, agents + reviewers)
    # pinned to pg_catalog: every name the findings print comes out schema-qualified
    rows = await run_pinned(
        executor,
        render(
            "privilege_findings.sql",
            schema=schema,
            agents=agents,
            reviewers=reviewers,
            owner_only=OWNER_ONLY_FUNCTIONS,
            kit_public=KIT_PUBLIC_GRANTS,
        ),
        _FINDING_COLUMNS,
    )
    return [
        PrivilegeFinding(
            kind=str(kind),
            role=str(role),
            object=str(obj),
            privilege=str(privilege),
            via=str(via),
            why=_why(str(kind), str(privilege)),
            fix=str(fix),
            grantee=None if grantee is None else str(grantee),
        )
        for kind, role, obj, privilege, via, grantee, fix in rows
    ]


def _fixes(
    findings: Sequence[PrivilegeFinding], roles: Sequence[str], *, remove_role_settings: bool
) -> list[str]:
    """The fixes harden applies: those that change the given roles only."""
    kinds = _FIXED_BY_HARDEN | ({"role_setting"} if remove_role_settings else set())
    return list(dict.fromkeys(f.fix for f in findings if f.kind in kinds and f.grantee in roles))


async def harden_cow_schema(
    executor: Executor,
    schema: str = "public",
    *,
    agent_roles: Sequence[str],
    reviewer_roles: Sequence[str] = (),
    read_only_tables: Sequence[str] = (),
    remove_role_settings: bool = False,
) -> HardeningReport:
    """Leave ``agent_roles`` able to use the COW tables of ``schema`` through their views
    only, and ``reviewer_roles`` able to review and commit; idempotent.

    Agents get USAGE on the schema (and its overlay schema), SELECT on every COW view and
    INSERT, UPDATE, DELETE on those not in ``read_only_tables``; every privilege
    :func:`check_cow_privileges` finds that was granted to them by name is revoked, their
    memberships in roles they must not act as are revoked, and they are registered as agent
    roles (``agentcow.add_agent_role``: the kit's owner or a superuser), bound only by
    ``bind_session``. Reviewers are made members of the tables' owners. Role settings
    (``ALTER ROLE ... SET``) are removed only with ``remove_role_settings``. Each statement
    runs on its own (one the caller may not run is reported in ``failed``); ``remaining`` is
    what a check finds afterwards."""
    agents = _roles(agent_roles, "agent_roles")
    reviewers = _roles(reviewer_roles, "reviewer_roles")
    both = sorted(set(agents) & set(reviewers))
    if both:
        raise ValueError(f"a role cannot be both an agent and a reviewer: {', '.join(both)}")
    if not agents:
        raise ValueError("agent_roles is empty")
    await require_kit(executor)
    await _require_roles(executor, agents + reviewers)
    views = [
        (str(s), str(v))
        for s, v in await executor.execute(render("harden_views.sql", schema=schema))
    ]
    unknown = sorted(set(read_only_tables) - {v for _, v in views})
    if unknown:
        raise ValueError(f"not COW tables of {schema}: {', '.join(unknown)}")
    schemas = list(dict.fromkeys([schema, *(s for s, _ in views)]))
    statements = render_statements(
        "harden_grants.sql",
        agents=agents,
        schemas=schemas,
        views=views,
        writable=[v for v in views if v[1] not in read_only_tables],
        read_only=[v for v in views if v[1] in read_only_tables],
    )
    findings = await check_cow_privileges(
        executor, schema, agent_roles=agents, reviewer_roles=reviewers
    )
    statements += _fixes(findings, agents + reviewers, remove_role_settings=remove_role_settings)
    rows = await executor.execute(render("try_statements.sql", statements=statements))
    applied = tuple(str(sql) for sql, error in rows if error is None)
    failed = tuple((str(sql), str(error)) for sql, error in rows if error is not None)
    remaining = await check_cow_privileges(
        executor, schema, agent_roles=agents, reviewer_roles=reviewers
    )
    return HardeningReport(schema, applied, failed, tuple(remaining))
