"""Connections as the scopes (``CowSession``, ``Reviewer``) use them: a :class:`Source` per
connection or pool, handing out a :class:`Link` per call. Drivers are imported only when
given: an object can only be one of a driver's if that driver was imported already.
"""

from __future__ import annotations

import sys

from agentcow.connections.link import Link, Result, Source
from agentcow.errors import UnsupportedConnectionError

__all__ = ["Link", "Result", "Source", "async_source", "blocking_source"]

_ASYNC = "an asyncpg Connection or Pool, a psycopg AsyncConnection or AsyncConnectionPool, or "
_ASYNC += "a SQLAlchemy AsyncEngine or AsyncConnection"
_BLOCKING = "a psycopg Connection or ConnectionPool, or a SQLAlchemy Engine or Connection"


def async_source(target: object) -> Source:
    """The source of an async connection or pool (or a source already made)."""
    if isinstance(target, Source):
        return target
    asyncpg = sys.modules.get("asyncpg")
    psycopg = sys.modules.get("psycopg")
    pool = sys.modules.get("psycopg_pool")
    sqlalchemy = sys.modules.get("sqlalchemy.ext.asyncio")
    if asyncpg is not None and isinstance(
        target, asyncpg.Connection | asyncpg.Pool | asyncpg.pool.PoolConnectionProxy
    ):
        from agentcow.connections.asyncpg import asyncpg_source

        return asyncpg_source(target)
    if (psycopg is not None and isinstance(target, psycopg.AsyncConnection)) or (
        pool is not None and isinstance(target, pool.AsyncConnectionPool)
    ):
        from agentcow.connections.psycopg import psycopg_async_source

        return psycopg_async_source(target)
    if sqlalchemy is not None and isinstance(
        target, sqlalchemy.AsyncEngine | sqlalchemy.AsyncConnection
    ):
        from agentcow.connections.sqlalchemy import sqlalchemy_async_source

        return sqlalchemy_async_source(target)
    raise UnsupportedConnectionError(
        f"expected {_ASYNC}, not {type(target).__name__} (sync ones: agentcow.sync)"
    )


def blocking_source(target: object) -> Source:
    """The source of a sync connection or pool, for :mod:`agentcow.sync`."""
    psycopg = sys.modules.get("psycopg")
    pool = sys.modules.get("psycopg_pool")
    sqlalchemy = sys.modules.get("sqlalchemy")
    if (psycopg is not None and isinstance(target, psycopg.Connection)) or (
        pool is not None and isinstance(target, pool.ConnectionPool)
    ):
        from agentcow.connections.psycopg import psycopg_sync_source

        return psycopg_sync_source(target)
    if sqlalchemy is not None and isinstance(target, sqlalchemy.Engine | sqlalchemy.Connection):
        from agentcow.connections.sqlalchemy import sqlalchemy_sync_source

        return sqlalchemy_sync_source(target)
    raise UnsupportedConnectionError(
        f"expected {_BLOCKING}, not {type(target).__name__} (async ones: agentcow)"
    )
