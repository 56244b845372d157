"""The history store: opening it (schema checked, once per process) and every query.

Nothing outside fab/history talks to the database; this module owns the statements
(SQLAlchemy Core, no SQL strings), fab.history.engine the engine. A process opens
each store once; a store that cannot be reached stays unreachable for the rest of
the run, so a task does not wait for the same timeout twice.
"""
import json
import threading
import time

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from fab.errors import DeployError
from fab.history import chunks, liveness, migrate
from fab.history.engine import create_engine, describe_database_error, writing
from fab.history.errors import NoSuchOperation, SchemaMismatch, StoreUnavailable
from fab.history.schema import claim_audit, claims, log_chunks, operations, received_bytes, steps
from fab.history.urls import mask_secrets, mask_url


_opened = {}
_opening = threading.Lock()


def open_store(url, environment, retry=False):
    """The Store at `url`, created (every migration run) if the database has none.

    Raises StoreUnavailable (unreachable, bad URL) or SchemaMismatch (made by an
    older or newer deployer), each one line naming the URL without its password.
    The outcome is kept for the process; `retry` tries again after a failure.
    """
    with _opening:
        known = _opened.get(url)
        if isinstance(known, Store):
            return known
        if isinstance(known, DeployError) and not retry:
            raise type(known)(str(known)) from None
        try:
            store = open_url(url, environment)
        except DeployError as error:
            _opened[url] = error
            raise
        _opened[url] = store
        return store


def open_url(url, environment):
    engine = create_engine(url)
    location = mask_url(url)
    for attempt in (1, 2):
        creating = False
        try:
            with writing(engine) as connection:
                revision = migrate.current(connection)
                if revision is None:
                    creating = True
                    migrate.upgrade(connection)
                    revision = migrate.head()
            break
        except DBAPIError as error:
            # Two controllers creating one new store at once: the loser's CREATE fails;
            # the second look finds the winner's store.
            if creating and attempt == 1:
                continue
            engine.dispose()
            raise StoreUnavailable(
                f"history store {location} cannot be reached: {describe_database_error(error)}") from None
    check_revision(revision, location, environment)
    return Store(engine, location)


def check_revision(revision, location, environment):
    """Refuse a store this deployer does not expect, saying what to run."""
    expected = migrate.head()
    if revision == expected:
        return
    if migrate.known(revision):
        raise SchemaMismatch(
            f"history store {location} has schema {revision}, this deployer needs {expected}: "
            f"run `fab {environment} history_upgrade`")
    raise SchemaMismatch(
        f"history store {location} has schema {revision}, newer than this deployer ({expected}): "
        f"update the deployer (`git pull` in its checkout, or `pip install --upgrade`)")


def upgrade_store(url):
    """Upgrade the store at `url` to this deployer's schema; (from, to) revisions."""
    engine = create_engine(url)
    location = mask_url(url)
    try:
        with writing(engine) as connection:
            before = migrate.current(connection)
            if before is not None and not migrate.known(before):
                check_revision(before, location, "")
            if before != migrate.head():
                migrate.upgrade(connection)
    except DBAPIError as error:
        raise StoreUnavailable(
            f"history store {location} cannot be reached: {describe_database_error(error)}") from None
    finally:
        engine.dispose()
    with _opening:
        _opened.pop(url, None)
    return before, migrate.head()


class Store:
    """An open, up-to-date history store: every query of the history package."""

    def __init__(self, engine, location):
        self.engine = engine
        #: The URL as it may be shown (password masked).
        self.location = location

    # -- writing an operation (the recorder) -----------------------------------

    def start_operation(self, environment, task, arguments, performer, controller, pid, hosts,
                        started_at, message=None):
        """Insert the operation's row; its id. The same transaction first tries every
        write a recording makes (then undoes it), so a store that would take the row but
        not its steps or log (a table gone, a privilege missing) fails here, at the start."""
        with writing(self.engine) as connection:
            result = connection.execute(operations.insert().values(
                environment=environment, task=task,
                arguments=mask_secrets(json.dumps(arguments, sort_keys=True, default=str)),
                performer=performer, controller=controller, pid=pid, hosts=json.dumps(list(hosts)),
                started_at=started_at, heartbeat_at=started_at, outcome=liveness.RUNNING,
                message=mask_secrets(message) if message else None))
            operation_id = result.inserted_primary_key[0]
            self._try_recording(connection, operation_id, started_at)
            return operation_id

    def _try_recording(self, connection, operation_id, at):
        """Every kind of write `write_progress` makes, in a savepoint that is rolled back."""
        attempt = connection.begin_nested()
        step_id = connection.execute(steps.insert().values(
            operation_id=operation_id, host="-", step="-", started_at=at,
            outcome=liveness.RUNNING)).inserted_primary_key[0]
        connection.execute(steps.update().where(steps.c.id == step_id).values(outcome=liveness.RUNNING))
        data, compression = chunks.encode(["-"])
        connection.execute(log_chunks.insert().values(
            operation_id=operation_id, first_line=1, last_line=1, data=data, compression=compression))
        connection.execute(operations.update().where(operations.c.id == operation_id).values(heartbeat_at=at))
        connection.execute(received_bytes.insert().values(operation_id=operation_id, host="-", source="-", bytes=0))
        attempt.rollback()

    def write_progress(self, operation_id, first_line, lines, new_steps, finished_steps, changes, receipts=()):
        """One transaction: log lines numbered from `first_line`, steps begun (values; their
        row ids are returned, in order), steps ended ({row id: values}), `changes` to the
        operation (heartbeat, release, outcome, ...) and `receipts` (host, source, bytes)."""
        with writing(self.engine) as connection:
            return self._write_progress(connection, operation_id, first_line, lines, new_steps,
                                        finished_steps, changes, receipts)

    def _write_progress(self, connection, operation_id, first_line, lines, new_steps, finished_steps, changes,
                        receipts=()):
        number = first_line
        for group in chunks.split(lines):
            data, compression = chunks.encode(group)
            connection.execute(log_chunks.insert().values(
                operation_id=operation_id, first_line=number, last_line=number + len(group) - 1,
                data=data, compression=compression))
            number += len(group)
        ids = self._insert_steps(connection, operation_id, new_steps)
        # One statement for all the steps that ended (a 50-host stage ends 50 at once).
        for _fields, group in _grouped_by_fields(finished_steps.items()):
            connection.execute(
                steps.update().where(steps.c.id == sa.bindparam("row_id")),
                [{"row_id": step_id, **values} for step_id, values in group])
        if receipts:
            connection.execute(received_bytes.insert(), [dict(operation_id=operation_id, host=host, source=source,
                                                        bytes=count) for host, source, count in receipts])
        if lines:
            changes = {**changes, "log_lines": number - 1}
        if changes:
            connection.execute(
                operations.update().where(operations.c.id == operation_id).values(**changes))
        return ids

    def _insert_steps(self, connection, operation_id, new_steps):
        """Insert step rows in one statement where the database returns their ids in
        order (SQLite 3.35+, PostgreSQL), else one by one; their ids, in order."""
        if not new_steps:
            return []
        rows = [{field: values.get(field) for field in STEP_FIELDS} | {"operation_id": operation_id}
                for values in new_steps]
        if self.engine.dialect.insert_executemany_returning_sort_by_parameter_order:
            result = connection.execute(
                steps.insert().returning(steps.c.id, sort_by_parameter_order=True), rows)
            return [row.id for row in result]
        return [connection.execute(steps.insert().values(**row)).inserted_primary_key[0] for row in rows]

    def correct_operation(self, operation_id, lines, new_steps, running_steps_outcome, changes):
        """Complete the row of an operation still `running` whose end was not recorded
        (fab.history.reconcile), in one transaction: log `lines` after its own, step rows
        (values), its steps still running set to `running_steps_outcome`, and `changes`.
        False, changing nothing, if the row is no longer running (its own end, or another
        correction, came first)."""
        with writing(self.engine) as connection:
            row = connection.execute(sa.select(operations.c.outcome, operations.c.log_lines)
                                     .where(operations.c.id == operation_id)).first()
            if row is None or row.outcome != liveness.RUNNING:
                return False
            connection.execute(steps.update().where(steps.c.operation_id == operation_id,
                                                    steps.c.outcome == liveness.RUNNING)
                               .values(outcome=running_steps_outcome))
            self._write_progress(connection, operation_id, row.log_lines + 1, lines, new_steps, {}, changes)
        return True

    # -- reading ---------------------------------------------------------------

    def operations(self, environment, limit):
        """The environment's newest operations, newest first, as dicts."""
        query = (sa.select(operations).where(operations.c.environment == environment)
                 .order_by(operations.c.id.desc()).limit(limit))
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]

    def operation(self, environment, operation_id=None):
        """One operation of the environment (by id, or the newest); NoSuchOperation if none."""
        query = sa.select(operations).where(operations.c.environment == environment)
        if operation_id:
            query = query.where(operations.c.id == operation_id)
        query = query.order_by(operations.c.id.desc()).limit(1)
        with self.engine.connect() as connection:
            row = connection.execute(query).first()
        if row is None:
            which = f"operation {operation_id}" if operation_id else "operation"
            raise NoSuchOperation(f"{environment} has no {which} in the history store {self.location}")
        return dict(row._mapping)

    def newest_operation_id(self, environment):
        query = sa.select(sa.func.max(operations.c.id)).where(operations.c.environment == environment)
        with self.engine.connect() as connection:
            return connection.execute(query).scalar() or 0

    def steps(self, operation_id):
        query = sa.select(steps).where(steps.c.operation_id == operation_id).order_by(steps.c.id)
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]

    def received(self, operation_id):
        """{host: {source: bytes}} of the artifacts the operation's hosts received."""
        query = sa.select(received_bytes.c.host, received_bytes.c.source, received_bytes.c.bytes).where(
            received_bytes.c.operation_id == operation_id).order_by(received_bytes.c.id)
        hosts = {}
        with self.engine.connect() as connection:
            for host, source, count in connection.execute(query):
                hosts.setdefault(host, {})[source] = hosts.get(host, {}).get(source, 0) + count
        return hosts

    def log_lines(self, operation_id, after_line=0):
        """[(line number, text)] of the operation's log after line `after_line`."""
        query = (sa.select(log_chunks.c.first_line, log_chunks.c.data, log_chunks.c.compression)
                 .where(log_chunks.c.operation_id == operation_id, log_chunks.c.last_line > after_line)
                 .order_by(log_chunks.c.first_line))
        lines = []
        with self.engine.connect() as connection:
            for first, data, compression in connection.execute(query):
                for offset, text in enumerate(chunks.decode(data, compression)):
                    if first + offset > after_line:
                        lines.append((first + offset, text))
        return lines

    # -- retention -------------------------------------------------------------

    def prune(self, environment, older_than, now=None):
        """Delete the log text of the environment's operations started before `older_than`
        (epoch seconds) that are not running; keep their rows and steps, without step output.
        Returns how many operations lost their log text."""
        now = time.time() if now is None else now
        old = (sa.select(operations.c.id)
               .where(operations.c.environment == environment, operations.c.started_at < older_than,
                      operations.c.log_pruned_at.is_(None), operations.c.outcome != liveness.RUNNING))
        with writing(self.engine) as connection:
            ids = [row.id for row in connection.execute(old)]
            for start in range(0, len(ids), 500):  # SQLite limits the variables of one statement
                batch = ids[start:start + 500]
                connection.execute(log_chunks.delete().where(log_chunks.c.operation_id.in_(batch)))
                connection.execute(steps.update().where(steps.c.operation_id.in_(batch)).values(output=None))
                connection.execute(operations.update().where(operations.c.id.in_(batch))
                                   .values(log_pruned_at=now))
        return len(ids)

    # -- claims (the rules live in fab.history.claims) --------------------------

    def insert_claim(self, values):
        """Insert the environment's claim; IntegrityError if it is held (the uniqueness rule)."""
        with writing(self.engine) as connection:
            connection.execute(claims.insert().values(**values))

    def claim(self, environment):
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(claims).where(claims.c.environment == environment)).first()
        return dict(row._mapping) if row else None

    def replace_claim(self, old, values, audit):
        """Swap claim `old` (matched by its token) for `values`, with an audit row, in one
        transaction; False if `old` is no longer the claim (someone else was quicker)."""
        with writing(self.engine) as connection:
            matched = connection.execute(
                claims.update().where(claims.c.environment == old["environment"],
                                      claims.c.token == old["token"]).values(**values)).rowcount
            if matched != 1:
                return False  # nothing was changed
            connection.execute(claim_audit.insert().values(**audit))
        return True

    def delete_claim(self, environment, token, audit=None):
        """Remove the claim if `token` still holds it (with an audit row); whether it did."""
        with writing(self.engine) as connection:
            removed = connection.execute(
                claims.delete().where(claims.c.environment == environment, claims.c.token == token)
            ).rowcount
            if removed and audit:
                connection.execute(claim_audit.insert().values(**audit))
        return bool(removed)

    def heartbeat_claim(self, environment, token, now):
        """Refresh our claim's heartbeat; False if it is not ours any more."""
        with writing(self.engine) as connection:
            return connection.execute(
                claims.update().where(claims.c.environment == environment, claims.c.token == token)
                .values(heartbeat_at=now)).rowcount == 1

    def claim_audit(self, environment):
        query = (sa.select(claim_audit).where(claim_audit.c.environment == environment)
                 .order_by(claim_audit.c.id))
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]


#: The columns a step row is written with (absent values are NULL).
STEP_FIELDS = ("host", "step", "started_at", "finished_at", "outcome", "note", "seconds", "output")


def _grouped_by_fields(items):
    """[(field names, [(id, values)])] of `items`, grouped by which fields they set:
    each group is one executemany statement."""
    groups = {}
    for row_id, values in items:
        groups.setdefault(tuple(sorted(values)), []).append((row_id, values))
    return list(groups.items())
