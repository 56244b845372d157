"""The history store's tables, as the newest migration leaves them (SQLAlchemy Core).

This is the canonical description the queries use; the database itself is made
and upgraded only by the migrations in migrations/versions/, and a test checks
that the two agree. Times are epoch seconds (floats): the same on every
database, and what the events carry. Every name starts with fab_ so the store
can share a PostgreSQL database with other things.
"""
import sqlalchemy as sa

metadata = sa.MetaData()

#: Alembic's bookkeeping table for this store's schema revision.
VERSION_TABLE = "fab_history_version"

#: One row per task run (deploy, rollback, hotfix_deploy, unlock, ...).
operations = sa.Table(
    "fab_operations", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("environment", sa.String(100), nullable=False),
    sa.Column("task", sa.String(100), nullable=False),
    sa.Column("arguments", sa.Text, nullable=False, server_default="{}"),  # JSON
    sa.Column("performer", sa.String(255), nullable=False),  # user@machine
    sa.Column("controller", sa.String(255), nullable=False),  # the machine fab ran on
    sa.Column("pid", sa.Integer),
    sa.Column("hosts", sa.Text, nullable=False, server_default="[]"),  # JSON
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("heartbeat_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float),
    sa.Column("outcome", sa.String(20), nullable=False),  # running until finished
    sa.Column("exit_code", sa.Integer),
    sa.Column("seconds", sa.Float),
    sa.Column("error", sa.Text),
    sa.Column("release", sa.String(100)),
    sa.Column("commit", sa.String(64)),
    sa.Column("ref", sa.String(255)),
    sa.Column("previous_release", sa.String(100)),
    sa.Column("message", sa.Text),  # why, as the performer said it (bounded: fab.task_input)
    sa.Column("commit_time", sa.Float),  # the commit's committer time, where the controller knew it
    sa.Column("commit_subject", sa.Text),  # its first line (one line, masked, bounded: fab.history.recording)
    sa.Column("log_lines", sa.Integer, nullable=False, server_default="0"),
    sa.Column("log_pruned_at", sa.Float),
    sa.Index("fab_operations_environment_id", "environment", "id"),
    # The dashboard's pages (fab.dashboard.reading): history filters, summaries, windows.
    sa.Index("fab_operations_environment_task_id", "environment", "task", "id"),
    sa.Index("fab_operations_task_id", "task", "id"),
    sa.Index("fab_operations_outcome_id", "outcome", "id"),
    sa.Index("fab_operations_performer_id", "performer", "id"),
    sa.Index("fab_operations_environment_started", "environment", "started_at"),
)

#: One row per host and step of an operation.
steps = sa.Table(
    "fab_steps", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("operation_id", sa.Integer, sa.ForeignKey("fab_operations.id", ondelete="CASCADE"),
              nullable=False, index=True),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("step", sa.String(100), nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float),
    sa.Column("outcome", sa.String(20), nullable=False),  # running, ok, skipped, failed
    sa.Column("note", sa.Text),
    sa.Column("seconds", sa.Float),
    sa.Column("output", sa.Text),  # a failure's last output lines
)

#: Bytes of artifacts (bundles, wheels) a host received in an operation, per source:
#: "controller" or the peer host it fetched from (fab.transfer). A host may have
#: several rows for one source (one per delivery): their sum is what it received.
received_bytes = sa.Table(
    "fab_received", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("operation_id", sa.Integer, sa.ForeignKey("fab_operations.id", ondelete="CASCADE"),
              nullable=False, index=True),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("source", sa.String(255), nullable=False),
    sa.Column("bytes", sa.BigInteger, nullable=False),
)

#: The log of an operation, in chunks of consecutive lines (line numbers from 1).
log_chunks = sa.Table(
    "fab_log_chunks", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("operation_id", sa.Integer, sa.ForeignKey("fab_operations.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("first_line", sa.Integer, nullable=False),
    sa.Column("last_line", sa.Integer, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("compression", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Index("fab_log_chunks_operation_line", "operation_id", "first_line"),
)

#: At most one row per environment: the primary key is the rule that two
#: controllers cannot both hold it.
claims = sa.Table(
    "fab_claims", metadata,
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

#: Every claim that was taken over (stale) or cleared (unlock): whose, by whom, when.
claim_audit = sa.Table(
    "fab_claim_audit", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("environment", sa.String(100), nullable=False, index=True),
    sa.Column("action", sa.String(20), nullable=False),  # taken_over, cleared
    sa.Column("holder", sa.String(255), nullable=False),
    sa.Column("controller", sa.String(255), nullable=False),
    sa.Column("task", sa.String(100), nullable=False),
    sa.Column("claimed_at", sa.Float, nullable=False),
    sa.Column("heartbeat_at", sa.Float, nullable=False),
    sa.Column("by", sa.String(255), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("reason", sa.Text),
)
