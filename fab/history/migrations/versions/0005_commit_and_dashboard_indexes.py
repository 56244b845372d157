"""Operations get their commit's time and subject (the dashboard's lead time and
history), and the indexes the dashboard's pages read by (issue 21).

Existing operations have neither (null): lead time counts only what was recorded.

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("fab_operations") as batch:
        batch.add_column(sa.Column("commit_time", sa.Float, nullable=True))
        batch.add_column(sa.Column("commit_subject", sa.Text, nullable=True))
    # History filters (newest first within a task, an outcome, a person) and the
    # environments page (an environment's newest deploy, freeze, running operation).
    op.create_index("fab_operations_environment_task_id", "fab_operations", ["environment", "task", "id"])
    op.create_index("fab_operations_task_id", "fab_operations", ["task", "id"])
    op.create_index("fab_operations_outcome_id", "fab_operations", ["outcome", "id"])
    op.create_index("fab_operations_performer_id", "fab_operations", ["performer", "id"])
    op.create_index("fab_operations_environment_started", "fab_operations", ["environment", "started_at"])
