"""The JSON documents the reviewer routes answer with, as Pydantic models (FastAPI's OpenAPI
schema shows them). Row values are in the kit's JSON encoding
(:func:`agentcow.review.encoding.json_value`): numeric as exact text, timestamps in ISO 8601,
bytea as ``\\x`` hex. Every value read from a table is the agent's data: a page shows it as
text, never as markup."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from agentcow.review.encoding import json_value

Row = dict[str, Any]
OnConflict = Literal["fail", "merge", "overwrite"]


def encoded(value: Any) -> Any:
    """Rows, maps and lists of values in the kit's JSON encoding."""
    if isinstance(value, Mapping):
        return {str(key): encoded(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [encoded(item) for item in value]
    return json_value(value)


class SessionModel(BaseModel):
    session_id: uuid.UUID
    registered: bool
    tenant: str | None
    label: str | None
    state: str
    created_at: datetime | None
    last_active_at: datetime | None
    committed_by: str | None
    committed_at: datetime | None
    undone_at: datetime | None
    pending: dict[str, int] = Field(description="versions pending per table")


class OperationModel(BaseModel):
    operation_id: uuid.UUID
    tables: list[str]
    inserted: int
    updated: int
    deleted: int


class DependencyModel(BaseModel):
    """``operation_id`` cannot be committed without ``depends_on``."""

    depends_on: uuid.UUID
    operation_id: uuid.UUID


class OperationsModel(BaseModel):
    session_id: uuid.UUID
    operations: list[OperationModel] = Field(description="in the order each first wrote")
    dependencies: list[DependencyModel]


class RowDiffModel(BaseModel):
    table: str
    type: Literal["INSERT", "UPDATE", "DELETE"]
    pk: Row
    before: Row | None = Field(description="the stored row now (None: an insert)")
    after: Row | None = Field(description="the row the commit writes (None: a delete)")
    changed_columns: list[str]
    operations: list[uuid.UUID]
    findings: list[str] | None = Field(
        description="what the row failed (rules, its model, a forbidden delete); "
        "None when nothing judged it"
    )
    blocked: bool


class CheckModel(BaseModel):
    name: str
    passed: bool
    row_count: int
    rows: list[Row]


class LimitModel(BaseModel):
    table: str
    type: str
    limit: int
    count: int
    passed: bool


class PolicyModel(BaseModel):
    """The policy's judgement (without a policy: the tables' SafeModels alone)."""

    configured: bool
    decision: Literal["approve", "needs_review", "block"]
    reasons: list[str]
    failed_rules: list[str]
    checks: list[CheckModel]
    limits: list[LimitModel]


class DiffModel(BaseModel):
    session_id: uuid.UUID
    operation_ids: list[uuid.UUID] | None = Field(
        description="the selection closed under dependencies (None: the whole session)"
    )
    fingerprint: str = Field(description="commit with exactly this")
    summary: dict[str, int]
    rows: list[RowDiffModel]
    policy: PolicyModel


class ConflictModel(BaseModel):
    table: str
    key: Row
    kind: str = Field(description="what production did to the row meanwhile")
    columns: list[str]
    mergeable: bool
    base_then: Row | None
    base_now: Row | None
    session: Row | None


class HistoryModel(BaseModel):
    table: str
    key: Row
    before: Row | None
    after: Row | None
    operations: list[uuid.UUID]
    undone: bool


class CommitRequest(BaseModel):
    ops: list[str] | None = Field(
        default=None, description="operation ids (None: the whole session)"
    )
    fingerprint: str = Field(
        min_length=1, max_length=128, description="the fingerprint of the diff reviewed"
    )
    on_conflict: OnConflict = "fail"
    allow_cascades: bool = False
    person_approved: bool = False


class DiscardRequest(BaseModel):
    ops: list[str] | None = None
    include_dependents: bool = False


class UndoRequest(BaseModel):
    ops: list[str] | None = None
    include_dependents: bool = False
    on_conflict: OnConflict = "fail"


class CommitResult(BaseModel):
    committed: dict[str, int] = Field(description="rows applied per table")
    operation_ids: list[uuid.UUID] | None
    fingerprint: str


class DiscardResult(BaseModel):
    discarded: dict[str, int]


class UndoResult(BaseModel):
    undone: dict[str, int]
    operation_ids: list[uuid.UUID]
    undo_session_id: uuid.UUID


class ErrorModel(BaseModel):
    """The ``detail`` of every refusal."""

    error: str
    code: str
    message: str
    missing_operations: list[uuid.UUID] | None = None
    conflicts: list[Row] | None = None
    blocking_reasons: list[str] | None = None
