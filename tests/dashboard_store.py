"""A small history store for the dashboard's tests, written through fab.history.store.Store
as the recorder writes it: two environments (one named with hostile text, as only a store
can hold it), deploys that went well and badly, a rollback, a freeze, an interrupted
operation, hostile text in every field a person or a host controls, and a secret that was
registered, so it reached the store masked.

    url, ids = build(tmp_path)     # ids: {"deploy": 1, "failed": 2, ...}

and, for tests of the app, pytest fixtures over one such store (`store`, `environ`, `ids`,
`client`, `guarded`: a pytest plugin, tests/conftest.py registers it) and `every_address` / `every_answer` of its pages.
"""
import os
import time
import urllib.parse

import pytest

from fab import secrets
from fab.history.store import open_store

ENVIRONMENT = "staging"
#: Hostile text: what a commit message, a host's output or a user name may hold.
HOSTILE = '<script>alert(1)</script>"onload=x'
#: An environment name only a store can hold (no file may be named so): no "/", for URLs.
HOSTILE_ENVIRONMENT = 'x"onload=alert(1)<b>'
#: Registered before anything is written: the store holds it as secrets.MASK.
SECRET = "dashboard-secret-9f2c41d7"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
HOSTS = ("web1", "web2")
#: The token of a dashboard that wants one (the `guarded` client's).
TOKEN = "t0ken-for-the-dashboard-tests"


def build(directory, now=None):
    """A SQLite store in `directory` with the operations above; (its URL, {name: id})."""
    now = time.time() if now is None else now
    secrets.register(SECRET)
    url = f"sqlite:///{directory}/history.sqlite"
    store = open_store(url, ENVIRONMENT, retry=True)
    day = 86400
    ids = {
        "deploy": operation(store, ENVIRONMENT, "deploy", now - 3 * day, 42.0, "succeeded", release="2026-12-04_10.00.00",
                            log=[f"deploy {HOSTILE}", f"password {SECRET}", "done"]),
        "failed": operation(store, ENVIRONMENT, "deploy", now - 2 * day, 12.5, "failed",
                            release="2026-12-05_10.00.00", error=f"migrate failed on web2: {HOSTILE}",
                            failing_output=f"Traceback {HOSTILE} {SECRET}"),
        "rollback": operation(store, ENVIRONMENT, "rollback", now - 2 * day + 600, 5.0, "succeeded",
                              release="2026-12-04_10.00.00", previous="2026-12-05_10.00.00"),
        "freeze": operation(store, ENVIRONMENT, "freeze", now - day, 0.2, "succeeded", arguments={"reason": HOSTILE},
                            hosts=()),
        "interrupted": operation(store, ENVIRONMENT, "deploy", now - 3600, None, "running",
                                 release="2026-12-06_10.00.00", log=["building", "still building"]),
        "hostile": operation(store, HOSTILE_ENVIRONMENT, "deploy", now - 600, 3.0, "succeeded", release="2026-12-07_09.00.00",
                             log=[HOSTILE]),
    }
    return url, ids


def operation(store, environment, task, started_at, seconds, outcome, release=None, previous=None, error=None,
              log=("line one", "line two"), failing_output=None, arguments=None, hosts=HOSTS):
    """Write one operation, its steps on `hosts` (build, swap) and its log; its id.
    `seconds` None with outcome `running`: its heartbeat is `started_at` + 1 (long ago: its
    holder is gone; now: it runs)."""
    operation_id = store.start_operation(environment, task, arguments or {"message": HOSTILE}, f"{HOSTILE}@laptop",
                                         "controller1", None, hosts, started_at, message=f"why: {HOSTILE} {SECRET}")
    steps = []
    at = started_at
    for index, host in enumerate(hosts):
        for step in ("build", "swap"):
            failed = failing_output is not None and host == hosts[-1] and step == "build"
            steps.append({"host": host, "step": step, "started_at": at + index, "finished_at": at + index + 2,
                          "outcome": "failed" if failed else "ok", "seconds": 2.0,
                          "note": HOSTILE if step == "swap" else None,
                          "output": secrets.mask(failing_output) if failed else None})
            at += 2
    changes = {"heartbeat_at": started_at + (seconds or 1), "outcome": outcome, "release": release,
               "previous_release": previous, "commit": COMMIT if release else None,
               "ref": "main" if release else None}
    if outcome != "running":
        changes.update(finished_at=started_at + seconds, seconds=seconds, exit_code=0 if outcome == "succeeded" else 1,
                       error=secrets.mask(error) if error else None)
    if release:
        changes.update(commit_subject=f"Fix {HOSTILE}", commit_time=started_at - 3600)
    store.write_progress(operation_id, 1, [secrets.mask(line) for line in log], steps, {}, changes)
    return operation_id


# --- the app over such a store (Starlette's test client) ------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """The store's URL and operation ids, and the environment that finds it (its
    environments are the store's own: no environment file)."""
    directory = tmp_path_factory.mktemp("dashboard")
    url, ids = build(directory)
    (directory / "deploy" / "environments").mkdir(parents=True)
    environ = {"FAB_HISTORY_URL": url, "DEPLOY_DIR": str(directory / "deploy"), "HOME": str(directory)}
    return environ, ids


@pytest.fixture
def environ(store, monkeypatch):
    given, _ids = store
    monkeypatch.delenv("DEPLOY_ENVIRONMENTS", raising=False)
    for name, value in given.items():
        monkeypatch.setenv(name, value)
    return dict(os.environ)


@pytest.fixture
def ids(store):
    return store[1]


def client_for(environ, **options):
    """A test client of the dashboard over the stores `environ` leads to."""
    from starlette.testclient import TestClient

    from fab.dashboard import reading
    from fab.dashboard.app import create_app

    return TestClient(create_app(lambda: reading.discover(environ), **options))


@pytest.fixture
def client(environ):
    with client_for(environ) as client:
        yield client


@pytest.fixture
def guarded(environ):
    """A client of a dashboard that wants TOKEN."""
    with client_for(environ, token=TOKEN) as client:
        yield client


def quoted(name):
    return urllib.parse.quote(name, safe="")


def every_address(ids):
    """(page, its JSON twin) of every page the store has."""
    deploy, hostile = ids["deploy"], ids["hostile"]
    return [
        ("/", "/api/environments"),
        ("/history", "/api/history"),
        (f"/history?environment={ENVIRONMENT}&task=deploy", f"/api/history?environment={ENVIRONMENT}&task=deploy"),
        (f"/operations/{ENVIRONMENT}/{deploy}", f"/api/operations/{ENVIRONMENT}/{deploy}"),
        (f"/operations/{ENVIRONMENT}/{ids['failed']}", f"/api/operations/{ENVIRONMENT}/{ids['failed']}"),
        (f"/operations/{quoted(HOSTILE_ENVIRONMENT)}/{hostile}", f"/api/operations/{quoted(HOSTILE_ENVIRONMENT)}/{hostile}"),
        (f"/delivery?environment={ENVIRONMENT}&days=30", f"/api/delivery?environment={ENVIRONMENT}&days=30"),
    ]


def every_answer(client, ids):
    """Every page, its JSON twin, the timeline pictures, the log's JSON and its stream."""
    addresses = [address for pair in every_address(ids) for address in pair]
    for name in ("deploy", "failed"):
        addresses += [f"/operations/{ENVIRONMENT}/{ids[name]}/timeline.svg",
                      f"/operations/{ENVIRONMENT}/{ids[name]}/log",
                      f"/api/operations/{ENVIRONMENT}/{ids[name]}/log"]
    for address in addresses:
        yield address, client.get(address)


