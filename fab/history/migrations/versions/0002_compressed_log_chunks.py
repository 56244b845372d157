"""Log chunks become bytes that may be zlib-compressed (a long log stays small).

Existing text chunks are kept: copied into `data` as UTF-8, uncompressed.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_BATCH = 500


def upgrade():
    with op.batch_alter_table("fab_log_chunks") as batch:
        batch.add_column(sa.Column("data", sa.LargeBinary, nullable=True))
        batch.add_column(sa.Column("compression", sa.SmallInteger, nullable=False, server_default="0"))

    chunks = sa.table("fab_log_chunks", sa.column("id", sa.Integer), sa.column("content", sa.Text),
                      sa.column("data", sa.LargeBinary))
    connection = op.get_bind()
    last_id = 0
    while True:
        rows = connection.execute(
            sa.select(chunks.c.id, chunks.c.content).where(chunks.c.id > last_id)
            .order_by(chunks.c.id).limit(_BATCH)
        ).all()
        if not rows:
            break
        for row in rows:
            connection.execute(sa.update(chunks).where(chunks.c.id == row.id)
                               .values(data=row.content.encode("utf-8")))
        last_id = rows[-1].id

    with op.batch_alter_table("fab_log_chunks") as batch:
        batch.alter_column("data", existing_type=sa.LargeBinary, nullable=False)
        batch.drop_column("content")
