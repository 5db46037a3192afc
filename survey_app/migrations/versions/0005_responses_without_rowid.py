"""responses without rowid

SQLite keeps a hidden rowid in every ordinary table, counting up in insertion order, even
when the declared primary key is a random UUID: `SELECT rowid FROM responses` would give the
arrival order of every response. This rebuilds the SQLite table as WITHOUT ROWID, stored by its
random id, copying the rows in id order (so the new file's layout is random too), and recreates
the indexes exactly as 0001 and 0003 made them. Downgrade rebuilds an ordinary table, also
copied in id order, so even its new rowids follow the random id.

PostgreSQL has no rowid; what its system columns (xmin, ctid) still reveal is in SECURITY.md.
Nothing to do there.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

COPY_IN_ID_ORDER = (
    "INSERT INTO _responses_new (id, survey_id, survey_version, answers, week, key_hash, in_snapshot) "
    "SELECT id, survey_id, survey_version, answers, week, key_hash, in_snapshot FROM responses ORDER BY id"
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(with_rowid=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(with_rowid=True)


def _rebuild(*, with_rowid: bool) -> None:
    # Not Alembic's batch mode: its copy has no ORDER BY, and it cannot reflect WITHOUT ROWID.
    op.create_table(
        "_responses_new",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("survey_id", sa.String(length=100), nullable=False),
        sa.Column("survey_version", sa.Integer(), nullable=False),
        sa.Column("answers", sa.Text(), nullable=False),
        sa.Column("week", sa.String(length=8), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("in_snapshot", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_hash"),
        sqlite_with_rowid=with_rowid,
    )
    op.execute(COPY_IN_ID_ORDER)
    op.drop_table("responses")  # its indexes go with it
    op.rename_table("_responses_new", "responses")
    with op.batch_alter_table("responses", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_responses_survey_id"), ["survey_id"], unique=False)
        batch_op.create_index(
            "ix_responses_pending",
            ["survey_id", "survey_version"],
            unique=False,
            sqlite_where=sa.text("in_snapshot = 0"),
            postgresql_where=sa.text("NOT in_snapshot"),
        )
