"""notes gain a tag, which sessions see at once.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.alter_cow_table("notes"):
        op.add_column("notes", sa.Column("tag", sa.Text, nullable=False, server_default="inbox"))


def downgrade() -> None:
    with op.alter_cow_table("notes"):
        op.drop_column("notes", "tag")
