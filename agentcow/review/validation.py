"""Row models: a team's Pydantic models of its tables, checked against what a commit writes.

A :class:`SafeModel` subclass names its table (``__table_name__``, and ``__schema__`` to
serve one schema only) and is registered when the class is created, as SafeAgentDB's are.
A review checks the final image of every inserted or updated row (``RowDiff.new``) against
it in strict mode: rows come with their PostgreSQL types (numeric as ``Decimal``,
timestamptz as an aware ``datetime``, jsonb as ``dict``/``list``, bytea as ``bytes``, arrays
as lists, enums as their labels), so fields are declared as those types and nothing is
coerced: a text ``'12.50'`` in a ``Decimal`` field is an error, as it would be in the table.
"""

from __future__ import annotations

import contextlib
import enum
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_core import ErrorDetails

from agentcow.errors import ModelConflictError

if TYPE_CHECKING:
    from agentcow.review.diff import RowDiff


class ModelRegistry:
    """Models by table. A model without ``__schema__`` serves its table name in any schema;
    one with it, that schema only (and wins there)."""

    def __init__(self) -> None:
        self._models: dict[tuple[str | None, str], type[SafeModel]] = {}

    def register(self, model: type[SafeModel]) -> None:
        """Register ``model`` for its table. Defining the same class again (a reloaded
        module) replaces it; another class for the same table is refused, so that no model
        silently takes another's place."""
        key = (model.__schema__, model.__table_name__)
        known = self._models.get(key)
        if known is not None and _qualname(known) != _qualname(model):
            raise ModelConflictError(
                f"table {_where(key)} already has model {_qualname(known)}; unregister it "
                f"before registering {_qualname(model)}"
            )
        self._models[key] = model

    def unregister(self, model: type[SafeModel]) -> None:
        key = (model.__schema__, model.__table_name__)
        if self._models.get(key) is model:
            del self._models[key]

    def get(self, table: str, schema: str | None = None) -> type[SafeModel] | None:
        """The model of ``table`` (in ``schema``, when given), or None."""
        found = self._models.get((schema, table)) if schema is not None else None
        return found or self._models.get((None, table))


def _qualname(model: type) -> str:
    return f"{model.__module__}.{model.__qualname__}"


def _where(key: tuple[str | None, str]) -> str:
    schema, table = key
    return table if schema is None else f"{schema}.{table}"


#: Where :class:`SafeModel` subclasses register unless they name another ``__registry__``.
default_registry = ModelRegistry()


class SafeModel(BaseModel):
    """A table's rows as a team declares them: strict, no column left undeclared.

    ``__table_name__`` registers the class (in ``__registry__``, the default registry
    unless set) when it is created; a subclass without one of its own is a base for others
    and is not registered. A field declared with a Python ``Enum`` takes the member whose
    value is the PostgreSQL enum's label (strict mode alone would refuse the label)."""

    model_config = ConfigDict(strict=True, extra="forbid")

    __table_name__: ClassVar[str]
    __schema__: ClassVar[str | None] = None
    __registry__: ClassVar[ModelRegistry] = default_registry

    #: Fields declared with an Enum (by the key rows give them) and the Enum of each.
    __enum_fields__: ClassVar[dict[str, type[enum.Enum]]] = {}

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls.__enum_fields__ = {
            info.alias or name: kind
            for name, info in cls.model_fields.items()
            if (kind := _enum_of(info.annotation)) is not None
        }
        if "__table_name__" in cls.__dict__:
            cls.__registry__.register(cls)

    @model_validator(mode="before")
    @classmethod
    def _enum_labels(cls, data: Any) -> Any:
        if not cls.__enum_fields__ or not isinstance(data, Mapping):
            return data
        members = dict(data)
        for key, kind in cls.__enum_fields__.items():
            value = members.get(key)
            if isinstance(value, str) and not isinstance(value, kind):
                with contextlib.suppress(ValueError):  # else left as it is: Pydantic reports it
                    members[key] = kind(value)
        return members


def _enum_of(annotation: Any) -> type[enum.Enum] | None:
    """The Enum class of a field declared ``E`` or ``E | None``."""
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        found = [_enum_of(arg) for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(found) == 1:
            return found[0]
    return None


@dataclass(frozen=True)
class ValidationResult:
    """One row checked against its table's model; ``model`` None: the table has none, so
    nothing was checked."""

    table: str
    model: type[SafeModel] | None
    error: ValidationError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def errors(self) -> list[ErrorDetails]:
        """What failed, field by field, as Pydantic reports it (``loc``, ``msg``, ``type``,
        ``input``)."""
        return [] if self.error is None else list(self.error.errors(include_url=False))


@dataclass(frozen=True)
class InvalidRow:
    """A row of a review whose final image its table's model refuses."""

    row: RowDiff
    result: ValidationResult


def get_validator(
    table: str, schema: str | None = None, *, registry: ModelRegistry | None = None
) -> type[SafeModel] | None:
    """The model registered for ``table`` (see :meth:`ModelRegistry.get`), or None."""
    return (registry or default_registry).get(table, schema)


def validate_row(
    table: str,
    row: Mapping[str, Any],
    *,
    schema: str | None = None,
    registry: ModelRegistry | None = None,
) -> ValidationResult:
    """Check ``row`` (column name -> value, PostgreSQL types) against ``table``'s model."""
    model = get_validator(table, schema, registry=registry)
    if model is None:
        return ValidationResult(table, None)
    try:
        model.model_validate(row)
    except ValidationError as error:
        return ValidationResult(table, model, error)
    return ValidationResult(table, model)


def validate_diff(row: RowDiff, registry: ModelRegistry | None = None) -> ValidationResult:
    """A review row's final image checked; a delete writes no image, so nothing is."""
    if row.new is None:
        return ValidationResult(row.table, None)
    return validate_row(row.table, row.new, schema=row.schema, registry=registry)


def invalid_rows(
    rows: Iterable[RowDiff], registry: ModelRegistry | None = None
) -> list[InvalidRow]:
    """The rows whose final image their table's model refuses."""
    checked = ((row, validate_diff(row, registry)) for row in rows)
    return [InvalidRow(row, result) for row, result in checked if not result.ok]
