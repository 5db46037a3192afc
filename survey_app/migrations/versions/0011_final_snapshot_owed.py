"""final snapshot owed

A survey's close and its final snapshot are two transactions (the snapshot counts every response
the close let in); the close notes the snapshot it owes, and the build empties the note, so a
build that fails is tried again instead of being lost (program.py, schedules.py).

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("survey_states", schema=None) as batch_op:
        batch_op.add_column(sa.Column("final_snapshot_owed", sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("survey_states", schema=None) as batch_op:
        batch_op.drop_column("final_snapshot_owed")
