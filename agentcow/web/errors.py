"""The kit's errors as HTTP answers: a malformed id is 422, what does not exist 404, a
refusal (nothing applied) 409, each with an :class:`~agentcow.web.models.ErrorModel` as
``detail`` a page or a client can act on."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

from fastapi import HTTPException

from agentcow import errors
from agentcow.web.models import ErrorModel, encoded

_STATUS: tuple[tuple[tuple[type[BaseException], ...], int], ...] = (
    (
        (errors.InvalidIdError, errors.InvalidIdentifierError),
        HTTPStatus.UNPROCESSABLE_ENTITY,
    ),
    (
        (errors.OperationNotFoundError, errors.HistoryNotFoundError, errors.TableNotFoundError),
        HTTPStatus.NOT_FOUND,
    ),
    (
        (
            errors.ReviewChangedError,
            errors.CommitConflictError,
            errors.PolicyViolationError,
            errors.NotReviewedError,
            errors.ReviewFinishedError,
            errors.OperationsNotClosedError,
            errors.AlreadyUndoneError,
            errors.PendingChangesError,
            errors.TenantIsolationError,
            errors.SessionChangedError,
        ),
        HTTPStatus.CONFLICT,
    ),
)


def status_of(error: errors.CowError) -> int:
    for kinds, code in _STATUS:
        if isinstance(error, kinds):
            return code
    return HTTPStatus.INTERNAL_SERVER_ERROR


def code_of(name: str) -> str:
    """``ReviewChangedError`` -> ``review_changed``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name.removesuffix("Error")).lower()


def error_model(error: errors.CowError) -> ErrorModel:
    missing = getattr(error, "missing", None)
    conflicts = getattr(error, "conflicts", None)
    report = getattr(error, "report", None)
    return ErrorModel(
        error=type(error).__name__,
        code=code_of(type(error).__name__),
        message=str(error),
        missing_operations=list(missing) if missing else None,
        conflicts=[
            {"table": c.table, "key": encoded(c.key), "kind": c.kind, "columns": list(c.columns)}
            for c in conflicts
        ]
        if conflicts
        else None,
        blocking_reasons=list(report.blocking_reasons) if report is not None else None,
    )


def refusal(code: int, error: str, message: str) -> HTTPException:
    """An answer the routes decide themselves (an unknown session, a fingerprint that is
    not the diff's any more)."""
    detail = ErrorModel(error=error, code=code_of(error), message=message)
    return HTTPException(code, detail=detail.model_dump(mode="json", exclude_none=True))


@asynccontextmanager
async def answered() -> AsyncIterator[None]:
    """Turn the kit's errors raised in the block into HTTP answers."""
    try:
        yield
    except errors.CowError as error:
        detail: Any = error_model(error).model_dump(mode="json", exclude_none=True)
        raise HTTPException(status_of(error), detail=detail) from error
