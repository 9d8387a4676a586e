"""agentcow: PostgreSQL copy-on-write sessions for AI agents.

The API lives in :mod:`agentcow.postgres` (the published agent-cow names) and is re-exported
here, with the error classes and the driver adapters' protocol.
"""

from agentcow.errors import (
    CowError,
    DependencyCycleError,
    InvalidIdentifierError,
    InvalidIdError,
    KitVersionError,
    NotDeployedError,
    PendingChangesError,
    TableNotFoundError,
    UnsupportedTableError,
)
from agentcow.postgres import *  # noqa: F403
from agentcow.postgres import __all__ as _postgres_all

__version__ = "0.1.0"

__all__ = [
    *_postgres_all,
    "CowError",
    "DependencyCycleError",
    "InvalidIdError",
    "InvalidIdentifierError",
    "KitVersionError",
    "NotDeployedError",
    "PendingChangesError",
    "TableNotFoundError",
    "UnsupportedTableError",
]
