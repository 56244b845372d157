"""Schema revisions of the history store, through Alembic, with no alembic.ini.

A new store is made by running every migration on an empty database (as
Buildbot does: the model is never used to create tables). A store at another
revision is never touched implicitly: `fab <env> history_upgrade` upgrades it.

Every task opens the store, and Alembic takes longer to import than a deploy
takes to build its release; so the revision is read with one query and the head
is a constant (a test checks it against the migrations): Alembic is imported
only to migrate or to tell an older revision from an unknown one.
"""
import functools
import os

import sqlalchemy as sa

from fab.history.schema import VERSION_TABLE

MIGRATIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "migrations")

#: The newest migration's revision: what this deployer's code expects.
HEAD = "0005"


def _config(connection=None):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    config.attributes["connection"] = connection
    return config


@functools.lru_cache(maxsize=None)
def _scripts():
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config())


def head():
    """The revision this deployer's code expects."""
    return HEAD


def migrations_head():
    """The head revision the migrations themselves say (HEAD must be it)."""
    return _scripts().get_current_head()


def known(revision):
    """Whether `revision` is one of this deployer's migrations (older or current)."""
    return any(script.revision == revision for script in _scripts().walk_revisions())


def current(connection):
    """The store's revision, or None for a database that has no history store yet."""
    if not sa.inspect(connection).has_table(VERSION_TABLE):
        return None
    table = sa.table(VERSION_TABLE, sa.column("version_num"))
    revisions = connection.execute(sa.select(table.c.version_num)).scalars().all()
    return revisions[0] if len(revisions) == 1 else None if not revisions else ",".join(sorted(revisions))


def upgrade(connection, revision="head"):
    """Run the migrations up to `revision` in the caller's transaction."""
    from alembic import command

    command.upgrade(_config(connection), revision)
