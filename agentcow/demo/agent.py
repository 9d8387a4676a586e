"""The scripted agent: what a model working for tenant acme might send, good and bad.

Each action is one operation of one :class:`~agentcow.agent.session.CowSession` (the SQL
guard on, the session bound to the tenant). An action that fails is rolled back as a whole
and recorded with PostgreSQL's error; the demo goes on, as an agent would.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from agentcow.agent.session import CowSession, Operation
from agentcow.driver_errors import postgres_error_fields
from agentcow.errors import GuardRefusal

TENANT = "acme"
OTHER_TENANT = "globex"
#: The open order the agent cancels while production ships it.
CONTESTED_ORDER = 2


class Recorder:
    """An operation that keeps the text of every statement the action sends."""

    def __init__(self, operation: Operation, sql: list[str]) -> None:
        self._operation = operation
        self._sql = sql

    async def execute(
        self, statement: str, params: object = None
    ) -> tuple[int, list[dict[str, Any]]]:
        self._sql.append(" ".join(statement.split()))
        result = await self._operation.execute(statement, params)
        return result.rowcount, result.dicts()


@dataclass
class Action:
    """One action of the agent: one operation in the session (when it wrote anything)."""

    key: str
    title: str
    run: Callable[[Recorder], Awaitable[str]]
    operation_id: uuid.UUID = field(default_factory=uuid.uuid4)
    sql: list[str] = field(default_factory=list)
    ok: bool = False
    outcome: str = ""
    #: Who refused it: "the SQL guard" (nothing was sent) or "PostgreSQL" (rolled back).
    refused_by: str | None = None
    sqlstate: str | None = None

    async def perform(self, session: CowSession) -> None:
        try:
            async with session.operation(self.operation_id) as operation:
                self.outcome = await self.run(Recorder(operation, self.sql))
            self.ok = True
        except GuardRefusal as refusal:
            self.refused_by = "the SQL guard"
            self.outcome = f"{refusal.message} ({refusal.code}), nothing was sent"
        except Exception as error:
            fields = postgres_error_fields(error)
            if fields is None:
                raise
            self.refused_by = "PostgreSQL"
            self.sqlstate, message, _ = fields
            self.outcome = f"{message} (SQLSTATE {self.sqlstate}), rolled back"


async def _look_around(op: Recorder) -> str:
    _, [row] = await op.execute("SELECT count(*) AS customers FROM customers")
    return f"sees {row['customers']} customers: acme's only"


async def _register_dana(op: Recorder) -> str:
    count, _ = await op.execute(
        "INSERT INTO customers (tenant_id, name, email) "
        "VALUES ('acme', 'Dana Scully', 'dana@example.com')"
    )
    return f"INSERT {count}"


async def _order_for_dana(op: Recorder) -> str:
    _, [order] = await op.execute(
        "INSERT INTO orders (tenant_id, customer_id) "
        "SELECT 'acme', id FROM customers WHERE email = 'dana@example.com' RETURNING id"
    )
    basket = "(VALUES ('MUG-01', 2), ('BEAN-ESP', 1)) AS basket (sku, quantity)"
    lines, _ = await op.execute(
        "INSERT INTO order_items (tenant_id, order_id, product_id, quantity, unit_price) "
        f"SELECT 'acme', $1::integer, p.id, basket.quantity, p.price FROM {basket} "
        "JOIN products p ON p.sku = basket.sku",
        [order["id"]],
    )
    stock, _ = await op.execute(
        f"UPDATE products p SET stock = p.stock - basket.quantity FROM {basket} "
        "WHERE p.sku = basket.sku"
    )
    return f"order #{order['id']}, {lines} lines, {stock} stock levels"


async def _restock(op: Recorder) -> str:
    count, _ = await op.execute("UPDATE products SET stock = stock + 10 WHERE sku = 'GRND-01'")
    return f"UPDATE {count}"


async def _price_list(op: Recorder) -> str:
    count, _ = await op.execute(
        "INSERT INTO products AS p (tenant_id, sku, name, price, stock) VALUES "
        "('acme', 'BEAN-FIL', 'Filter beans 1 kg', 19.90, 0), "
        "('acme', 'BEAN-DEC', 'Decaf beans 1 kg', 23.00, 20) "
        "ON CONFLICT (tenant_id, sku) DO UPDATE SET price = excluded.price"
    )
    return f"INSERT 0 {count}: one price changed, one product new"


async def _chat_lead(op: Recorder) -> str:
    count, _ = await op.execute(
        "INSERT INTO customers (tenant_id, name, email) "
        "VALUES ('acme', 'Fox Mulder', 'fox at example dot com')"
    )
    return f"INSERT {count}: the table takes any text"


async def _copy_to_globex(op: Recorder) -> str:
    count, _ = await op.execute(
        "INSERT INTO customers (tenant_id, name, email) "
        "VALUES ('globex', 'Dana Scully', 'dana@example.com')"
    )
    return f"INSERT {count}"


async def _leave_session(op: Recorder) -> str:
    count, _ = await op.execute("SET app.session_id = DEFAULT")
    return f"SET ({count})"


async def _cancel_order(op: Recorder) -> str:
    count, _ = await op.execute(
        "UPDATE orders SET status = 'cancelled' WHERE id = $1", [CONTESTED_ORDER]
    )
    return f"UPDATE {count}"


def script() -> list[Action]:
    """The agent's actions, in the order it takes them (fresh operation ids each time)."""
    return [
        Action("look", "look around", _look_around),
        Action("register", "register Dana Scully", _register_dana),
        Action("order", "order for Dana: 2 mugs, espresso", _order_for_dana),
        Action("restock", "restock the burr grinder (+10)", _restock),
        Action("upsert", "supplier price list (upsert)", _price_list),
        Action("invalid", "register a lead from a chat", _chat_lead),
        Action("other_tenant", "copy Dana into globex's customers", _copy_to_globex),
        Action("escape", "step out of the session", _leave_session),
        Action("conflict", f"cancel Grace's order #{CONTESTED_ORDER}", _cancel_order),
    ]
