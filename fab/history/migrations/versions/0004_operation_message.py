"""Operations get a message: why, as the performer said it (message=, FAB_DEPLOY_MESSAGE).

Existing operations have none (null).

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("fab_operations") as batch:
        batch.add_column(sa.Column("message", sa.Text, nullable=True))
