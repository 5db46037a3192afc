"""survey program

Surveys are stored as data (the `surveys` table: one immutable definition per id and version),
one survey is current, and a closed round records the topic it chose. A database made before
this keeps its responses, snapshots and keys: they are stored under (survey id, version)
already, and the first start adds the definition of PULSE_QUESTIONS (survey_app/program.py)
and makes it current. Here, each survey already in survey_states gets the ISO week it was
first answered as its opening week.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "surveys",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("definition", sa.Text(), nullable=False),
        sa.Column("topic_id", sa.String(length=16), nullable=True),
        sa.Column("week", sa.String(length=8), nullable=False),
        sa.ForeignKeyConstraint(["topic_id"], ["topics.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", "version"),
    )
    with op.batch_alter_table("survey_states", schema=None) as batch_op:
        batch_op.add_column(sa.Column("current", sa.Boolean(), server_default=sa.text("false"), nullable=False))
        batch_op.add_column(sa.Column("opened_week", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("closed_week", sa.String(length=8), nullable=True))
    op.execute(
        "UPDATE survey_states SET opened_week = (SELECT min(r.week) FROM responses r "
        "WHERE r.survey_id = survey_states.survey_id AND r.survey_version = survey_states.survey_version)"
    )
    with op.batch_alter_table("rounds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("chosen_topic_id", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("chosen_by", sa.String(length=10), nullable=True))
        batch_op.create_foreign_key(
            "fk_rounds_chosen_topic", "topics", ["chosen_topic_id"], ["id"], ondelete="SET NULL"
        )


def downgrade() -> None:
    with op.batch_alter_table("rounds", schema=None) as batch_op:
        batch_op.drop_constraint("fk_rounds_chosen_topic", type_="foreignkey")
        batch_op.drop_column("chosen_by")
        batch_op.drop_column("chosen_topic_id")
    op.execute("UPDATE topics SET status = 'approved' WHERE status = 'chosen'")
    with op.batch_alter_table("survey_states", schema=None) as batch_op:
        batch_op.drop_column("closed_week")
        batch_op.drop_column("opened_week")
        batch_op.drop_column("current")
    op.drop_table("surveys")
