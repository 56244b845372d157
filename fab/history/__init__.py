"""The history store: every operation on an environment, its steps and its log.

Buildbot's database, for deploys: SQLAlchemy Core tables (schema.py) made and
upgraded by Alembic migrations (migrations/), SQLite by default and PostgreSQL
by URL (urls.py), log chunks (chunks.py), claims that two controllers cannot
both win (claims.py), retention. Task code never talks to the database: it uses
the functions below. SQLAlchemy and Alembic are imported only when one of them
runs, so `fab -l` stays fast.

    recorder(env)                   a subscriber of fab.events.stream (fab.runner)
    claimed(env, task, holder, controller)
                                    hold the environment's claim (fab.opening.locked)
    clear_claim(env, by)            `fab <env> unlock`
    correct_unfinished(env, claim, states)
                                    complete the record of a run that never recorded
                                    its end, from the hosts (fab.opening.locked)
    history_lines(env, limit, as_json), log_lines(env, operation_id),
    follow_log(env, operation_id, write), prune(env, days), upgrade(env)
                                    the history tasks of fabfile.py
    open_store(env), location(env)  the store itself, its URL as it may be shown
"""
import contextlib
import importlib
import threading
import time

from fab import precedence
from fab.events import stream

#: Tasks that go ahead (with a warning) when the store cannot be reached or is at
#: another schema: the emergency tools. Every other task that claims refuses.
GOES_AHEAD_WITHOUT_STORE = frozenset({"rollback", "unlock"})
FOLLOW_POLL_SECONDS = 0.5
HISTORY_LIMIT = 20
RECONCILE_LOOKBACK = 20  # operations looked at for a run that never recorded its end


_importing = threading.Lock()


def import_store_modules():
    """Import SQLAlchemy and the store's modules, one thread at a time. The recorder
    opens the store in its writer thread while the task connects to its hosts, and
    SQLAlchemy imported from two threads at once (its imports are circular) can leave
    one of them a half-initialised module. Every use of the store calls this first."""
    with _importing:
        for module in ("fab.history.store", "fab.history.claims"):
            importlib.import_module(module)


def recorder(env):
    """The subscriber that records `env`'s task runs as they happen."""
    from fab.history.recording import Recorder

    return Recorder(env)


def location(env):
    """The store's URL for `env`, password masked (the default is a per-user SQLite file)."""
    from fab.history.urls import mask_url, store_url

    return mask_url(store_url(env.history))


def open_store(env):
    """The environment's store, open and at this deployer's schema (one-line errors otherwise)."""
    import_store_modules()
    from fab.history.store import open_store as open_url
    from fab.history.urls import store_url

    return open_url(store_url(env.history), env.name)


@contextlib.contextmanager
def claimed(env, task, holder, controller, token=None, holder_gone=None):
    """Hold `env`'s claim in the store while the block runs; ClaimHeld (exit 3) if another
    controller holds it (see fab.history.claims.acquire for `token` and `holder_gone`).
    Without a reachable, current store that records this task's run, only the emergency
    tools go ahead (with a warning); every other task refuses before touching a host: a
    store that cannot record is one that cannot be reached."""
    import_store_modules()
    from fab.history import claims
    from fab.history.errors import SchemaMismatch, StoreUnavailable
    from fab.history.recording import operation_id, unrecordable
    from fab.history.engine import describe_database_error

    try:
        with database_errors(env):
            store = open_store(env)
            why_not = unrecordable(env.name)
            if why_not:
                raise StoreUnavailable(why_not)
            claim = claims.acquire(store, env.name, task, holder, controller, env.history.stale_seconds,
                                   operation_id=operation_id(env.name), token=token, holder_gone=holder_gone)
    except (StoreUnavailable, SchemaMismatch) as error:
        if task not in GOES_AHEAD_WITHOUT_STORE:
            if isinstance(error, StoreUnavailable):
                raise type(error)(f"{error}; {task} does not run without it "
                                  f"(rollback and unlock do)") from None
            raise
        stream.warning(f"{error}; {task} goes ahead without claiming {env.name}")
        yield None
        return
    if claim.took_over:
        stream.warning(f"took over the stale claim of {claims.describe(claim.took_over)}: "
                       f"{claim.why}; kept in the claim audit")
    heartbeat = claims.Heartbeat(store, claim, stream.warning).start()
    try:
        yield claim
    finally:
        heartbeat.stop()
        try:
            claims.release(store, claim)
        except Exception as error:  # noqa: BLE001 - the task's own outcome matters more
            stream.warning(f"could not release the claim on {env.name}: {describe_database_error(error)}")


def correct_unfinished(env, claim, states):
    """Under the lock, before this task changes any host: if the previous run on `env`
    never recorded its end (killed outright, or its store was down when it ended),
    complete its row from `states` ({host: HostState}, as just read): per host whether it
    runs that run's release, and how it ended (fab.history.reconcile). `claim` is this
    task's (None without a store: then nothing is done). Never stops the task."""
    if claim is None:
        return
    from fab.history import liveness, reconcile
    from fab.history.recording import operation_id
    from fab.history.engine import describe_database_error
    from fab.identity import controller_name

    store = open_store(env)
    own = operation_id(env.name)
    taken_over = (claim.took_over or {}).get("operation_id")
    here = controller_name()
    try:
        found = reconcile.unfinished(
            store.operations(env.name, RECONCILE_LOOKBACK), own, taken_over, time.time(),
            env.history.stale_seconds,
            lambda row: liveness.process_alive_here(row["controller"], row["pid"], here))
        if found is None:
            return
        on_hosts = {}
        for host, state in states.items():
            if state is not None:
                held = state.release(found["release"]) if found["release"] else None
                on_hosts[host] = (state.current, getattr(getattr(held, "meta", None), "status", None))
        fix = reconcile.correction(found, on_hosts, own)
        now = time.time()
        steps = [dict(host=host, step="current", started_at=now, finished_at=now, outcome=how,
                      note=f"runs {current or 'no release'}") for host, (how, current) in fix.hosts.items()]
        changes = dict(outcome=fix.outcome, error=fix.summary)
        corrected = store.correct_operation(found["id"], [f"[reconciled] {fix.summary}"], steps,
                                            fix.steps_left_running, changes)
    except Exception as error:  # noqa: BLE001 - the record is housekeeping; the task goes on
        stream.warning(f"could not complete the record of an earlier {env.name} run: "
                       f"{describe_database_error(error)}")
        return
    if corrected:
        stream.note(f"operation {found['id']} ({found['task']}) never recorded its end: "
                    f"recorded now as {fix.outcome} ({fix.summary.split('; ', 1)[1]})")


def clear_claim(env, by):
    """Remove whoever's claim on `env` (an audit row kept): its description, or None.
    A store that cannot be reached is a warning: unlock goes ahead with the host lock."""
    import_store_modules()
    from fab.history import claims
    from fab.history.errors import SchemaMismatch, StoreUnavailable

    try:
        with database_errors(env):
            removed = claims.clear(open_store(env), env.name, by)
    except (StoreUnavailable, SchemaMismatch) as error:
        stream.warning(f"{error}; unlock goes ahead without clearing a claim")
        return None
    return claims.describe(removed) if removed else None


@contextlib.contextmanager
def database_errors(env):
    """A database error in the middle of a use of the store is one line: StoreUnavailable."""
    import_store_modules()
    from sqlalchemy.exc import DBAPIError

    from fab.history.errors import StoreUnavailable
    from fab.history.engine import describe_database_error

    try:
        yield
    except DBAPIError as error:
        raise StoreUnavailable(f"history store {location(env)} failed: {describe_database_error(error)}") from None


def _as_read_now(env, operation, now):
    """The operation as it reads now: `running` with a gone holder reads `interrupted`."""
    from fab.history import liveness
    from fab.identity import controller_name

    alive = liveness.process_alive_here(operation["controller"], operation["pid"], controller_name())
    operation["outcome"] = liveness.effective_outcome(
        operation["outcome"], operation["heartbeat_at"], now, env.history.stale_seconds, alive)
    return operation


def history_lines(env, limit=HISTORY_LIMIT, as_json=False):
    """The environment's last `limit` operations: a table (after the store's location) or JSON."""
    from fab.errors import UsageError
    from fab.history import views

    if limit < 1:
        raise UsageError("history: limit must be at least 1")
    store = open_store(env)
    now = time.time()
    with database_errors(env):
        operations = [_as_read_now(env, op, now) for op in store.operations(env.name, limit)]
    if as_json:
        return [views.history_json(operations, now)]
    if not operations:
        return [f"history store: {store.location}", f"no operations recorded for {env.name} yet"]
    return [f"history store: {store.location}"] + views.history_table(operations, now)


def log_lines(env, operation_id=0):
    """The whole log of one operation (the newest by default), its steps and its ending."""
    from fab.history import views

    store = open_store(env)
    now = time.time()
    with database_errors(env):
        operation = _as_read_now(env, store.operation(env.name, operation_id), now)
        return (views.log_header(operation)
                + [text for _, text in store.log_lines(operation["id"])]
                + views.pruned_note(operation, env.history.retention_days)
                + views.steps_table(store.steps(operation["id"]), now, operation["outcome"])
                + views.log_footer(operation, now))


def follow_log(env, operation_id, write, poll=FOLLOW_POLL_SECONDS):
    """Write a running operation's lines as they are recorded, until it ends (scap3's
    deploy-log). With no operation running, wait for the next one to start."""
    store = open_store(env)
    with database_errors(env):
        _follow(env, store, operation_id, write, poll)


def _follow(env, store, operation_id, write, poll):
    from fab.history import liveness, views

    try:
        if operation_id:
            operation = store.operation(env.name, operation_id)
        else:
            operation = _next_to_follow(env, store, write, poll)
        for line in views.log_header(operation):
            write(line)
        after = 0
        while True:
            operation = _as_read_now(env, store.operation(env.name, operation["id"]), time.time())
            for number, text in store.log_lines(operation["id"], after):
                write(text)
                after = number
            if operation["outcome"] != liveness.RUNNING:
                break
            time.sleep(poll)
    except KeyboardInterrupt:
        return
    now = time.time()
    for line in (views.steps_table(store.steps(operation["id"]), now, operation["outcome"])
                 + views.log_footer(operation, now)):
        write(line)


def _next_to_follow(env, store, write, poll):
    """The running operation, or else the next one to start."""
    from fab.history import liveness
    from fab.history.errors import NoSuchOperation

    try:
        newest = _as_read_now(env, store.operation(env.name), time.time())
    except NoSuchOperation:
        newest = None
    if newest and newest["outcome"] == liveness.RUNNING:
        return newest
    known = newest["id"] if newest else 0
    write(f"waiting for the next operation on {env.name} (Ctrl-C to stop)")
    while store.newest_operation_id(env.name) <= known:
        time.sleep(poll)
    return store.operation(env.name)


def prune(env, days=""):
    """Remove the log text of operations older than `days` (an int, 0 meaning all of
    it; "" or None: the environment's history retention_days); their rows and
    steps stay. A line saying what was done."""
    days = precedence.retention_days(days, env)
    store = open_store(env)
    with database_errors(env):
        pruned = store.prune(env.name, time.time() - days * 86400)
    return (f"history store {store.location}: removed the log text of {pruned} operation(s) of "
            f"{env.name} older than {days} days (their summary rows and steps are kept)")


def upgrade(env):
    """Bring the store to this deployer's schema (like `buildbot upgrade-master`)."""
    import_store_modules()
    from fab.history.store import upgrade_store
    from fab.history.urls import mask_url, store_url

    url = store_url(env.history)
    before, after = upgrade_store(url)
    if before == after:
        return f"history store {mask_url(url)} is at schema {after}: nothing to do"
    if before is None:
        return f"history store {mask_url(url)} created at schema {after}"
    return f"history store {mask_url(url)} upgraded from schema {before} to {after}"
