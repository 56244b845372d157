"""The history store on real databases (a SQLite file and a throwaway PostgreSQL
cluster), through the real `fab` command where a user would: migrations and
upgrades, retention, claims. No SSH: the history tasks never touch a host."""
import json
import os
import subprocess
import sys
import time
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from conftest import assert_ok, assert_one_line_error, run_fab
from fab import PROJECT_ROOT, events, history
from fab.config import load_environment
from fab.history import claims, migrate, schema
from fab.history.errors import ClaimHeld
from fab.history.engine import create_engine
from fab.history.store import open_store

ENV = "histtest"
HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture
def env_dir(tmp_path):
    """An environment file for history tasks (its hosts are never contacted)."""
    directory = tmp_path / "environments"
    directory.mkdir()
    (directory / f"{ENV}.yml").write_text(json.dumps({
        "app": {"repo": "/nonexistent/app.git"}, "code_root": "~/www/histtest",
        "roles": {"webworkers": ["web1"]},
    }))
    return str(directory)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, history_url, monkeypatch):
    """The test's store: its own SQLite file, or its own database on the test cluster."""
    if request.param == "sqlite":
        return history_url
    url = request.getfixturevalue("pg_url")
    monkeypatch.setenv("FAB_HISTORY_URL", url)
    return url


def fab(env_dir, *args, **kwargs):
    return run_fab(ENV, *args, environments=env_dir, **kwargs)


def record_operation(store, started_at, lines, step_output="", **finished):
    """An operation written as the recorder writes one: its row, a step, its log."""
    operation_id = store.start_operation(ENV, "deploy", {}, "alice@laptop", "laptop", 1, ["web1"], started_at)
    store.write_progress(
        operation_id, 1, lines,
        [dict(host="web1", step="build", started_at=started_at, finished_at=started_at + 2,
              outcome="failed" if step_output else "ok", seconds=2.0, output=step_output or None)],
        {}, dict(finished_at=started_at + 3, outcome=finished.get("outcome", "succeeded"),
                 exit_code=finished.get("exit_code", 0), seconds=3.0))
    return operation_id


def test_a_new_store_is_made_by_the_migrations_and_matches_the_model(env_dir, store_url):
    shown = assert_ok(fab(env_dir, "history")).stdout
    assert f"no operations recorded for {ENV}" in shown

    engine = create_engine(store_url)
    inspector = sa.inspect(engine)
    for table in schema.metadata.sorted_tables:
        columns = {c["name"]: c["nullable"] for c in inspector.get_columns(table.name)}
        assert columns == {c.name: c.nullable for c in table.columns}, table.name
        indexes = {index["name"]: index["column_names"] for index in inspector.get_indexes(table.name)}
        assert indexes == {index.name: [c.name for c in index.columns] for index in table.indexes}, table.name
    with engine.connect() as connection:
        assert migrate.current(connection) == migrate.head()
    engine.dispose()


def test_two_controllers_creating_one_new_store_at_once_both_use_it(store_url, postgres, tmp_path):
    for attempt in range(5):
        url = (f"sqlite:///{tmp_path}/new-{attempt}.sqlite" if store_url.startswith("sqlite")
               else postgres.url(postgres.create_database()))
        go = tmp_path / f"go-{attempt}"
        ready = [tmp_path / f"ready-{attempt}-{n}" for n in range(2)]
        openers = [subprocess.Popen([sys.executable, os.path.join(HERE, "store_opener.py"), url, str(path), str(go)],
                                    env={**os.environ, "PYTHONPATH": PROJECT_ROOT}, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                   for path in ready]
        try:
            wait_for_files(ready, openers)
            go.touch()
            for opener in openers:
                assert opener.wait(timeout=120) == 0, (attempt, opener.stderr.read())
        finally:
            for opener in openers:
                if opener.poll() is None:
                    opener.kill()
                    opener.wait()


def test_upgrade_from_the_first_schema_keeps_the_data(env_dir, store_url):
    engine = create_engine(store_url)
    with engine.begin() as connection:
        migrate.upgrade(connection, "0001")
    tables = sa.MetaData()
    tables.reflect(engine)
    operations, log_chunks = tables.tables["fab_operations"], tables.tables["fab_log_chunks"]
    started = time.time() - 600
    with engine.begin() as connection:
        operation_id = connection.execute(operations.insert().values(
            environment=ENV, task="deploy", performer="alice@laptop", controller="laptop",
            started_at=started, heartbeat_at=started + 9, finished_at=started + 9, outcome="succeeded",
            exit_code=0, seconds=9.0, release="2026-01-01_00.00.00", commit="c" * 40, ref="main",
        )).inserted_primary_key[0]
        connection.execute(log_chunks.insert().values(
            operation_id=operation_id, first_line=1, last_line=2,
            content="[   0.1s] == deploying main\n[   9.0s] == deploy finished"))
    engine.dispose()

    refused = fab(env_dir, "history")
    assert_one_line_error(refused, "has schema 0001", f"needs {migrate.head()}",
                          f"run `fab {ENV} history_upgrade`")
    assert refused.returncode == 2

    assert f"upgraded from schema 0001 to {migrate.head()}" in assert_ok(fab(env_dir, "history_upgrade")).stdout
    shown = assert_ok(fab(env_dir, "history")).stdout
    assert "2026-01-01_00.00.00" in shown and "alice@laptop" in shown and "succeeded" in shown
    log = assert_ok(fab(env_dir, "deploy_log")).stdout
    assert "[   0.1s] == deploying main\n[   9.0s] == deploy finished" in log
    assert "nothing to do" in assert_ok(fab(env_dir, "history_upgrade")).stdout


def test_the_bytes_each_host_received_and_from_where_are_recorded(env_dir, store_url):
    env = load_environment(ENV, env_dir)
    recorder = history.recorder(env)
    for event in (events.TaskStarted("deploy", ENV, {}, "alice@laptop", "laptop", hosts=("web1", "web2")),
                  events.ArtifactsReceived("web1", {"controller": 1_000_000}),
                  events.ArtifactsReceived("web2", {"web1": 999_000, "controller": 1_000}),
                  events.ArtifactsReceived("web2", {"web1": 7}),
                  events.TaskFinished(events.SUCCEEDED, 0)):
        recorder(event)
    store = history.open_store(env)
    assert store.received(store.operation(ENV)["id"]) == {
        "web1": {"controller": 1_000_000}, "web2": {"web1": 999_007, "controller": 1_000}}


def test_a_store_from_a_newer_deployer_is_refused(env_dir, history_url):
    assert_ok(fab(env_dir, "history"))
    engine = create_engine(history_url)
    tables = sa.MetaData()
    tables.reflect(engine, only=[schema.VERSION_TABLE])
    version = tables.tables[schema.VERSION_TABLE]
    with engine.begin() as connection:
        connection.execute(version.update().values(version_num="0099"))
    engine.dispose()
    assert_one_line_error(fab(env_dir, "history"), "has schema 0099", "newer than this deployer",
                          "update the deployer")


def test_pruning_removes_old_log_text_and_keeps_rows(env_dir, store_url):
    store = open_store(store_url, ENV)
    now = time.time()
    old = record_operation(store, now - 100 * 86400, ["[   0.1s] == old deploy", "[   2.0s] FAILED"],
                           step_output="pip: no such version", outcome="failed", exit_code=1)
    recent = record_operation(store, now - 3600, ["[   0.1s] == recent deploy"])

    pruned = assert_ok(fab(env_dir, "history_prune")).stdout
    assert "removed the log text of 1 operation(s)" in pruned and "older than 90 days" in pruned

    assert store.log_lines(old) == []
    assert [s["step"] for s in store.steps(old)] == ["build"] and store.steps(old)[0]["output"] is None
    assert store.log_lines(recent) == [(1, "[   0.1s] == recent deploy")]
    assert {op["id"] for op in store.operations(ENV, 10)} == {old, recent}
    shown = assert_ok(fab(env_dir, f"deploy_log:{old}")).stdout
    assert "log text removed" in shown and "web1       build        failed " in shown
    assert "removed the log text of 0 operation(s)" in assert_ok(fab(env_dir, "history_prune")).stdout
    assert_one_line_error(fab(env_dir, "history_prune:days=ten"), "days must be a whole number")
    assert store.log_lines(recent) != []
    everything = assert_ok(fab(env_dir, "history_prune:days=0")).stdout  # 0 means 0, not the default
    assert "removed the log text of 1 operation(s)" in everything and "older than 0 days" in everything
    assert store.log_lines(recent) == []


def test_a_fresh_claim_refuses_and_a_stale_one_is_taken_over_with_an_audit_row(env_dir, store_url):
    store = open_store(store_url, ENV)
    alice = claims.acquire(store, ENV, "deploy", "alice@laptop", "laptop", stale_after=60)

    with pytest.raises(ClaimHeld) as refused:
        claims.acquire(store, ENV, "deploy", "bob@ci-runner", "ci-runner", stale_after=60)
    message = str(refused.value)
    assert refused.value.exit_code == 3
    assert f"locked by alice@laptop (deploy, pid {os.getpid()} on laptop, since " in message

    quiet_since = time.time() - 3600
    store.heartbeat_claim(ENV, alice.token, quiet_since)  # alice's laptop went quiet an hour ago
    # Bob's clock reads an hour after it, however long the machine took to get there
    # (a loaded one took over half a second: "no heartbeat for 3601s").
    bob = claims.acquire(store, ENV, "deploy", "bob@ci-runner", "ci-runner", stale_after=60,
                         now=lambda: quiet_since + 3600)
    assert bob.took_over["holder"] == "alice@laptop"
    assert not store.heartbeat_claim(ENV, alice.token, time.time())  # alice no longer holds it
    [audit] = store.claim_audit(ENV)
    assert (audit["action"], audit["holder"], audit["controller"], audit["by"]) == (
        "taken_over", "alice@laptop", "laptop", "bob@ci-runner")
    assert "no heartbeat for 3600s" in audit["reason"]

    env = load_environment(ENV, env_dir)
    cleared = history.clear_claim(env, "carol@desk")
    assert cleared.startswith(f"bob@ci-runner (deploy, pid {os.getpid()} on ci-runner, since ")
    assert store.claim(ENV) is None
    assert [a["action"] for a in store.claim_audit(ENV)] == ["taken_over", "cleared"]


def test_a_claim_whose_process_died_on_this_controller_is_stale_at_once(history_url):
    store = open_store(history_url, ENV)
    dead = subprocess.Popen(["true"])
    dead.wait()
    now = time.time()
    store.insert_claim(dict(environment=ENV, token="t" * 32, holder="me@here", controller="here",
                            pid=dead.pid, task="deploy", claimed_at=now, heartbeat_at=now))
    claim = claims.acquire(store, ENV, "deploy", "me@here", "here", stale_after=60)
    assert claim.took_over["pid"] == dead.pid


def test_a_claim_whose_holder_lost_its_host_lock_is_taken_over_at_once(history_url):
    store = open_store(history_url, ENV)
    now = time.time()
    store.insert_claim(dict(environment=ENV, token="k" * 32, holder="alice@laptop", controller="laptop",
                            pid=4242, task="deploy", claimed_at=now - 30, heartbeat_at=now - 1))
    asked = []

    def holder_gone(claim):  # as fab.opening asks it: the host lock's last holder was this claim's
        asked.append(claim["token"])
        return claim["token"] == "k" * 32

    # Its heartbeat is fresh, so only the host lock tells: asked, the holder is gone.
    claim = claims.acquire(store, ENV, "deploy", "bob@ci", "ci", stale_after=60, token="b" * 32,
                           holder_gone=holder_gone)
    assert (claim.token, claim.took_over["holder"], asked) == ("b" * 32, "alice@laptop", ["k" * 32])
    assert "no longer holds the deploy lock" in claim.why
    [audit] = store.claim_audit(ENV)
    assert (audit["action"], audit["by"]) == ("taken_over", "bob@ci")
    assert "no longer holds the deploy lock" in audit["reason"]
    # A holder that still holds the lock, or a claim too young to have taken it, stands.
    with pytest.raises(ClaimHeld):
        claims.acquire(store, ENV, "deploy", "carol@desk", "desk", stale_after=60, holder_gone=lambda c: False)
    store.delete_claim(ENV, "b" * 32)
    claims.acquire(store, ENV, "deploy", "dave@box", "box", stale_after=60)
    with pytest.raises(ClaimHeld):
        claims.acquire(store, ENV, "deploy", "carol@desk", "desk", stale_after=60,
                       holder_gone=lambda c: asked.append("young") or True)
    assert asked[-1] != "young"


def test_an_unreachable_store_is_one_line_without_its_password(env_dir):
    url = "postgresql://deployer:hunter2@127.0.0.1:1/deploys"
    result = fab(env_dir, "history", environ={"FAB_HISTORY_URL": url})
    line = assert_one_line_error(result, "history store postgresql://deployer:***@127.0.0.1:1/deploys",
                                 "cannot be reached")
    assert "hunter2" not in result.stdout + result.stderr, line


@pytest.mark.parametrize("password, parts", [
    ("hunter/2222", ["hunter/2222", "2222"]),
    ("hunter 2222", ["hunter 2222", "2222"]),
    ("p%2Fss/word", ["p%2Fss/word", "p/ss/word", "word"]),  # "%2F" is "/" to the driver
])
def test_a_store_password_with_a_slash_or_a_space_is_never_shown(env_dir, password, parts):
    """SQLAlchemy takes such a password (it splits at the last "@"): every task that
    names the store shows it masked, in its lines, its error and its JSON."""
    url = f"postgresql://deployer:{password}@127.0.0.1:1/deploys"
    environ = {"FAB_HISTORY_URL": url}
    results = [fab(env_dir, *task, environ=environ)
               for task in (["history"], ["history:json=yes"], ["history_upgrade"], ["deploy_log"],
                            ["deploy"], ["unlock"])]
    results.append(fab(env_dir, "deploy", environ={**environ, "FAB_JSON": "1"}))
    for result in results:
        shown = result.stdout + result.stderr
        assert "Traceback" not in shown, shown
        assert "postgresql://deployer:***@127.0.0.1:1/deploys" in shown, shown
        for part in parts:
            assert part not in shown, shown


def test_two_controllers_claiming_at_once_exactly_one_wins_every_time(env_dir, pg_url, tmp_path, monkeypatch):
    monkeypatch.setenv("FAB_HISTORY_URL", pg_url)
    assert_ok(fab(env_dir, "history"))  # the store exists before the race
    rounds = 30
    signals = tmp_path / "signals"
    signals.mkdir()
    controllers = ("controller-a", "controller-b")
    contenders = [
        subprocess.Popen([sys.executable, os.path.join(HERE, "claim_contender.py"), env_dir, ENV,
                          str(rounds), str(signals)],
                         env={**os.environ, "FAB_CONTROLLER": name, "PYTHONPATH": PROJECT_ROOT},
                         stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name in controllers
    ]
    try:
        wait_for_files([signals / f"ready-{name}" for name in controllers], contenders)
        for number in range(rounds):
            (signals / f"go-{number}").touch()
            outcomes = wait_for_files([signals / f"{name}-{number}" for name in controllers], contenders)
            winners = [name for name, text in zip(controllers, outcomes) if text == "won"]
            assert len(winners) == 1, (number, outcomes)
            loser_says = next(text for text in outcomes if text != "won")
            assert loser_says.startswith("lost: environment histtest is locked by")
            assert f" on {winners[0]}, since " in loser_says, loser_says
            (signals / f"release-{number}").touch()
            wait_for_files([signals / f"released-{number}"], contenders)
        for contender in contenders:
            assert contender.wait(timeout=60) == 0, contender.stderr.read()
    finally:
        for contender in contenders:
            if contender.poll() is None:
                contender.kill()
                contender.wait()


def wait_for_files(paths, processes, timeout=60):
    """The contents of `paths` once they all exist (bounded; fails early if a process died)."""
    deadline = time.monotonic() + timeout
    while not all(path.exists() for path in paths):
        for process in processes:
            if process.poll() not in (None, 0):
                raise AssertionError(f"a contender died: {process.stderr.read()}")
        assert time.monotonic() < deadline, f"timed out waiting for {paths}"
        time.sleep(0.01)
    return [path.read_text() for path in paths]


def test_a_postgresql_role_that_cannot_write_one_table_cannot_start_an_operation(postgres, pg_url):
    """A store that would take an operation's row but not its log is found out at the
    start (the claim then refuses a deploy), not half-way through the deploy."""
    open_store(pg_url, ENV)  # made by its owner
    database = pg_url.split("@/")[1].split("?")[0]
    role = f"deployer_{uuid.uuid4().hex[:8]}"
    postgres.run("psql", "-h", postgres.data_dir, "-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1", "-c",
                 f"CREATE ROLE {role} LOGIN; "
                 f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}; "
                 f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}; "
                 f"REVOKE INSERT ON fab_log_chunks FROM {role}")
    limited = open_store(pg_url.replace("postgresql://postgres@", f"postgresql://{role}@"), ENV)
    with pytest.raises(DBAPIError, match="permission denied for table fab_log_chunks"):
        limited.start_operation(ENV, "deploy", {}, "alice@laptop", "laptop", 1, ["web1"], time.time())
    assert open_store(pg_url, ENV).operations(ENV, 5) == []  # no row left behind
    claims.release(limited, claims.acquire(limited, ENV, "deploy", "alice@laptop", "laptop", 60))  # claims work


def test_correcting_an_unfinished_operation_writes_once_and_never_over_an_end(store_url):
    store = open_store(store_url, ENV)
    started = time.time() - 30
    running = store.start_operation(ENV, "deploy", {}, "alice@laptop", "laptop", 1, ["web1", "web2"], started)
    store.write_progress(running, 1, ["[   0.1s] == deploying"],
                         [dict(host="web1", step="restart", started_at=started, outcome="running")], {}, {})
    current = [dict(host=h, step="current", started_at=started + 40, finished_at=started + 40, outcome=how,
                    note="runs R") for h, how in (("web1", "swapped"), ("web2", "not swapped"))]
    assert store.correct_operation(running, ["[reconciled] found"], current, "interrupted",
                                   dict(outcome="interrupted", error="its end was not recorded"))
    assert [(s["host"], s["step"], s["outcome"]) for s in store.steps(running)] == [
        ("web1", "restart", "interrupted"), ("web1", "current", "swapped"), ("web2", "current", "not swapped")]
    assert store.log_lines(running) == [(1, "[   0.1s] == deploying"), (2, "[reconciled] found")]
    assert store.operation(ENV, running)["outcome"] == "interrupted"
    assert not store.correct_operation(running, ["again"], [], "interrupted", dict(outcome="succeeded"))
    ended = record_operation(store, started, ["[   0.1s] done"])
    assert not store.correct_operation(ended, ["late"], [], "interrupted", dict(outcome="interrupted"))
    assert store.operation(ENV, ended)["outcome"] == "succeeded" and len(store.log_lines(ended)) == 1


def test_a_message_with_control_characters_is_refused_before_any_host_and_recorded(env_dir, history_url):
    refused = fab(env_dir, "deploy:message=deploy \x1b[2Jcleared")
    assert refused.returncode == 2
    assert_one_line_error(refused, "error: message has control characters")
    too_long = fab(env_dir, "hotfix_deploy", environ={"FAB_DEPLOY_MESSAGE": "x" * 301})
    assert_one_line_error(too_long, "error: message is 301 characters long; at most 300")
    rows = json.loads(assert_ok(fab(env_dir, "history:json=yes")).stdout)
    assert [(row["task"], row["outcome"], row["exit_code"], row["message"]) for row in rows] == [
        ("hotfix_deploy", "refused", 2, None), ("deploy", "refused", 2, None)]


def test_the_commits_time_and_subject_are_recorded_masked_on_one_line(env_dir, history_url):
    env = load_environment(ENV, env_dir)
    stream = events.Stream()
    stream.subscribe(history.recorder(env))
    stream.publish(events.TaskStarted("deploy", ENV, {}, "alice@laptop", "laptop", ("web1",)))
    stream.publish(events.ReleaseChosen("r1", "c" * 40, "main"))
    stream.publish(events.CommitDescribed("c" * 40, 1_700_000_000.0,
                                          "Fix <script> https://deploy:hunter2@git.example/app " + "x" * 400))
    stream.publish(events.TaskFinished(events.SUCCEEDED, 0, seconds=1.0))
    row = open_store(history_url, ENV).operation(ENV)
    assert row["commit_time"] == 1_700_000_000.0
    assert row["commit_subject"].startswith("Fix <script> https://deploy:") and "hunter2" not in row["commit_subject"]
    assert len(row["commit_subject"]) == 300
