"""The dashboard's view of the history stores: every environment, read only.

`discover` finds every environment this machine can see (their files, with the
same store URL rules as the tasks: FAB_HISTORY_URL first) and one Reader per
distinct store; environments that only a store knows (a dashboard machine with
FAB_HISTORY_URL and no environment files) are read too. A Reader never creates
or migrates a store: a missing SQLite file is "no history yet", a store at
another schema is one line saying what to run, and its connections cannot write
(SQLite query_only, PostgreSQL read-only transactions).

The shapes returned (operation summary, detail, environment summary) are those of
the dashboard's contract; fab.dashboard.summaries builds them from rows.
"""
import contextlib
import heapq
import os
import threading
import time

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from fab import folders
from fab.dashboard import summaries
from fab.errors import DeployError
from fab.events import SUCCEEDED
from fab.history import chunks, liveness, migrate
from fab.history.engine import create_engine, describe_database_error, sqlite_path
from fab.history.schema import claims, log_chunks, operations, received_bytes, steps
from fab.history.store import check_revision
from fab.history.urls import mask_url, store_url
from fab.identity import controller_name
from fab.settings.team import HistorySettings

DEFAULT_STALE_SECONDS = HistorySettings().stale_seconds
#: Log lines read back from a rollback's end for the freeze it announced, and how many
#: rollbacks since the last freeze or unfreeze are looked at.
FREEZE_LOG_TAIL = 40
FREEZE_ROLLBACKS = 10
#: The largest id or line number a store can hold (a URL may ask for any).
MAX_ID = 2 ** 63 - 1
#: A store that could not be read (unreachable, at another schema) is tried again at most
#: this often: `history_upgrade` run while the dashboard serves takes effect without a restart.
RETRY_SECONDS = 5.0


def discover(environ=os.environ):
    """Every environment this machine can see, grouped by store: a Catalogue.
    Never raises for one environment or store: each failure is a `problems` line."""
    from fab.config import load_environment  # pydantic and YAML: only when the dashboard starts

    problems, urls, stale = [], {}, {}
    for name in folders.available_environments():
        try:
            env = load_environment(name)
            urls.setdefault(store_url(env.history, environ), []).append(name)
            stale[name] = env.history.stale_seconds
        except DeployError as error:
            problems.append(f"environment {name}: {error}")
    try:  # the store a task with no environment file would use (FAB_HISTORY_URL, else the default file)
        urls.setdefault(store_url(None, environ), [])
    except DeployError as error:
        problems.append(str(error))
    readers = [Reader(url, names, stale) for url, names in urls.items()]
    return Catalogue(readers, problems)


class Catalogue:
    """The stores of every environment: which Reader reads which environment."""

    def __init__(self, readers, problems=()):
        self.readers = list(readers)
        self._problems = list(problems)
        self._by_environment = {}
        for reader in self.readers:  # a configured environment is read from its own store
            self._by_environment.update(dict.fromkeys(reader.configured, reader))
        for reader in self.readers:  # one only a store knows, from the first store that has it
            for name in reader.environments:
                self._by_environment.setdefault(name, reader)
        for reader in self.readers:
            reader.environments = sorted(name for name, owner in self._by_environment.items() if owner is reader)

    @property
    def environments(self):
        return sorted(self._by_environment)

    @property
    def problems(self):
        """One line per environment file or store that cannot be read, as of now."""
        return self._problems + [reader.problem for reader in self.readers if reader.problem]

    def reader(self, environment):
        """The Reader of `environment`'s store; KeyError if no store or file knows it."""
        return self._by_environment[environment]

    def close(self):
        for reader in self.readers:
            reader.close()


class Reader:
    """One history store, opened for reading only."""

    def __init__(self, url, configured=(), stale_seconds=None):
        #: The URL as it may be shown (password masked).
        self.location = mask_url(url)
        self.configured = list(configured)
        self._stale = dict(stale_seconds or {})
        self._controller = controller_name()
        #: Why this store cannot be read (one line), or None.
        self.problem = None
        self._url = url
        self._opening = threading.Lock()
        self._held = threading.local()  # the connection _reading holds in this thread
        self._tried_at = time.monotonic()
        self.engine = self._open(url)
        self._stored = self._stored_environments() if self.engine else []
        #: The environments read from this store (the Catalogue settles who reads which).
        self.environments = sorted(set(self.configured) | set(self._stored))

    def _open(self, url):
        path = sqlite_path(url)
        if path is not None and not os.path.isfile(path):
            return None  # no history yet: nothing has been recorded here
        try:
            engine = create_engine(url, read_only=True)
        except DeployError as error:
            self.problem = str(error)
            return None
        try:
            with engine.connect() as connection:
                revision = migrate.current(connection)
            if revision is not None:  # None: an empty database, no history yet
                check_revision(revision, self.location, self.configured[0] if self.configured else "<environment>")
                return engine
        except DBAPIError as error:
            self.problem = f"history store {self.location} cannot be reached: {describe_database_error(error)}"
        except DeployError as error:
            self.problem = str(error)
        engine.dispose()
        return None

    def close(self):
        if self.engine is not None:
            self.engine.dispose()

    @contextlib.contextmanager
    def _reading(self):
        """One connection (and one read transaction: a consistent snapshot) for every
        query in the block, in this thread: a page's dozens of small queries then cost
        one checkout of the pool, not a ping and a transaction each. None: no store."""
        held = getattr(self._held, "connection", None)
        if held is not None:
            yield held
            return
        if self.engine is None and (self.problem is None or time.monotonic() - self._tried_at >= RETRY_SECONDS):
            with self._opening:  # the first task since may have made the store, or upgraded it
                if self.engine is None:
                    self._tried_at, self.problem = time.monotonic(), None
                    self.engine = self._open(self._url)
        if self.engine is None:
            yield None
            return
        with self.engine.connect() as connection:
            self._held.connection = connection
            try:
                yield connection
            finally:
                self._held.connection = None

    def _rows(self, query):
        with self._reading() as connection:
            return [dict(row._mapping) for row in connection.execute(query)] if connection is not None else []

    def _first(self, query):
        rows = self._rows(query.limit(1))
        return rows[0] if rows else None

    def _stored_environments(self):
        return [row["environment"] for row in self._rows(sa.select(operations.c.environment).distinct())]

    def _exclusive(self):
        """Whether every environment this store held when opened is read from it (no
        other store's reader owns one): its queries then need no environment list, and
        walk the primary key or a covering index instead."""
        return set(self._stored) <= set(self.environments)

    def _stale_after(self, environment):
        return self._stale.get(environment, DEFAULT_STALE_SECONDS)

    def _summary(self, row, now):
        return summaries.operation_summary(row, now, self._stale_after(row["environment"]), self._controller)

    def _newest(self, environment, *conditions):
        return self._first(sa.select(operations).where(operations.c.environment == environment, *conditions)
                           .order_by(operations.c.id.desc()))

    def _newest_succeeded(self, environment, tasks, *conditions):
        """The newest successful operation of any of `tasks`: one query per task, each
        walking back its (environment, task, id) index."""
        rows = [self._newest(environment, operations.c.task == task, _succeeded(), *conditions) for task in tasks]
        return max((row for row in rows if row), key=lambda row: row["id"], default=None)

    # -- the environments page ---------------------------------------------------

    def environment_summaries(self, now):
        """One dict per environment of this store (the contract's shape)."""
        with self._reading():
            return [self.environment_summary(name, now) for name in self.environments]

    def environment_summary(self, environment, now):
        live = self._newest_succeeded(environment, summaries.LIVE_TASKS, operations.c.release.isnot(None))
        last = self._newest(environment)
        running = self._rows(sa.select(operations).where(
            operations.c.environment == environment, operations.c.outcome == liveness.RUNNING)
            .order_by(operations.c.id.desc()).limit(5))
        running = next((summary for summary in (self._summary(row, now) for row in running)
                        if summary["outcome"] == liveness.RUNNING), None)
        claim = self._first(sa.select(claims).where(claims.c.environment == environment))
        return {"environment": environment, "live": summaries.live(live),
                "last": self._summary(last, now) if last else None, "running": running,
                "locked": summaries.lock(claim, now, self._stale_after(environment)),
                "frozen": self._frozen(environment)}

    def _frozen(self, environment):
        row = self._newest_succeeded(environment, summaries.FREEZE_TASKS)
        since = row["id"] if row else 0
        rollbacks = self._rows(sa.select(operations).where(
            operations.c.environment == environment, operations.c.task == "rollback", _succeeded(),
            operations.c.id > since).order_by(operations.c.id.desc()).limit(FREEZE_ROLLBACKS))
        for rollback in rollbacks:  # a rollback that froze (rollback_freezes) says so at its end
            tail = [text for _, text in self.log_after(rollback["id"], max(0, rollback["log_lines"] - FREEZE_LOG_TAIL))]
            frozen = summaries.freeze(rollback, environment, tail)
            if frozen:
                return frozen
        return summaries.freeze(row, environment)

    # -- the history page ----------------------------------------------------------

    def history(self, filters, before=None, limit=50):
        """(operation summaries newest first, the cursor of the next page or None).
        `filters`: environment, task, outcome, performer (None or exact; a performer
        also matches its prefix before "@"); `before`: a cursor from a previous page.
        ValueError for a cursor that is not one."""
        query = self._filtered(filters).order_by(operations.c.id.desc()).limit(limit + 1)
        position = summaries.reader_position(before)
        if position is not None:
            query = query.where(operations.c.id < position)
        rows = self._rows(query)
        page = rows[:limit]
        now = time.time()
        following = summaries.reader_cursor(page[-1]["id"]) if len(rows) > limit else None
        return [self._summary(row, now) for row in page], following

    def _filtered(self, filters):
        query = sa.select(operations)
        environment = filters.get("environment")
        if environment:
            query = query.where(operations.c.environment == environment)
        elif not self._exclusive():  # a shared store may hold environments another store is read for
            query = query.where(operations.c.environment.in_(self.environments))
        for field in ("task", "outcome"):
            if filters.get(field):
                query = query.where(operations.c[field] == filters[field])
        performer = filters.get("performer")
        if performer:
            query = query.where(sa.or_(operations.c.performer == performer,
                                       operations.c.performer.startswith(f"{performer}@", autoescape=True)))
        return query

    def distinct_values(self):
        """{"task", "outcome", "performer": sorted stored values} for the filter menus."""
        with self._reading():
            return {field: self._distinct(field) for field in ("task", "outcome", "performer")}

    def _distinct(self, field):
        column = operations.c[field]
        query = sa.select(column).distinct().order_by(column)
        if not self._exclusive():
            query = query.where(operations.c.environment.in_(self.environments))
        return [row[field] for row in self._rows(query)]

    # -- an operation --------------------------------------------------------------

    def operation(self, environment, operation_id, now):
        """The operation's detail (summary, steps, bytes received, log size), or None."""
        if not 0 < operation_id <= MAX_ID:
            return None
        with self._reading():
            return self._operation(environment, operation_id, now)

    def _operation(self, environment, operation_id, now):
        row = self._first(sa.select(operations).where(operations.c.environment == environment,
                                                      operations.c.id == operation_id))
        if row is None:
            return None
        step_rows = self._rows(sa.select(steps).where(steps.c.operation_id == operation_id).order_by(steps.c.id))
        received = {}
        for receipt in self._rows(sa.select(received_bytes).where(received_bytes.c.operation_id == operation_id)
                                  .order_by(received_bytes.c.id)):
            sources = received.setdefault(receipt["host"], {})
            sources[receipt["source"]] = sources.get(receipt["source"], 0) + receipt["bytes"]
        return summaries.operation_detail(self._summary(row, now), row, step_rows, received, now)

    def log_after(self, operation_id, after_line=0, limit=5000):
        """[(line number, text)] of the operation's log after `after_line`, at most `limit`."""
        if not 0 < operation_id <= MAX_ID or not 0 <= after_line <= MAX_ID - limit:
            return []
        query = (sa.select(log_chunks.c.first_line, log_chunks.c.data, log_chunks.c.compression)
                 .where(log_chunks.c.operation_id == operation_id, log_chunks.c.last_line > after_line,
                        log_chunks.c.first_line <= after_line + limit)
                 .order_by(log_chunks.c.first_line))
        lines = []
        for chunk in self._rows(query):
            for offset, text in enumerate(chunks.decode(chunk["data"], chunk["compression"])):
                number = chunk["first_line"] + offset
                if after_line < number <= after_line + limit:
                    lines.append((number, text))
        return lines

    def operations_in_window(self, environment, since, until):
        """Every operation of `environment` (all tasks) started in [since, until), oldest first."""
        now = time.time()
        return [self._summary(row, now) for row in self._rows(
            sa.select(operations).where(operations.c.environment == environment,
                                        operations.c.started_at >= since, operations.c.started_at < until)
            .order_by(operations.c.started_at, operations.c.id))]


def _succeeded():
    """outcome = succeeded, tested row by row (`|| ''`): most rows succeeded, so the
    outcome index (for the history's filter) would walk most of the table, where the
    environment's own index finds the newest in a few rows."""
    return (operations.c.outcome + "") == SUCCEEDED


def history(catalogue, filters, before=None, limit=50):
    """The history of every store of `catalogue` merged newest first (by start time):
    (operation summaries, the next page's cursor or None). Each store is paged by its
    own keyset; the cursor carries where each one stands (ValueError: not a cursor)."""
    readers = list(enumerate(catalogue.readers))
    if filters.get("environment"):
        try:
            wanted = catalogue.reader(filters["environment"])
        except KeyError:
            return [], None
        readers = [(index, reader) for index, reader in readers if reader is wanted]
    positions = summaries.catalogue_positions(before)
    pages, exhausted = {}, set()
    for index, reader in readers:
        position = positions.get(index)
        if position == 0:
            continue  # that store is done
        rows, following = reader.history(filters, None if position is None else str(position), limit)
        pages[index] = rows
        if following is None:
            exhausted.add(index)
    merged = list(heapq.merge(*([(row, index) for row in rows] for index, rows in pages.items()),
                              key=lambda item: (-item[0]["started_at"], item[1])))[:limit]
    moved = dict(positions)
    for index, rows in pages.items():
        taken = [row for row, where in merged if where == index]
        if index in exhausted and len(taken) == len(rows):
            moved[index] = 0  # every row it has left is on this page
        elif taken:
            moved[index] = taken[-1]["id"]
    done = all(moved.get(index) == 0 for index, _ in readers)
    return [row for row, _ in merged], None if done else summaries.catalogue_cursor(moved)
