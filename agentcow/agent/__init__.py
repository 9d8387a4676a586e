"""The agent's side: :class:`CowSession` (async; the sync twin, of the same name, is in
:mod:`agentcow.sync`)."""

from agentcow.agent.guard import GuardedStatement, SqlGuard, guard_from_catalog
from agentcow.agent.session import CowSession, Operation
from agentcow.connections import Result
from agentcow.errors import GuardRefusal

__all__ = [
    "CowSession",
    "GuardRefusal",
    "GuardedStatement",
    "Operation",
    "Result",
    "SqlGuard",
    "guard_from_catalog",
]
