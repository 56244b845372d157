"""The history store's database engine: made for a sqlite:// or postgresql:// URL
(SQLite in WAL mode, writers taking its write lock at once; a reader that can change
nothing), the writing transaction, and a driver error in one line.

Nothing outside fab/history makes an engine; fab.history.store opens one as a Store.
"""
import os
import sqlite3
import time
import urllib.parse

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from fab.history.errors import StoreMisconfigured
from fab.history.urls import mask_secrets, mask_url
from fab.precedence import default_sqlite_path

CONNECT_TIMEOUT = 5  # seconds, to a PostgreSQL server
SQLITE_BUSY_TIMEOUT = 30  # seconds a writer waits for another process's write
WAL_SWITCH_TRIES = 100  # x 0.1 s


def create_engine(url, read_only=False):
    """An engine for a sqlite:// or postgresql:// URL (postgresql means psycopg 3).

    `read_only`: no statement through it can change the store (SQLite: query_only,
    and a missing file is an error, never created; PostgreSQL: read-only
    transactions), for readers such as the dashboard."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreMisconfigured(f"history store {mask_url(url)}: not a database URL") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    backend = parsed.get_backend_name()
    try:
        if backend == "sqlite":
            if read_only:
                parsed = _sqlite_uri_read_write(parsed)
            elif parsed.database and parsed.database != ":memory:":
                _sqlite_directory(url, os.path.abspath(parsed.database))
            engine = sa.create_engine(
                parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT, "check_same_thread": False})
            sa_event.listen(engine, "connect", _sqlite_connect_reading if read_only else _sqlite_connect)
            sa_event.listen(engine, "begin", _sqlite_begin)
            return engine
        if backend == "postgresql":
            # pre_ping: a long deploy's pooled connection may have been dropped by the server.
            options = {"options": "-c default_transaction_read_only=on"} if read_only else {}
            return sa.create_engine(parsed, pool_pre_ping=True,
                                    connect_args={"connect_timeout": CONNECT_TIMEOUT, **options})
    except (NoSuchModuleError, ImportError) as error:
        raise StoreMisconfigured(f"history store {mask_url(url)}: {error}") from None
    raise StoreMisconfigured(f"history store {mask_url(url)}: use a sqlite:// or postgresql:// URL")


def _sqlite_directory(url, path):
    """Make the default store's directory; any other must exist already: a typo in a
    shared store's path would otherwise start a new, empty history of its own."""
    directory = os.path.dirname(path)
    if path == os.path.abspath(default_sqlite_path(os.environ)):
        os.makedirs(directory, mode=0o700, exist_ok=True)
    elif not os.path.isdir(directory):
        raise StoreMisconfigured(f"history store {mask_url(url)}: directory {directory} does not exist")


def _sqlite_connect(dbapi_connection, _record):
    # The driver would begin transactions itself, and not before DDL: a migration cut
    # short would leave half a schema. _sqlite_begin begins them instead.
    dbapi_connection.isolation_level = None
    # Pragmas have no Core construct. WAL lets a follower read while a deploy writes;
    # NORMAL sync is durable across a killed process (only power loss may drop the last flush).
    cursor = dbapi_connection.cursor()
    for attempt in range(WAL_SWITCH_TRIES):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError:
            # Switching a new file to WAL needs it alone, and SQLite does not wait for
            # that: two controllers opening a new store at once may collide once.
            if attempt == WAL_SWITCH_TRIES - 1:
                raise
            time.sleep(0.1)
    for pragma in ("synchronous=NORMAL", "foreign_keys=ON"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def sqlite_path(url):
    """The file of a sqlite:// store URL (absolute), or None for any other URL."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return os.path.abspath(parsed.database)


def _sqlite_uri_read_write(parsed):
    """The URL opening an existing SQLite file only (SQLite's mode=rw never creates
    one). Read-write, not mode=ro: a reader of a WAL store shares its -shm index
    with the writers, so it sees their commits while a deploy writes."""
    path = os.path.abspath(parsed.database or "")
    return parsed.set(database=f"file:{urllib.parse.quote(path)}", query={"mode": "rw", "uri": "true"})


def _sqlite_connect_reading(dbapi_connection, _record):
    dbapi_connection.isolation_level = None  # BEGIN is _sqlite_begin's, as for writers
    # No statement through this connection may change the store (the journal mode is
    # the writers' to set: the store is WAL already).
    dbapi_connection.execute("PRAGMA query_only=ON")


def _sqlite_begin(connection):
    # A writing transaction takes SQLite's write lock at once, so two writers wait their
    # turn (busy timeout) instead of one failing half-way; readers never take it.
    writing = connection.get_execution_options().get("writing")
    connection.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")


def writing(engine):
    """A transaction that writes (on SQLite: holds the write lock from its start)."""
    return engine.execution_options(writing=True).begin()


def describe_database_error(error):
    """One line for a driver error, with any URL's password masked."""
    original = getattr(error, "orig", None) or error
    lines = [line.strip() for line in str(original).splitlines() if line.strip()]
    return mask_secrets(lines[0] if lines else type(original).__name__)
