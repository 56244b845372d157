"""The history store's pure decisions: URL masking and location, staleness, log chunks, views."""
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fab.settings.team import HistorySettings
from fab.history import chunks, liveness, views
from fab.history.errors import StoreUnavailable
from fab.history.urls import mask_secrets, mask_url, store_url
from fab.precedence import default_sqlite_path


@pytest.mark.parametrize("url,shown", [
    ("postgresql://deploy:s3cr3t@db.internal:5432/deploys", "postgresql://deploy:***@db.internal:5432/deploys"),
    ("postgresql+psycopg://deploy:p%40ss@db/deploys", "postgresql+psycopg://deploy:***@db/deploys"),
    ("postgresql://deploy@db/deploys", "postgresql://deploy@db/deploys"),
    ("postgresql://db/deploys?sslmode=require&password=x1&user=u",
     "postgresql://db/deploys?sslmode=require&password=***&user=u"),
    ("https://ci:ghp_token123@github.com/me/app.git?token=abc", "https://ci:***@github.com/me/app.git?token=***"),
    ("sqlite:////home/me/.local/share/fab-deploy/history.sqlite",
     "sqlite:////home/me/.local/share/fab-deploy/history.sqlite"),
])
def test_mask_url(url, shown):
    assert mask_url(url) == shown


def test_mask_secrets_in_a_line_of_text():
    line = "fatal: could not read from https://bot:hunter2@git.example.com/app.git: denied"
    assert mask_secrets(line) == "fatal: could not read from https://bot:***@git.example.com/app.git: denied"
    assert mask_secrets("a = b, no urls") == "a = b, no urls"
    assert mask_secrets("") == "" and mask_secrets(None) is None


def test_store_url_precedence():
    file_url = HistorySettings(url="postgresql://a@db/x")
    from_variable = HistorySettings(url_env="DEPLOY_HISTORY_URL")
    home = {"HOME": "/home/me"}
    assert store_url(None, home) == "sqlite:////home/me/.local/share/fab-deploy/history.sqlite"
    assert store_url(file_url, home) == "postgresql://a@db/x"
    assert store_url(from_variable, {**home, "DEPLOY_HISTORY_URL": "postgresql://b@db/y"}) == "postgresql://b@db/y"
    assert store_url(file_url, {**home, "FAB_HISTORY_URL": "sqlite:////tmp/h.sqlite"}) == "sqlite:////tmp/h.sqlite"
    with pytest.raises(StoreUnavailable, match="url_env names DEPLOY_HISTORY_URL, which is not set"):
        store_url(from_variable, home)


def test_default_location_follows_xdg_data_home(monkeypatch):
    monkeypatch.setenv("HOME", "/home/me")
    assert default_sqlite_path({"XDG_DATA_HOME": "/data"}) == "/data/fab-deploy/history.sqlite"
    assert default_sqlite_path({}) == "/home/me/.local/share/fab-deploy/history.sqlite"


def test_history_setting_url_or_url_env_not_both():
    with pytest.raises(ValueError, match="not both"):
        HistorySettings(url="sqlite:////x", url_env="X")
    with pytest.raises(ValueError):
        HistorySettings(url_env="not a name")


@pytest.mark.parametrize("heartbeat_age,process_alive,gone", [
    (1, None, False),        # another controller, heartbeating
    (61, None, True),        # another controller, silent past the limit
    (1, False, True),        # this controller, its process is gone
    (1, True, False),        # this controller, alive
    (61, True, True),        # alive but silent (hung, or cut off from the store)
])
def test_holder_is_gone(heartbeat_age, process_alive, gone):
    now = 1_000_000.0
    assert liveness.holder_is_gone(now - heartbeat_age, now, 60, process_alive) is gone


def test_a_running_row_of_a_gone_holder_reads_interrupted():
    now = 1_000_000.0
    assert liveness.effective_outcome("running", now - 120, now, 60) == "interrupted"
    assert liveness.effective_outcome("running", now - 2, now, 60) == "running"
    assert liveness.effective_outcome("failed", now - 999, now, 60) == "failed"


def test_process_alive_here_only_knows_its_own_controller():
    import os
    assert liveness.process_alive_here("me", os.getpid(), "me") is True
    assert liveness.process_alive_here("other", os.getpid(), "me") is None
    assert liveness.process_alive_here("me", None, "me") is None


def test_small_chunks_stay_plain_and_large_ones_are_compressed():
    small = ["[   0.1s] == deploying main"]
    data, compression = chunks.encode(small)
    assert compression == chunks.PLAIN and data == small[0].encode()
    large = [f"[  {i:4d}.0s] web1       build        step output line {i}" for i in range(500)]
    data, compression = chunks.encode(large)
    assert compression == chunks.ZLIB and len(data) < len("\n".join(large)) / 3
    assert chunks.decode(data, compression) == large


@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\n"),
                        max_size=300), min_size=1, max_size=60),
       st.integers(min_value=10, max_value=2000))
def test_chunks_round_trip_in_order_and_within_size(lines, max_bytes):
    groups = chunks.split(lines, max_bytes)
    assert [line for group in groups for line in group] == lines
    for group in groups:
        assert len(group) == 1 or sum(len(line.encode()) + 1 for line in group) <= max_bytes
        assert chunks.decode(*chunks.encode(group)) == group


@pytest.mark.parametrize("seconds,text", [(None, ""), (0.04, "0.0s"), (12.34, "12.3s"), (65, "1m05s"),
                                          (3725, "1h02m")])
def test_duration(seconds, text):
    assert views.duration(seconds) == text


def test_arguments_leave_out_defaults():
    assert views.arguments_text({"resume": False, "rev": "v1.2", "keep_days": 0}) == "rev=v1.2"
    assert views.arguments_text('{"keep_days": 3}') == "keep_days=3"


def test_the_package_api_is_not_shadowed_by_its_lazily_imported_modules():
    import importlib
    import inspect
    import pkgutil

    import fab.history

    api = {name for name, value in vars(fab.history).items()
           if inspect.isfunction(value) and not name.startswith("_")}
    for module in pkgutil.iter_modules(fab.history.__path__):
        importlib.import_module(f"fab.history.{module.name}")
    assert api and all(inspect.isfunction(getattr(fab.history, name)) for name in api)


def test_the_head_revision_constant_is_the_migrations_head():
    """Opening a store compares its revision with migrate.HEAD (Alembic is not imported
    for that): a new migration must move HEAD too."""
    from fab.history import migrate

    assert migrate.HEAD == migrate.migrations_head()



def test_a_sqlite_store_outside_the_default_place_needs_its_directory(tmp_path, monkeypatch):
    from fab.history.errors import StoreUnavailable
    from fab.history.engine import create_engine

    with pytest.raises(StoreUnavailable, match="directory .*/typo does not exist"):
        create_engine(f"sqlite:///{tmp_path}/typo/history.sqlite")
    assert not (tmp_path / "typo").exists()
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))  # the default store's place is made
    create_engine(f"sqlite:///{tmp_path}/data/fab-deploy/history.sqlite").dispose()
    assert (tmp_path / "data" / "fab-deploy").is_dir()


# --- completing the record of a run that never recorded its end -------------------

from fab.history import reconcile  # noqa: E402

NEW, OLD = "2026-12-07_04.40.00", "2026-12-07_04.30.00"


def row(id_, task="deploy", outcome="running", heartbeat_at=1000.0, release=NEW,
        hosts=("web1", "web2", "proxy1"), controller="laptop", pid=4242):
    return dict(id=id_, task=task, outcome=outcome, heartbeat_at=heartbeat_at, release=release,
                hosts=json.dumps(list(hosts)), controller=controller, pid=pid)


def unfinished(rows, own=99, taken_over=None, now=1010.0, alive=None):
    return reconcile.unfinished(rows, own, taken_over, now, 60, lambda r: alive)


def test_the_run_found_unfinished_is_the_newest_that_held_the_lock_and_whose_holder_is_gone():
    killed = row(3)
    # The controller's own run, a refused one and a read-only task are not it.
    newer = [row(99), row(7, outcome="refused"), row(6, task="history", outcome="succeeded")]
    assert unfinished(newer + [killed], alive=False) == killed  # its process is gone here
    assert unfinished(newer + [killed], now=1061) == killed  # silent past stale_seconds
    assert unfinished(newer + [killed], now=1030) is None  # another controller, still heartbeating
    # A run that ended (recorded its end) after it: the hosts show that one's end, not the killed one's.
    assert unfinished([row(5, outcome="succeeded"), killed], alive=False) is None
    # One still starting elsewhere (heartbeating, never reached the hosts) is looked past.
    starting = row(8, heartbeat_at=1009.0, controller="ci")
    assert unfinished([starting, killed], now=1065) == row(3)
    assert unfinished([row(3, outcome="interrupted")], alive=False) is None  # already completed


def test_the_run_whose_claim_was_taken_over_is_the_one_found_unfinished():
    killed, later = row(3), row(5, heartbeat_at=1009.0)
    assert unfinished([later, killed], taken_over=3, now=1011) == killed  # whatever its heartbeat
    assert unfinished([later, row(3, outcome="succeeded")], taken_over=3) is None


def test_a_killed_deploy_is_recorded_per_host_swapped_or_not():
    found = {"web1": (NEW, "building"), "web2": (OLD, "building"), "proxy1": (OLD, None)}
    fix = reconcile.correction(row(3), found, 12)
    assert fix.outcome == "interrupted"
    assert fix.hosts == {"web1": ("swapped", NEW), "web2": ("not swapped", OLD), "proxy1": ("not swapped", OLD)}
    assert fix.summary == (f"its end was not recorded; operation 12 found on {NEW}: web1; "
                           f"not swapped: web2 ({OLD}), proxy1 ({OLD})")
    assert fix.steps_left_running == "interrupted"


def test_a_deploy_live_and_good_everywhere_whose_end_was_not_recorded_succeeded():
    fix = reconcile.correction(row(3), {h: (NEW, "good") for h in ("web1", "web2", "proxy1")}, 12)
    assert fix.outcome == "succeeded" and fix.steps_left_running == "not recorded"
    assert set(fix.hosts.values()) == {("swapped", NEW)}
    # Live everywhere but never marked good (killed before), or a host not read: interrupted.
    assert reconcile.correction(row(3), {h: (NEW, "building") for h in ("web1", "web2", "proxy1")},
                                12).outcome == "interrupted"
    partial = reconcile.correction(row(3), {h: (NEW, "good") for h in ("web1", "web2")}, 12)
    assert partial.outcome == "interrupted" and partial.summary.endswith("; not read: proxy1")


def test_a_run_without_a_release_of_its_own_is_recorded_interrupted_with_no_host_claim():
    fix = reconcile.correction(row(3, release=None), {"web1": (OLD, None)}, 12)
    assert (fix.outcome, fix.hosts) == ("interrupted", {})
    assert "its release was never recorded" in fix.summary
    assert reconcile.correction(row(3, task="restart_services", release=None), {"web1": (OLD, None)},
                                12).outcome == "interrupted"


def test_the_locking_tasks_are_those_that_take_the_lock_in_the_task_modules():
    import glob
    import re

    from fab import PROJECT_ROOT

    taking = set()
    for path in glob.glob(f"{PROJECT_ROOT}/fab/tasks*.py"):
        with open(path) as handle:
            taking |= set(re.findall(r'lock=(?:None if plan else )?"(\w+)"', handle.read()))
    assert taking == reconcile.LOCKING_TASKS


def stored_operation(**values):
    return {"id": 7, "environment": "prod", "task": "deploy", "arguments": "{}", "performer": "me@laptop",
            "controller": "laptop", "hosts": "[]", "started_at": 0.0, "heartbeat_at": 1.0, "finished_at": 1.0,
            "seconds": 1.0, "outcome": "succeeded", "exit_code": 0, "error": None, "release": None, "commit": None,
            "ref": None, "previous_release": None, "log_lines": 0, "log_pruned_at": None, "message": None,
            **values}


def test_the_message_shows_in_the_history_table_json_and_log_header():
    long = "roll out the new checkout flow to every customer in the EU region"
    table = views.history_table([stored_operation(message="fix login"), stored_operation(message=long),
                                 stored_operation()], now=2.0)
    assert table[0].split()[-2:] == ["message", "error"]
    assert "  fix login" in table[1]
    assert long[:37] + "..." in table[2] and long not in table[2]
    assert json.loads(views.history_json([stored_operation(message=long)], now=2.0))[0]["message"] == long
    assert views.log_header(stored_operation(message=long))[1] == f"message: {long}"
    assert len(views.log_header(stored_operation())) == 1
