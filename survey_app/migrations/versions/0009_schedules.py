"""schedules

A survey may open and close by itself, and a voting round close by itself, at a time the
organisers set (schedules.py): Unix seconds UTC, emptied by the one worker that acts on it.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("surveys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("opens_at", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("closes_at", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("rounds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("closes_at", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rounds", schema=None) as batch_op:
        batch_op.drop_column("closes_at")
    with op.batch_alter_table("surveys", schema=None) as batch_op:
        batch_op.drop_column("closes_at")
        batch_op.drop_column("opens_at")
