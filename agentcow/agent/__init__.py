"""The agent's side: :class:`CowSession` (async; the sync twin, of the same name, is in
:mod:`agentcow.sync`)."""

from agentcow.agent.session import CowSession, Operation
from agentcow.connections import Result

__all__ = ["CowSession", "Operation", "Result"]
