"""fab.dashboard.reading on constructed stores (written through the history store's
own writing API, as the recorder writes): the environments' summaries, history
filters and keyset paging, an operation and its log, and that a reader can never
change a store, create one, or read one at another schema."""
import json
import os
import time

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.exc import DBAPIError

from fab import freezes
from fab.dashboard import reading
from fab.dashboard.reading import Catalogue, Reader
from fab.history import migrate
from fab.history.engine import create_engine, writing
from fab.history.store import open_url, upgrade_store

NOW = time.time()
OTHER = "elsewhere"  # a controller that is not this machine: its pids are not looked up


def new_store(url, environment="prod"):
    return open_url(url, environment)


def record(store, environment, task, outcome="succeeded", at=NOW - 3600, performer="alice@laptop",
           lines=(), steps=(), arguments=None, heartbeat_at=None, **changes):
    """One operation written as the recorder writes it; its id."""
    operation_id = store.start_operation(environment, task, arguments or {}, performer, OTHER, 4242,
                                         ["web1", "web2"], at)
    finished = {} if outcome == "running" else dict(finished_at=at + 30, seconds=30.0, exit_code=0)
    store.write_progress(operation_id, 1, list(lines), list(steps), {},
                         dict(outcome=outcome, heartbeat_at=heartbeat_at or at + 30, **finished, **changes))
    return operation_id


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path}/history.sqlite"


def test_the_environment_summary_shows_live_release_last_running_lock_and_freeze(url):
    store = new_store(url)
    deployed = record(store, "prod", "deploy", release="r1", commit="a" * 40, ref="main",
                      commit_subject="Fix <script>", commit_time=NOW - 7200, at=NOW - 5000)
    record(store, "prod", "deploy", outcome="failed", release="r2", at=NOW - 4000, error="step 'check' failed")
    record(store, "prod", "freeze", arguments={"reason": "payments incident"}, at=NOW - 3000)
    record(store, "prod", "deploy", outcome="running", at=NOW - 3500, heartbeat_at=NOW - 3400)  # its holder is gone
    running = record(store, "prod", "deploy", outcome="running", at=NOW - 10, heartbeat_at=NOW - 1, performer="bob@ci")
    store.insert_claim(dict(environment="prod", token="t" * 32, holder="bob@ci", controller=OTHER, pid=99,
                            task="deploy", operation_id=running, claimed_at=NOW - 10, heartbeat_at=NOW - 1))

    reader = Reader(url, ["prod"])
    (summary,) = reader.environment_summaries(NOW)
    assert summary["environment"] == "prod"
    assert summary["live"] == {"operation_id": deployed, "task": "deploy", "release": "r1", "commit": "a" * 40,
                               "commit_subject": "Fix <script>", "ref": "main", "performer": "alice@laptop",
                               "finished_at": NOW - 5000 + 30}
    assert summary["last"]["id"] == running and summary["running"]["id"] == running
    assert summary["running"]["outcome"] == "running" and summary["running"]["seconds"] == pytest.approx(10, abs=1)
    assert summary["locked"] == {"holder": "bob@ci", "controller": OTHER, "pid": 99, "task": "deploy",
                                 "since": NOW - 10, "heartbeat_at": NOW - 1}
    assert summary["frozen"]["reason"] == "payments incident" and summary["frozen"]["by"] == "alice@laptop"
    # A minute later nobody heartbeats: the run reads interrupted, the claim holds nothing.
    later = reader.environment_summary("prod", NOW + 600)
    assert later["running"] is None and later["locked"] is None and later["last"]["outcome"] == "interrupted"


def test_unfreeze_lifts_the_freeze_and_a_rollback_that_froze_sets_it(url):
    store = new_store(url)
    record(store, "prod", "freeze", arguments={"reason": "incident"}, at=NOW - 300)
    record(store, "prod", "unfreeze", at=NOW - 200)
    reader = Reader(url, ["prod"])
    assert reader.environment_summary("prod", NOW)["frozen"] is None
    record(store, "prod", "rollback", release="r0", at=NOW - 100, performer="carol@desk",
           lines=["[   0.1s] == rolling back", f"[   3.0s] == {freezes.announcement('prod', 'rolled back: 500s')}",
                  "[   3.1s] rollback succeeded (exit 0) after 3.1s"])
    frozen = reader.environment_summary("prod", NOW)["frozen"]
    assert (frozen["by"], frozen["reason"]) == ("carol@desk", "rolled back: 500s")
    record(store, "prod", "rollback", release="r1", at=NOW - 50, lines=["[   0.1s] == rolling back"])
    assert reader.environment_summary("prod", NOW)["frozen"]["reason"] == "rolled back: 500s"  # still frozen
    assert reader.environment_summary("prod", NOW)["live"]["release"] == "r1"


def test_history_filters_by_environment_task_outcome_and_performer(url):
    store = new_store(url)
    ids = {
        "a": record(store, "prod", "deploy", performer="alice@laptop"),
        "b": record(store, "prod", "rollback", performer="alice@ci-runner"),
        "c": record(store, "staging", "deploy", outcome="failed", performer="bob@laptop"),
        "d": record(store, "staging", "deploy", performer="alice_x@laptop"),  # "_" is no wildcard
        "e": record(store, "prod", "deploy", performer="alice"),
    }
    reader = Reader(url, ["prod", "staging"])

    def found(**filters):
        rows, cursor = reader.history(filters)
        assert cursor is None
        return {name for name, operation_id in ids.items() if operation_id in [row["id"] for row in rows]}

    assert found() == set(ids)
    assert found(environment="staging") == {"c", "d"}
    assert found(task="deploy") == {"a", "c", "d", "e"}
    assert found(outcome="failed") == {"c"}
    assert found(performer="alice") == {"a", "b", "e"}
    assert found(performer="alice@laptop") == {"a"}
    assert found(environment="prod", task="deploy", performer="alice") == {"a", "e"}
    assert reader.distinct_values() == {"task": ["deploy", "rollback"], "outcome": ["failed", "succeeded"],
                                        "performer": ["alice", "alice@ci-runner", "alice@laptop", "alice_x@laptop",
                                                      "bob@laptop"]}
    with pytest.raises(ValueError):
        reader.history({}, before="not-a-cursor")


@pytest.fixture(scope="module")
def paged_store(tmp_path_factory):
    """37 operations of two environments in one store and 11 in another."""
    directory = tmp_path_factory.mktemp("paging")
    urls = [f"sqlite:///{directory}/one.sqlite", f"sqlite:///{directory}/two.sqlite"]
    first, second = new_store(urls[0]), new_store(urls[1])
    for number in range(37):
        record(first, ("prod", "staging")[number % 2], ("deploy", "rollback", "restart_services")[number % 3],
               outcome=("succeeded", "failed")[number % 5 == 0], at=NOW - 10000 + number * 7)
    for number in range(11):
        record(second, "qa", "deploy", at=NOW - 10000 + number * 13)
    yield urls
    for store in (first, second):
        store.engine.dispose()


def pages(fetch, limit):
    rows, cursor, seen = [], None, 0
    while True:
        page, cursor = fetch(cursor, limit)
        assert len(page) <= limit
        rows.extend(page)
        seen += 1
        assert seen < 200
        if cursor is None:
            return rows


@settings(max_examples=25, deadline=None)
@given(limit=st.integers(1, 20), task=st.sampled_from([None, "deploy", "rollback"]),
       outcome=st.sampled_from([None, "succeeded", "failed"]), environment=st.sampled_from([None, "prod", "qa"]))
def test_keyset_paging_has_no_gaps_or_repeats(paged_store, limit, task, outcome, environment):
    filters = {"task": task, "outcome": outcome, "environment": environment}
    one = Reader(paged_store[0], ["prod", "staging"])
    catalogue = Catalogue([one, Reader(paged_store[1], ["qa"])])
    try:
        everything, _ = one.history(filters, limit=1000)
        paged = pages(lambda cursor, size: one.history(filters, cursor, size), limit)
        assert [row["id"] for row in paged] == [row["id"] for row in everything]

        merged = pages(lambda cursor, size: reading.history(catalogue, filters, cursor, size), limit)
        whole = [row for reader in catalogue.readers for row in reader.history(filters, limit=1000)[0]
                 if not environment or row["environment"] == environment]
        assert sorted((row["environment"], row["id"]) for row in merged) == \
            sorted((row["environment"], row["id"]) for row in whole)
        assert [row["started_at"] for row in merged] == sorted((row["started_at"] for row in merged), reverse=True)
    finally:
        catalogue.close()


def test_an_operation_its_steps_received_bytes_and_log(url):
    store = new_store(url)
    lines = [f"[{n:6.1f}s] line {n} <b>" for n in range(1, 12001)]
    operation_id = record(store, "prod", "deploy", outcome="running", at=NOW - 20, heartbeat_at=NOW - 1, lines=lines,
                          steps=[dict(host="web1", step="code", started_at=NOW - 19, finished_at=NOW - 17,
                                      outcome="ok", seconds=2.0, note="from bundle"),
                                 dict(host="web1", step="venv", started_at=NOW - 17, outcome="running")])
    store.write_progress(operation_id, 12001, [], [], {}, {}, receipts=[("web1", "controller", 100),
                                                                       ("web1", "controller", 50)])
    reader = Reader(url, ["prod"])
    detail = reader.operation("prod", operation_id, NOW)
    assert detail["outcome"] == "running" and detail["log_lines"] == 12000 and detail["log_pruned"] is False
    assert [(s["step"], s["outcome"]) for s in detail["steps"]] == [("code", "ok"), ("venv", "running")]
    assert detail["steps"][1]["seconds"] == pytest.approx(17, abs=1)
    assert detail["received"] == {"web1": {"controller": 150}}
    assert detail["hosts"] == ["web1", "web2"] and detail["arguments"] == ""
    assert reader.operation("staging", operation_id, NOW) is None and reader.operation("prod", 999, NOW) is None

    assert reader.log_after(operation_id) == list(enumerate(lines[:5000], 1))
    assert reader.log_after(operation_id, 11990) == list(enumerate(lines[11990:], 11991))
    assert reader.log_after(operation_id, 100, limit=3) == [(101, lines[100]), (102, lines[101]), (103, lines[102])]
    assert reader.log_after(operation_id, 12000) == []
    assert reader.operation("prod", 2 ** 64, NOW) is None and reader.log_after(2 ** 64) == []  # any URL's number
    assert reader.log_after(operation_id, 2 ** 64) == []
    window = reader.operations_in_window("prod", NOW - 21, NOW)
    assert [row["id"] for row in window] == [operation_id]
    assert reader.operations_in_window("prod", NOW - 19, NOW) == []


def test_a_reader_cannot_write_and_reads_while_a_writer_holds_the_store(url):
    store = new_store(url)
    record(store, "prod", "deploy", release="r1")
    reader = Reader(url, ["prod"])
    with pytest.raises(DBAPIError, match="readonly"):
        with reader.engine.begin() as connection:
            connection.execute(sa.text("DELETE FROM fab_operations"))
    with writing(store.engine) as connection:  # a deploy in the middle of a write (holds the write lock)
        connection.execute(sa.text("UPDATE fab_operations SET message = 'mid-write'"))
        assert reader.environment_summary("prod", NOW)["live"]["release"] == "r1"
        assert reader.history({})[0][0]["message"] is None  # not committed yet
    assert reader.history({})[0][0]["message"] == "mid-write"


def test_a_missing_store_is_no_history_and_is_never_created(tmp_path):
    path = tmp_path / "nothing-yet" / "history.sqlite"
    reader = Reader(f"sqlite:///{path}", ["prod"])
    assert reader.problem is None and reader.environments == ["prod"]
    assert reader.environment_summaries(NOW) == [{"environment": "prod", "live": None, "last": None,
                                                  "running": None, "locked": None, "frozen": None}]
    assert reader.history({}) == ([], None) and reader.operation("prod", 1, NOW) is None
    assert not path.exists() and not path.parent.exists()
    path.parent.mkdir()  # the first task records: the reader reads it from then on
    record(new_store(f"sqlite:///{path}"), "prod", "deploy", release="r1")
    assert reader.environment_summary("prod", NOW)["live"]["release"] == "r1"


def test_a_store_at_an_older_schema_says_to_run_history_upgrade_and_is_read_once_upgraded(url, monkeypatch):
    engine = create_engine(url)
    with engine.begin() as connection:
        migrate.upgrade(connection, "0004")
    engine.dispose()
    reader = Reader(url, ["prod"])
    assert reader.problem == (f"history store {url} has schema 0004, this deployer needs {migrate.head()}: "
                              "run `fab prod history_upgrade`")
    assert reader.environment_summaries(NOW)[0]["live"] is None
    catalogue = Catalogue([reader])
    assert catalogue.problems == [reader.problem]

    # `history_upgrade` while the dashboard serves: read at the next try, no restart.
    upgrade_store(url)
    record(open_url(url, "prod"), "prod", "deploy", release="r1")
    monkeypatch.setattr(reading, "RETRY_SECONDS", 0)
    assert reader.environment_summary("prod", NOW)["live"]["release"] == "r1"
    assert reader.problem is None and catalogue.problems == []


def test_a_postgresql_reader_cannot_write(pg_url):
    store = new_store(pg_url)
    record(store, "prod", "deploy", release="r1")
    reader = Reader(pg_url, ["prod"])
    assert reader.problem is None and reader.environment_summary("prod", NOW)["live"]["release"] == "r1"
    with pytest.raises(DBAPIError, match="read-only transaction"):
        with reader.engine.begin() as connection:
            connection.execute(sa.text("DELETE FROM fab_operations"))
    reader.close()
    store.engine.dispose()


def test_discover_groups_environments_by_store_and_reports_bad_files(tmp_path, monkeypatch, url):
    environments = tmp_path / "deploy" / "environments"
    environments.mkdir(parents=True)
    for name in ("prod", "staging"):
        (environments / f"{name}.yml").write_text(json.dumps({
            "app": {"repo": "/nonexistent/app.git"}, "code_root": f"~/www/{name}", "roles": {"webworkers": ["web1"]},
            "history": {"stale_seconds": 120}}))
    (environments / "broken.yml").write_text("roles: [")
    monkeypatch.setenv("DEPLOY_DIR", str(tmp_path / "deploy"))
    monkeypatch.setenv("FAB_HISTORY_URL", url)
    store = new_store(url)
    record(store, "legacy", "deploy", release="r9")  # only the store knows it

    catalogue = reading.discover()
    try:
        assert catalogue.environments == ["legacy", "prod", "staging"]
        (reader,) = catalogue.readers
        assert catalogue.reader("legacy") is reader and reader.environments == ["legacy", "prod", "staging"]
        assert [line.split(":")[0] for line in catalogue.problems] == ["environment broken"]
        assert len(catalogue.problems[0].splitlines()) == 1
        with pytest.raises(KeyError):
            catalogue.reader("nope")
    finally:
        catalogue.close()


def test_discover_with_no_store_file_reads_nothing_and_creates_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("FAB_HISTORY_URL")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("DEPLOY_DIR", str(tmp_path / "deploy"))
    (tmp_path / "deploy" / "environments").mkdir(parents=True)
    catalogue = reading.discover()
    assert catalogue.environments == [] and catalogue.problems == []
    assert not (tmp_path / "data").exists()
    assert os.listdir(tmp_path) == ["deploy"]
