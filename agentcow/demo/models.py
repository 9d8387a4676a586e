"""The shop team's row models: what a row must look like beyond what the tables check.

They live in a registry of their own, so importing the demo never validates anyone else's
tables named ``customers`` or ``orders``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field

from agentcow.review.validation import ModelRegistry, SafeModel

registry = ModelRegistry()

Money = Annotated[Decimal, Field(gt=0, max_digits=10, decimal_places=2)]


class ShopModel(SafeModel):
    """Every model of the shop's tables, in the demo's registry."""

    __registry__ = registry

    id: int
    tenant_id: str


class Customer(ShopModel):
    __table_name__ = "customers"
    name: Annotated[str, Field(min_length=1)]
    #: The table takes any text; the team wants an address mail can reach.
    email: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$")]


class Product(ShopModel):
    __table_name__ = "products"
    sku: Annotated[str, Field(pattern=r"^[A-Z]+-[A-Z0-9]+$")]
    name: Annotated[str, Field(min_length=1)]
    price: Money
    stock: Annotated[int, Field(ge=0)]


class Order(ShopModel):
    __table_name__ = "orders"
    customer_id: int
    status: Literal["open", "shipped", "cancelled"]


class OrderItem(ShopModel):
    __table_name__ = "order_items"
    order_id: int
    product_id: int
    quantity: Annotated[int, Field(ge=1, le=100)]
    unit_price: Money
