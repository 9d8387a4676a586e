"""agentcow.shadow: SafeAgentDB's API on copy-on-write sessions, against a real server."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any, Literal

import pydantic
import pytest
import sqlalchemy
from sqlalchemy import text

from agentcow.review.validation import default_registry
from agentcow.shadow import (
    ConflictError,
    MissingValidatorError,
    MissingValidatorWarning,
    SafeModel,
    ShadowDB,
    SyncError,
)
from tests.conftest import TestDatabase
from tests.helpers import LAYOUT, deploy, fetch
from tests.scopes_support import sqlalchemy_url

TASKS = """
CREATE TABLE tasks (
    id serial PRIMARY KEY,
    user_id int NOT NULL,
    title text NOT NULL,
    status text NOT NULL DEFAULT 'todo',
    assignee text
);
INSERT INTO tasks (user_id, title) VALUES (42, 'mine a'), (99, 'theirs'), (42, 'mine b');
"""


@pytest.fixture
def engine(database: TestDatabase) -> Iterator[sqlalchemy.Engine]:
    engine = sqlalchemy.create_engine(sqlalchemy_url(database.owner_dsn, "psycopg"))
    yield engine
    engine.dispose()


@pytest.fixture
def validators() -> Iterator[None]:
    """A model for tasks in the default registry (as SafeAgentDB users declare them)."""
    saved = dict(default_registry._models)

    class TaskValidator(SafeModel):
        __table_name__ = "tasks"
        id: int
        user_id: int
        title: str
        status: str
        assignee: str | None

    yield
    default_registry._models.clear()
    default_registry._models.update(saved)


async def tasks(conn: Any) -> list[tuple[Any, ...]]:
    return await fetch(conn, "SELECT id, user_id, title, status, assignee FROM tasks ORDER BY id")


def shadow(engine: sqlalchemy.Engine, **options: Any) -> ShadowDB:
    return ShadowDB(engine, tables=["tasks"], tenant_id=42, layout=LAYOUT, **options)


async def test_only_the_tenants_rows_and_its_commit(
    conn: Any, engine: sqlalchemy.Engine, validators: None
) -> None:
    await deploy(conn)
    await conn.execute(TASKS)
    with shadow(engine) as sandbox:
        assert sandbox.clone_stats == {"tasks": 2}
        assert sandbox.tables == ["tasks"] and sandbox.dialect == "postgresql"
        rows = sandbox.query("SELECT user_id FROM tasks")
        assert rows == [{"user_id": 42}, {"user_id": 42}]
        assert sandbox.execute("UPDATE tasks SET status = 'done'").rowcount == 2
        assert sandbox.execute("DELETE FROM tasks WHERE user_id = 99").rowcount == 0
        assert (await tasks(conn))[0][3] == "todo"  # nothing reached production yet
        changes = sandbox.diff()
        assert changes.summary == {"INSERT": 0, "UPDATE": 2, "DELETE": 0}
        assert changes.is_valid
        assert sandbox.commit_to_production() == 2
        with pytest.raises(SyncError, match="committed already"):
            sandbox.commit_to_production()
    assert [(r[1], r[3]) for r in await tasks(conn)] == [(42, "done"), (99, "todo"), (42, "done")]


async def test_a_cross_tenant_write_fails_at_the_statement(
    conn: Any, engine: sqlalchemy.Engine, validators: None
) -> None:
    """SafeAgentDB accepts these in its sandbox and refuses the commit; here the agent's
    statement fails, and nothing of it is left."""
    await deploy(conn)
    await conn.execute(TASKS)
    before = await tasks(conn)
    with shadow(engine) as sandbox:
        for statement in (
            "UPDATE tasks SET user_id = 99",
            "INSERT INTO tasks (user_id, title) VALUES (777, 'evil')",
        ):
            with pytest.raises(sqlalchemy.exc.ProgrammingError, match="tenant isolation"):
                sandbox.execute(statement)
            sandbox.session.rollback()
        assert sandbox.diff().is_empty
        assert sandbox.commit_to_production() == 0
    assert await tasks(conn) == before


async def test_invalid_rows_are_refused(conn: Any, engine: sqlalchemy.Engine) -> None:
    await deploy(conn)
    await conn.execute(TASKS)
    before = await tasks(conn)
    saved = dict(default_registry._models)

    class TaskValidator(SafeModel):
        __table_name__ = "tasks"
        id: int
        user_id: int
        title: str
        status: Literal["todo", "in_progress", "done"]
        assignee: str | None

    try:
        with shadow(engine) as sandbox:
            sandbox.execute("UPDATE tasks SET status = 'yolo_swag' WHERE id = 1")
            changes = sandbox.diff()
            assert not changes.is_valid
            with pytest.raises(pydantic.ValidationError):
                sandbox.commit_to_production()
    finally:
        default_registry._models.clear()
        default_registry._models.update(saved)
    assert await tasks(conn) == before


async def test_missing_validators(conn: Any, engine: sqlalchemy.Engine) -> None:
    await deploy(conn)
    await conn.execute(TASKS)
    with shadow(engine) as sandbox:
        sandbox.execute("UPDATE tasks SET status = 'done' WHERE id = 1")
        with pytest.raises(MissingValidatorError) as missing:
            sandbox.commit_to_production()
        assert isinstance(missing.value, KeyError)
    with shadow(engine, require_validators=False) as sandbox:
        sandbox.execute("UPDATE tasks SET status = 'done' WHERE id = 1")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert sandbox.commit_to_production() == 1
        assert any(issubclass(w.category, MissingValidatorWarning) for w in caught)


async def test_production_drift(conn: Any, engine: sqlalchemy.Engine, validators: None) -> None:
    await deploy(conn)
    await conn.execute(TASKS)
    with shadow(engine) as sandbox:
        sandbox.execute("UPDATE tasks SET status = 'done' WHERE id = 1")
        sandbox.execute("UPDATE tasks SET status = 'done' WHERE id = 3")
        sandbox.diff()
        await conn.execute("UPDATE tasks SET status = 'blocked' WHERE id = 1")
        await conn.execute("UPDATE tasks SET title = 'renamed by human' WHERE id = 3")
        with pytest.raises(ConflictError) as drifted:
            sandbox.commit_to_production()
        assert (drifted.value.table, drifted.value.row_key, drifted.value.columns) == (
            "tasks",
            {"id": 1},
            ["status"],
        )
    with shadow(engine) as sandbox:  # an edit of another column coexists
        sandbox.execute("UPDATE tasks SET status = 'done' WHERE id = 3")
        await conn.execute("UPDATE tasks SET title = 'again by human' WHERE id = 3")
        assert sandbox.commit_to_production() == 1
    assert (await tasks(conn))[2][2:4] == ("again by human", "done")


async def test_production_assigns_keys_and_the_orm_session(
    conn: Any, engine: sqlalchemy.Engine, validators: None
) -> None:
    await deploy(conn)
    await conn.execute(TASKS)
    with shadow(engine) as sandbox:
        new_id = sandbox.execute(
            "INSERT INTO tasks (user_id, title) VALUES (42, 'agent row') RETURNING id"
        ).scalar_one()
        assert sandbox.session.execute(text("SELECT count(*) FROM tasks")).scalar_one() == 3
        assert sandbox.commit_to_production() == 1
    await conn.execute("INSERT INTO tasks (user_id, title) VALUES (42, 'app row')")
    ids = [row[0] for row in await tasks(conn)]
    assert new_id == 4 and ids == [1, 2, 3, 4, 5]


def test_ignore_is_refused(engine: sqlalchemy.Engine) -> None:
    with pytest.raises(ValueError, match="ignore"):
        ShadowDB(engine, ["tasks"], 42, on_conflict="ignore")
