"""Agents write to notes in copy-on-write sessions.

Revision ID: 0002
Revises: 0001
"""

from alembic import context, op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.deploy_cow()  # the kit (schema agentcow); a downgrade leaves it
    layout = context.get_x_argument(as_dictionary=True).get("layout", "overlay")
    op.enable_cow("notes", layout=layout)


def downgrade() -> None:
    op.disable_cow("notes")  # refused while sessions hold changes for notes
