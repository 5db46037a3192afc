"""results released once

"Results released" is recorded when a survey version's results become public (its first
published snapshot after the release), once per survey version: a partial unique index holds
it, whichever worker stores that snapshot. Before, a release was recorded at once, even before
the threshold when nothing was published: such entries of a survey that still has no snapshot
are dropped (its first public snapshot records the true one), and a second entry of the same
survey version (two releases at once) is dropped in favour of the first.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

WHERE = "kind = 'results_released'"


def upgrade() -> None:
    op.execute(
        sa.text(
            "DELETE FROM program_events WHERE kind = 'results_released' AND NOT EXISTS ("
            "SELECT 1 FROM snapshots s WHERE s.survey_id = program_events.survey_id"
            " AND s.survey_version = program_events.survey_version)"
        )
    )
    op.execute(
        sa.text(
            "DELETE FROM program_events WHERE kind = 'results_released' AND id NOT IN ("
            "SELECT min(id) FROM program_events WHERE kind = 'results_released'"
            " GROUP BY survey_id, survey_version)"
        )
    )
    with op.batch_alter_table("program_events", schema=None) as batch_op:
        batch_op.create_index(
            "uq_program_events_results_released",
            ["survey_id", "survey_version"],
            unique=True,
            sqlite_where=sa.text(WHERE),
            postgresql_where=sa.text(WHERE),
        )


def downgrade() -> None:
    with op.batch_alter_table("program_events", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_program_events_results_released", sqlite_where=sa.text(WHERE), postgresql_where=sa.text(WHERE)
        )
