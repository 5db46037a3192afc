"""snapshot shape

A stored snapshot carries the version of its published body's shape (publishing.SHAPE). A
snapshot stored before this has shape 1; at start, Pulse publishes every survey's latest
snapshot again from its counts when its shape is older than the code's (program.start), so no
page or API call serves a body that lacks a documented field.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("snapshots", schema=None) as batch_op:
        batch_op.add_column(sa.Column("shape", sa.Integer(), server_default=sa.text("1"), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("snapshots", schema=None) as batch_op:
        batch_op.drop_column("shape")
