"""Schema revisions of the history store, through Alembic, with no alembic.ini.

A new store is made by running every migration on an empty database (as
Buildbot does: the model is never used to create tables). A store at another
revision is never touched implicitly: `fab <env> history_upgrade` upgrades it.
"""
import functools
import os

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from fab.history.schema import VERSION_TABLE

MIGRATIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "migrations")


def _config(connection=None):
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    config.attributes["connection"] = connection
    return config


@functools.lru_cache(maxsize=None)
def _scripts():
    return ScriptDirectory.from_config(_config())


def head():
    """The revision this deployer's code expects."""
    return _scripts().get_current_head()


def known(revision):
    """Whether `revision` is one of this deployer's migrations (older or current)."""
    return any(script.revision == revision for script in _scripts().walk_revisions())


def current(connection):
    """The store's revision, or None for a database that has no history store yet."""
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def upgrade(connection, revision="head"):
    """Run the migrations up to `revision` in the caller's transaction."""
    command.upgrade(_config(connection), revision)
