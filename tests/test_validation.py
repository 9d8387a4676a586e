"""SafeModel row models: registered by table name, strict, checked against the final image
of every row a session would insert or update, with the values' PostgreSQL types."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import psycopg
import pytest
from pydantic import AwareDatetime, Field, ValidationError

import agentcow as ac
from agentcow.review import (
    Decision,
    DiffType,
    ModelRegistry,
    SafeModel,
    default_registry,
    diff,
    get_validator,
    validate_row,
)
from agentcow.sync import Reviewer as SyncReviewer
from tests.helpers import make_cow, new_id, session
from tests.postgres_server import TestDatabase

SHOP = """
CREATE TYPE status AS ENUM ('new', 'paid', 'shipped');
CREATE TABLE orders (
    id int PRIMARY KEY,
    total numeric(10, 2) NOT NULL,
    status status NOT NULL DEFAULT 'new',
    placed_at timestamptz NOT NULL DEFAULT '2026-01-02 03:04:05+00',
    due date,
    meta jsonb,
    tags text[],
    blob bytea,
    ref uuid
);
INSERT INTO orders (id, total, meta, tags)
VALUES (10, 5.00, '{"a": 1}', '{x}'), (11, 7.50, NULL, NULL);
"""


class Status(enum.StrEnum):
    NEW = "new"
    PAID = "paid"
    SHIPPED = "shipped"


@pytest.fixture
def registry() -> ModelRegistry:
    return ModelRegistry()


def order_model(registry: ModelRegistry, **overrides: Any) -> type[SafeModel]:
    """The orders table as a team would declare it, its fields as PostgreSQL gives them;
    ``overrides`` change a field's type (None: leave it out)."""
    fields: dict[str, Any] = {
        "id": int,
        "total": Decimal,
        "status": Status,
        "placed_at": AwareDatetime,
        "due": date | None,
        "meta": dict[str, Any] | list[Any] | None,
        "tags": list[str] | None,
        "blob": bytes | None,
        "ref": uuid.UUID | None,
    }
    fields.update(overrides)
    fields = {name: type_ for name, type_ in fields.items() if type_ is not None}
    namespace: dict[str, Any] = {
        "__annotations__": fields,
        "__table_name__": "orders",
        "__registry__": registry,
        "__module__": __name__,
        "__qualname__": "Order",
    }
    return type("Order", (SafeModel,), namespace)


async def shop_session(conn: Any) -> tuple[Any, uuid.UUID]:
    """Orders with every kind of change: an insert of every type, an update, a delete."""
    executor = await make_cow(conn, SHOP, "orders")
    sid = new_id()
    async with session(conn, sid):
        await conn.execute(
            "INSERT INTO orders (id, total, status, meta, tags, blob, ref, due) VALUES "
            "(12, 1.25, 'paid', '{\"k\": [1, 2.5]}', '{a,b}', '\\x0102', "
            "'6f1c1e2a-0000-4000-8000-000000000001', '2026-03-04')"
        )
        await conn.execute("UPDATE orders SET total = 9.99, status = 'shipped' WHERE id = 10")
        await conn.execute("DELETE FROM orders WHERE id = 11")
    return executor, sid


async def test_postgres_values_pass_strict_models(conn: Any, registry: ModelRegistry) -> None:
    executor, sid = await shop_session(conn)
    order_model(registry)
    changes = await diff(executor, sid)
    assert changes.summary == {"INSERT": 1, "UPDATE": 1, "DELETE": 1}
    for row in changes.diffs:
        result = row.validate(registry)
        assert result.ok, result.errors
        # deletes write no image: nothing to check
        assert (result.model is None) == (row.new is None)
    assert changes.validate_all(registry) == []


@pytest.mark.parametrize(
    ("column", "declared", "error_type"),
    [
        ("total", int, "int_type"),  # numeric is Decimal
        ("total", str, "string_type"),
        ("placed_at", str, "string_type"),
        ("meta", str | None, "string_type"),  # jsonb is dict/list, not its text
        ("tags", str | None, "string_type"),
        ("blob", str | None, "string_type"),
        ("status", Literal["new"], "literal_error"),  # enum labels are checked as text
        ("due", datetime | None, "datetime_type"),  # a date is no datetime in strict mode
    ],
)
async def test_strict_types_refuse_what_postgres_does_not_give(
    conn: Any, registry: ModelRegistry, column: str, declared: Any, error_type: str
) -> None:
    executor, sid = await shop_session(conn)
    order_model(registry, **{column: declared})
    changes = await diff(executor, sid)
    (inserted,) = [row for row in changes.diffs if row.pk == {"id": 12}]
    result = inserted.validate(registry)
    assert not result.ok
    assert [(e["loc"][0], e["type"]) for e in result.errors] == [(column, error_type)]


async def test_what_failed_per_field(conn: Any, registry: ModelRegistry) -> None:
    executor, sid = await shop_session(conn)
    model = order_model(registry, total=Annotated[Decimal, Field(ge=2)])
    changes = await diff(executor, sid)
    invalid = changes.validate_all(registry)
    assert [(bad.row.pk, bad.row.diff_type) for bad in invalid] == [({"id": 12}, DiffType.INSERT)]
    (bad,) = invalid
    assert bad.result.model is model
    assert [(e["loc"], e["type"], e["input"]) for e in bad.result.errors] == [
        (("total",), "greater_than_equal", Decimal("1.25"))
    ]
    assert isinstance(bad.result.error, ValidationError)  # Pydantic's own, to raise as is


async def test_every_column_is_declared(conn: Any, registry: ModelRegistry) -> None:
    """extra="forbid": a column the model does not declare fails, as does a field that
    names no column."""
    executor, sid = await shop_session(conn)
    changes = await diff(executor, sid)
    (inserted,) = [row for row in changes.diffs if row.diff_type is DiffType.INSERT]
    assert inserted.new is not None
    order_model(registry, ref=None)
    result = validate_row("orders", inserted.new, registry=registry)
    assert [(e["loc"], e["type"]) for e in result.errors] == [(("ref",), "extra_forbidden")]
    order_model(registry, note=str)
    result = validate_row("orders", inserted.new, registry=registry)
    assert [(e["loc"], e["type"]) for e in result.errors] == [(("note",), "missing")]


async def test_changeset_is_valid_uses_the_default_registry(conn: Any) -> None:
    executor, sid = await shop_session(conn)
    changes = await diff(executor, sid)
    assert changes.is_valid  # no model: nothing to refuse
    model = order_model(default_registry, total=Annotated[Decimal, Field(ge=2)])
    try:
        assert get_validator("orders") is model
        assert not changes.is_valid
        assert [bad.row.pk for bad in changes.validate_all()] == [{"id": 12}]
    finally:
        default_registry.unregister(model)
    assert get_validator("orders") is None


def test_registered_by_table_name_at_class_creation(registry: ModelRegistry) -> None:
    class Base(SafeModel):
        __registry__ = registry
        id: int

    class Customer(Base):
        __table_name__ = "customers"
        name: str

    class SalesCustomer(Base):
        __table_name__ = "customers"
        __schema__ = "sales"
        region: str

    assert registry.get("customers") is Customer
    assert registry.get("customers", "public") is Customer
    assert registry.get("customers", "sales") is SalesCustomer
    assert registry.get("orders") is None
    assert validate_row("customers", {"id": 1, "name": "Ada"}, registry=registry).ok
    assert validate_row("nothing", {"anything": object()}, registry=registry).model is None
    # a second model for a table is refused; the first can be unregistered
    with pytest.raises(ac.ModelConflictError, match="already has model"):

        class Other(SafeModel):
            __registry__ = registry
            __table_name__ = "customers"

    registry.unregister(Customer)
    assert registry.get("customers") is None
    assert registry.get("customers", "sales") is SalesCustomer


def test_enum_fields_take_the_labels(registry: ModelRegistry) -> None:
    class Order(SafeModel):
        __registry__ = registry
        __table_name__ = "orders"
        status: Status
        previous: Status | None = None

    result = validate_row("orders", {"status": "paid", "previous": None}, registry=registry)
    assert result.ok
    assert Order.model_validate({"status": "paid"}).status is Status.PAID
    result = validate_row("orders", {"status": "lost"}, registry=registry)
    assert [e["loc"] for e in result.errors] == [("status",)]
    # strict otherwise: no number, no text of another type
    result = validate_row("orders", {"status": 1}, registry=registry)
    assert not result.ok


async def test_reviewer_checks_rows_against_the_registry_given(
    conn: Any, database: TestDatabase, registry: ModelRegistry
) -> None:
    """Reviewer(registry=...) (async and sync) judges rows by the models of that registry."""
    _, sid = await shop_session(conn)
    order_model(registry, total=Annotated[Decimal, Field(gt=100)])  # no order is that big
    reviewer = ac.Reviewer(conn, sid, registry=registry)
    await reviewer.diff()
    report = await reviewer.check()
    assert sorted(invalid.row.pk["id"] for invalid in report.invalid_rows) == [10, 12]
    assert report.decision is Decision.BLOCK
    with psycopg.connect(database.owner_dsn, autocommit=True) as blocking:
        twin = SyncReviewer(blocking, sid, registry=registry)
        twin.diff()
        assert len(twin.check().invalid_rows) == 2
