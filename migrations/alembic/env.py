"""Alembic's environment for the example: the revisions run in one transaction on the
database of DATABASE_URL (or alembic.ini's sqlalchemy.url)."""

import os

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

import agentcow.alembic  # noqa: F401  (registers op.enable_cow, op.alter_cow_table, ...)

url = os.environ.get("DATABASE_URL") or context.config.get_main_option("sqlalchemy.url")

if context.is_offline_mode():
    context.configure(url=url, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    with create_engine(url, poolclass=NullPool).connect() as connection:
        context.configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
