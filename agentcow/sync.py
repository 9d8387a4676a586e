"""The synchronous API: ``CowSession`` and ``Reviewer`` over psycopg (``Connection``,
``ConnectionPool``) or SQLAlchemy (``Engine``, ``Connection``), with the same names,
arguments and results as the async ones in :mod:`agentcow` (the way psycopg pairs
``Connection`` and ``AsyncConnection``, here by module)."""

from agentcow.agent.session_sync import CowSession, Operation
from agentcow.connections import Result
from agentcow.review.reviewer_sync import Reviewer

__all__ = ["CowSession", "Operation", "Result", "Reviewer"]
