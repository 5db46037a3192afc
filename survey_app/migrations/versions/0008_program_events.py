"""program events

What the organisers did in the program (a survey opened, results released, a round opened, a
topic chosen) and the day they did it, for the Atom feed at /feed.atom. Nothing before this
revision was dated finer than the ISO week, so earlier events are not backfilled.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "program_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("survey_id", sa.String(length=100), nullable=True),
        sa.Column("survey_version", sa.Integer(), nullable=True),
        sa.Column("round_id", sa.Integer(), nullable=True),
        sa.Column("topic_id", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("uid"),
    )


def downgrade() -> None:
    op.drop_table("program_events")
