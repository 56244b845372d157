"""The first history store: operations, their steps, log chunks as text, claims.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "fab_operations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("environment", sa.String(100), nullable=False),
        sa.Column("task", sa.String(100), nullable=False),
        sa.Column("arguments", sa.Text, nullable=False, server_default="{}"),
        sa.Column("performer", sa.String(255), nullable=False),
        sa.Column("controller", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer),
        sa.Column("hosts", sa.Text, nullable=False, server_default="[]"),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("heartbeat_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("exit_code", sa.Integer),
        sa.Column("seconds", sa.Float),
        sa.Column("error", sa.Text),
        sa.Column("release", sa.String(100)),
        sa.Column("commit", sa.String(64)),
        sa.Column("ref", sa.String(255)),
        sa.Column("previous_release", sa.String(100)),
        sa.Column("log_lines", sa.Integer, nullable=False, server_default="0"),
        sa.Column("log_pruned_at", sa.Float),
    )
    op.create_index("fab_operations_environment_id", "fab_operations", ["environment", "id"])
    op.create_table(
        "fab_steps",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("operation_id", sa.Integer, sa.ForeignKey("fab_operations.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("step", sa.String(100), nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("seconds", sa.Float),
        sa.Column("output", sa.Text),
    )
    op.create_index("ix_fab_steps_operation_id", "fab_steps", ["operation_id"])
    op.create_table(
        "fab_log_chunks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("operation_id", sa.Integer, sa.ForeignKey("fab_operations.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("first_line", sa.Integer, nullable=False),
        sa.Column("last_line", sa.Integer, nullable=False),
        sa.Column("content", sa.Text, nullable=False),
    )
    op.create_index("fab_log_chunks_operation_line", "fab_log_chunks", ["operation_id", "first_line"])
    op.create_table(
        "fab_claims",
        sa.Column("environment", sa.String(100), primary_key=True),
        sa.Column("token", sa.String(32), nullable=False),
        sa.Column("holder", sa.String(255), nullable=False),
        sa.Column("controller", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer),
        sa.Column("task", sa.String(100), nullable=False),
        sa.Column("operation_id", sa.Integer),
        sa.Column("claimed_at", sa.Float, nullable=False),
        sa.Column("heartbeat_at", sa.Float, nullable=False),
    )
    op.create_table(
        "fab_claim_audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("environment", sa.String(100), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("holder", sa.String(255), nullable=False),
        sa.Column("controller", sa.String(255), nullable=False),
        sa.Column("task", sa.String(100), nullable=False),
        sa.Column("claimed_at", sa.Float, nullable=False),
        sa.Column("heartbeat_at", sa.Float, nullable=False),
        sa.Column("by", sa.String(255), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("reason", sa.Text),
    )
    op.create_index("ix_fab_claim_audit_environment", "fab_claim_audit", ["environment"])
