"""Alembic's entry point for the history store; run only through fab.history.migrate.

The caller passes an open connection (config.attributes["connection"]), so no
alembic.ini and no URL are needed here.
"""
from alembic import context

from fab.history.schema import VERSION_TABLE

connection = context.config.attributes["connection"]
context.configure(connection=connection, version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
