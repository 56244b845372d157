"""The history of real deploys on the real fleet, through the real `fab` command:
what is recorded, following a running deploy, a killed deploy, claims, an
unreachable store, and a team's PostgreSQL store."""
import json
import os
import queue
import re
import signal
import socket
import sqlite3
import subprocess
import threading
import time

import pytest
import sqlalchemy as sa

from conftest import FAB, assert_ok, assert_one_line_error
from fab import PROJECT_ROOT, sandbox
from fab.history.store import open_store
import test_faults as faults
from test_deploy import live_release

pytestmark = pytest.mark.fleet

ELAPSED = re.compile(r"^\[\s*[\d.]+s\] ")
WAIT_SECONDS = 120


def operations(env, environ=None):
    return json.loads(assert_ok(env.fab("history:json=yes", environ=environ)).stdout)


def start_fab(env, *args, environ=None):
    """`fab <env> <args>` in the background, its output read line by line into a queue;
    `environ` adds environment variables."""
    process = subprocess.Popen(
        [FAB, env.name, *args], cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "CI": "true", "DEPLOY_ENVIRONMENTS": env.directory, **(environ or {})})
    process.lines = queue.Queue()
    process.seen = []

    def read():
        for line in process.stdout:
            process.lines.put(line.rstrip("\n"))

    process.reader = threading.Thread(target=read, daemon=True)
    process.reader.start()
    return process


def wait_for_line(process, fragment):
    """Lines of `process` up to the first containing `fragment` (bounded)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        try:
            line = process.lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"no line with {fragment!r} after: {process.seen}") from None
        process.seen.append(line)
        if fragment in line:
            return process.seen


def remaining_lines(process):
    assert process.wait(timeout=WAIT_SECONDS) == 0, process.seen
    process.reader.join(timeout=WAIT_SECONDS)  # it ends at the end of the pipe: every line is queued
    assert not process.reader.is_alive(), process.seen
    while not process.lines.empty():
        process.seen.append(process.lines.get_nowait())
    return process.seen


def test_a_deploy_and_a_failed_deploy_are_recorded_with_their_steps_and_error(deploy_env):
    env = deploy_env
    commit = env.head()
    assert_ok(env.fab("deploy"))
    release = live_release(env)
    env.write_config(checks=["echo checking the release; exit 1"])
    failed = env.fab("deploy")
    assert failed.returncode == 1
    error = failed.stderr.strip().splitlines()[-1]
    assert error.startswith("error: step 'check' failed")

    newest, first = operations(env)
    assert (first["task"], first["outcome"], first["exit_code"], first["error"]) == ("deploy", "succeeded", 0, None)
    assert (first["release"], first["commit"], first["ref"]) == (release, commit, "main")
    assert first["controller"] == socket.gethostname() and first["performer"].endswith("@" + socket.gethostname())
    assert first["hosts"] == ["web1", "web2", "pillow1"] and first["seconds"] > 0
    # The commit's time and subject, from the controller's copy of the repository (lead time).
    committed, subject = sandbox.tools.git("show", "-s", "--format=%ct%x00%s", commit,
                                           cwd=env.spec.app_workdir).split("\0")
    recorded = open_store(os.environ["FAB_HISTORY_URL"], env.name).operation(env.name, first["id"])
    assert (recorded["commit_time"], recorded["commit_subject"]) == (float(committed), subject) and subject
    assert (newest["outcome"], newest["exit_code"], newest["error"]) == ("failed", 1, error[len("error: "):])
    assert newest["release"] not in (None, release)

    log = assert_ok(env.fab("deploy_log")).stdout.splitlines()
    stored = [ELAPSED.sub("", line) for line in log]
    shown = [ELAPSED.sub("", line) for line in failed.stdout.splitlines()]
    assert all(line in stored for line in shown)  # every line the terminal showed, stored
    assert error in stored and "| checking the release" in " ".join(stored)
    steps = log[log.index("steps:") + 1:]
    for host in ("web1", "web2", "pillow1"):
        assert any(re.match(rf"  {host} +code +ok ", line) for line in steps), steps
        assert any(re.match(rf"  {host} +check +failed ", line) for line in steps), steps
    assert log[-1].startswith("deploy failed (exit 1) after ") and log[-1].endswith(error[len("error: "):])

    first_log = assert_ok(env.fab(f"deploy_log:{first['id']}")).stdout
    assert "deploy finished: release" in first_log and "deploy succeeded (exit 0)" in first_log
    table = assert_ok(env.fab("history:limit=1")).stdout.splitlines()
    assert table[0] == f"history store: {os.environ['FAB_HISTORY_URL']}"
    assert table[1].split()[:4] == ["id", "when", "(UTC)", "who"] and len(table) == 3
    assert " failed " in table[2] and table[2].endswith(error[len("error: "):])


def test_deploy_log_follow_shows_a_running_deploy_as_it_happens(deploy_env, go_signal):
    env = deploy_env
    # Held before the swap (a hook, on this machine), once every host's build is reported.
    env.write_config(hooks={"before_swap": [go_signal.check()]})
    follower = start_fab(env, "deploy_log:follow=yes")
    deploy = None
    try:
        wait_for_line(follower, f"waiting for the next operation on {env.name}")
        deploy = start_fab(env, "deploy")
        wait_for_line(follower, "== deploying main")
        wait_for_line(follower, "services")  # built everywhere, now held before the swap
        assert deploy.poll() is None  # the follower showed these while the deploy runs
        go_signal.go()
        assert "deploy finished" in " ".join(remaining_lines(deploy))
        followed = remaining_lines(follower)
    finally:
        for process in (follower, deploy):
            if process and process.poll() is None:
                process.kill()
    assert any("deploy finished: release" in line for line in followed)
    assert followed[-1].startswith("deploy succeeded (exit 0)")
    assert "steps:" in followed


def test_a_killed_deploy_leaves_an_interrupted_row(deploy_env, go_signal):
    env = deploy_env
    env.write_config(checks=[go_signal.check()])
    deploy = start_fab(env, "deploy")
    store = open_store(os.environ["FAB_HISTORY_URL"], env.name)
    deadline = time.monotonic() + WAIT_SECONDS
    # Each host's build is one round trip, and each of its steps is recorded as it starts
    # there: web1's pre-swap check, waiting for the go signal, is recorded running.
    while not any((s["host"], s["step"]) == ("web1", "check") for s in steps_of_newest(store, env)):
        assert time.monotonic() < deadline and deploy.poll() is None, deploy.seen
        time.sleep(0.05)
    os.kill(deploy.pid, signal.SIGKILL)
    deploy.wait(timeout=60)

    [killed] = operations(env)
    assert (killed["outcome"], killed["finished_at"], killed["exit_code"]) == ("interrupted", None, None)
    assert killed["seconds"] > 0  # up to its last recorded words, not 0.0 for want of a heartbeat
    log = assert_ok(env.fab("deploy_log")).stdout.splitlines()
    assert any(line.endswith("== deploying main at " + env.head()[:12] + " as release " + killed["release"])
               for line in log), log
    assert any(re.match(r"  web1 +release +ok", line) for line in log), log
    assert any(re.match(r"  web1 +check +interrupted", line) for line in log), log
    assert "deploy interrupted" in log[-1] and "its controller stopped answering" in log[-1]


def steps_of_newest(store, env):
    ops = store.operations(env.name, 1)
    return store.steps(ops[0]["id"]) if ops else []


def test_an_unreachable_store_makes_deploy_refuse_and_changes_no_host(deploy_env):
    env = deploy_env
    unreachable = {"FAB_HISTORY_URL": "postgresql://deployer:hunter2@127.0.0.1:1/deploys"}
    refused = env.fab("deploy", environ=unreachable)
    assert_one_line_error(refused, "history store postgresql://deployer:***@127.0.0.1:1/deploys cannot be reached",
                          "deploy does not run without it")
    assert "hunter2" not in refused.stdout + refused.stderr
    for host in env.hosts:
        assert env.releases(host) == [] and env.current(host) is None
        assert not os.path.exists(os.path.join(env.code_root(host), ".deploy-lock"))

    # The emergency tools go ahead, with a warning.
    unlocked = assert_ok(env.fab("unlock", environ=unreachable))
    assert "warning: history store postgresql://deployer:***@127.0.0.1:1/deploys cannot be reached" in unlocked.stdout
    assert f"{env.name} was not locked" in unlocked.stdout
    rollback = env.fab("rollback", environ=unreachable)
    assert "rollback goes ahead without claiming" in rollback.stdout
    assert "history store" not in rollback.stderr and "no current release" in rollback.stderr  # its own reason
    assert "hunter2" not in unlocked.stdout + unlocked.stderr + rollback.stdout + rollback.stderr

    # A URL that can never work is a configuration error (exit 2), said once.
    misconfigured = env.fab("deploy", environ={"FAB_HISTORY_URL": "mysql://deployer@127.0.0.1/deploys"})
    assert misconfigured.returncode == 2
    assert_one_line_error(misconfigured, "use a sqlite:// or postgresql:// URL", "deploy does not run without it")
    assert misconfigured.stdout.count("warning:") == 1 and "kept in memory" not in misconfigured.stdout


def test_a_claim_held_elsewhere_refuses_deploy_and_a_stale_one_is_taken_over(deploy_env):
    env = deploy_env
    store = open_store(os.environ["FAB_HISTORY_URL"], env.name)
    now = time.time()
    store.insert_claim(dict(environment=env.name, token="a" * 32, holder="alice@laptop", controller="laptop",
                            pid=4242, task="deploy", claimed_at=now, heartbeat_at=now))
    refused = env.fab("deploy")
    assert refused.returncode == 3
    # Named as the host lock names its holder: user, task, pid, machine, since (fab.holders).
    assert_one_line_error(refused, f"environment {env.name} is locked by alice@laptop (deploy, pid 4242 on laptop, "
                          "since ")
    assert all(env.releases(host) == [] for host in env.hosts)
    cleared = assert_ok(env.fab("unlock"))
    assert "removed the claim of alice@laptop (deploy, pid 4242 on laptop, since" in cleared.stdout
    assert store.claim(env.name) is None

    store.insert_claim(dict(environment=env.name, token="b" * 32, holder="alice@laptop", controller="laptop",
                            pid=4242, task="deploy", claimed_at=now - 7200, heartbeat_at=now - 3600))
    old = store.start_operation(env.name, "deploy", {}, "alice@laptop", "laptop", 4242, [], now - 100 * 86400)
    store.write_progress(old, 1, ["[   0.1s] == a deploy long ago"], [], {}, dict(outcome="succeeded"))
    taken = assert_ok(env.fab("deploy"))
    assert "took over the stale claim of alice@laptop (deploy, pid 4242 on laptop, since" in taken.stdout
    cleared_audit, taken_audit = store.claim_audit(env.name)
    assert (cleared_audit["action"], cleared_audit["holder"]) == ("cleared", "alice@laptop")
    assert (taken_audit["action"], taken_audit["holder"], taken_audit["controller"]) == (
        "taken_over", "alice@laptop", "laptop")
    assert taken_audit["by"].endswith("@" + socket.gethostname())
    assert store.claim(env.name) is None  # the deploy gave its claim back
    deployed, _long_ago, unlock, refusal = operations(env)
    assert (deployed["outcome"], unlock["task"], refusal["outcome"], refusal["exit_code"]) == (
        "succeeded", "unlock", "refused", 3)
    assert "locked by alice@laptop" in refusal["error"]
    assert store.log_lines(old) == []  # the deploy pruned the old log in passing


def test_a_team_store_on_postgresql_is_shared_by_every_controller(deploy_env, postgres):
    env = deploy_env
    password = "s3cret-pw"
    url = postgres.url(postgres.create_database(), password=password)
    env.write_config(history={"url_env": "TEAM_HISTORY_URL"})
    team = {"FAB_HISTORY_URL": None, "TEAM_HISTORY_URL": url}

    deployed = assert_ok(env.fab("deploy", environ={**team, "FAB_CONTROLLER": "laptop-a"}))
    shown = assert_ok(env.fab("history", environ={**team, "FAB_CONTROLLER": "ci-runner"}))
    log = assert_ok(env.fab("deploy_log", environ={**team, "FAB_CONTROLLER": "ci-runner"}))
    assert shown.stdout.startswith("history store: postgresql://postgres:***@/")
    [row] = shown.stdout.splitlines()[2:]
    assert "root@laptop-a" in row and " laptop-a " in row and " succeeded " in row
    assert "deploy finished: release" in log.stdout
    outputs = deployed.stdout + deployed.stderr + shown.stdout + shown.stderr + log.stdout + log.stderr
    assert password not in outputs

    store = open_store(url, env.name)
    stored = [text for op in store.operations(env.name, 10) for _, text in store.log_lines(op["id"])]
    tables = sa.MetaData()
    tables.reflect(store.engine)
    with store.engine.connect() as connection:
        for table in tables.sorted_tables:
            if table.name != "fab_log_chunks":  # read above, decompressed
                stored.extend(str(row) for row in connection.execute(sa.select(table)))
    assert len(stored) > 20 and password not in " ".join(stored)


def sqlite_path(url):
    return url.removeprefix("sqlite:///")


def test_a_store_that_cannot_record_makes_deploy_refuse_and_rollback_go_ahead(deploy_env):
    env = deploy_env
    assert_ok(env.fab("deploy"))
    first = live_release(env)
    env.commit("NEWS.txt", "second\n", "a second release")
    assert_ok(env.fab("deploy"))
    second = live_release(env)
    # Partly corrupted: the claims table works, the steps table is gone.
    with sqlite3.connect(sqlite_path(os.environ["FAB_HISTORY_URL"])) as database:
        database.execute("DROP TABLE fab_steps")
    database.close()
    env.commit("NEWS.txt", "third\n", "a third release")
    on_hosts = {host: (env.current(host), env.releases(host)) for host in env.hosts}

    refused = env.fab("deploy")
    assert refused.returncode == 1
    assert_one_line_error(refused, "history store sqlite:///", "cannot record: no such table: fab_steps",
                          "deploy does not run without it (rollback and unlock do)")
    assert {host: (env.current(host), env.releases(host)) for host in env.hosts} == on_hosts
    assert open_store(os.environ["FAB_HISTORY_URL"], env.name).claim(env.name) is None

    rolled_back = assert_ok(env.fab("rollback"))
    assert "cannot record: no such table: fab_steps; rollback goes ahead without claiming" in rolled_back.stdout
    assert live_release(env) == first != second


def deploy_held_before_swap(env, postgres, go_signal, monkeypatch):
    """A deploy recording into a new PostgreSQL database, built everywhere and held
    before its swap, once the store has heard which release it makes (its writer flushes
    every second or so; on a busy machine later): the test then stops the store."""
    monkeypatch.setenv("FAB_HISTORY_URL", postgres.url(postgres.create_database()))
    env.write_config(hooks={"before_swap": [go_signal.check()]})
    deploy = start_fab(env, "deploy")
    deadline = time.monotonic() + WAIT_SECONDS
    while not go_signal.waiting():
        assert time.monotonic() < deadline and deploy.poll() is None
        time.sleep(0.05)
    while not operations(env)[0]["release"]:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    return deploy


def test_a_deploy_whose_postgresql_store_went_down_is_recorded_succeeded_once_it_is_back(
        deploy_env, postgres, go_signal, monkeypatch):
    env = deploy_env
    deploy = deploy_held_before_swap(env, postgres, go_signal, monkeypatch)
    postgres.stop()
    try:
        go_signal.go()
        wait_for_line(deploy, "deploy finished: release")
        wait_for_line(deploy, "retrying for up to")  # its end could not be written: it waits
    finally:
        postgres.start_server()
    output = "\n".join(remaining_lines(deploy))  # exit 0
    assert "the end of this deploy is recorded" in output, output

    [deployed] = operations(env)
    assert (deployed["outcome"], deployed["exit_code"], deployed["error"]) == ("succeeded", 0, None)
    assert deployed["release"] == live_release(env)
    log = assert_ok(env.fab("deploy_log")).stdout
    assert "deploy finished: release" in log and "deploy succeeded (exit 0)" in log


def test_the_next_task_records_per_host_what_a_killed_deploy_left(faulty_env):
    env = faulty_env  # waves: canary web1 | web2 + pillow1 | proxy1
    old = live_release(env)
    env.commit("NEWS.txt", "killed\n", "a release whose deploy is killed")
    faults.touch(env, "web1", "fault-slow-restart")
    killed = faults.start_fab(env, "deploy")
    try:
        # The canary is swapped and restarting: kill the deployer there.
        faults.wait_for(faults.marker(env, "web1", "fault-restart-started"), "the canary's restart")
        deadline = time.monotonic() + 20  # the store has heard its release (a busy machine flushes late)
        while not [op for op in operations(env) if op["outcome"] == "running" and op["release"]]:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        killed.send_signal(signal.SIGKILL)
        killed.communicate(timeout=60)
    finally:
        os.remove(faults.marker(env, "web1", "fault-restart-started"))
        os.remove(faults.marker(env, "web1", "fault-slow-restart"))
    new = env.current("web1")
    assert new != old and {env.current(host) for host in ("web2", "pillow1", "proxy1")} == {old}
    [before] = [op for op in operations(env) if op["outcome"] != "succeeded"]
    assert (before["outcome"], before["error"]) == ("interrupted", None)

    deployed = assert_ok(env.fab("deploy"))
    assert f"operation {before['id']} (deploy) never recorded its end: recorded now as interrupted" in deployed.stdout
    [after] = [op for op in operations(env) if op["id"] == before["id"]]
    assert after["outcome"] == "interrupted" and after["exit_code"] is None
    assert after["error"] == (f"its end was not recorded; operation {before['id'] + 1} found on {new}: web1; "
                              f"not swapped: web2 ({old}), pillow1 ({old}), proxy1 ({old})")
    log = assert_ok(env.fab(f"deploy_log:{before['id']}")).stdout.splitlines()
    assert any(re.match(rf"  web1 +current +swapped +0.0s +runs {new}$", line) for line in log), "\n".join(log)
    for host in ("web2", "pillow1", "proxy1"):
        assert any(re.match(rf"  {host} +current +not swapped +0.0s +runs {old}$", line) for line in log), "\n".join(log)
    assert f"[reconciled] {after['error']}" in log
    # Corrected once: the deploy after it finds nothing to correct.
    assert "never recorded its end" not in assert_ok(env.fab("deploy")).stdout


def test_a_deploy_whose_store_stayed_down_past_its_end_is_completed_by_the_next_task(
        deploy_env, postgres, go_signal, monkeypatch):
    env = deploy_env
    deploy = deploy_held_before_swap(env, postgres, go_signal, monkeypatch)
    postgres.stop()
    try:
        go_signal.go()
        output = "\n".join(remaining_lines(deploy))  # exit 0, after its bounded wait
    finally:
        postgres.start_server()
    assert "gave up; the end of this deploy is not recorded" in output, output
    release = live_release(env)
    [unfinished] = operations(env)
    assert unfinished["outcome"] == "interrupted"  # as it reads: running, its process gone

    again = assert_ok(env.fab("deploy"))
    assert (f"operation {unfinished['id']} (deploy) never recorded its end: recorded now as succeeded"
            in again.stdout), "\n" + again.stdout
    # (A server that crashed skips sequence values: the ids are not consecutive.)
    reader, completed = operations(env)
    assert completed["id"] == unfinished["id"]
    assert completed["outcome"] == "succeeded" and completed["release"] == release
    assert completed["error"] == (f"its end was not recorded; operation {reader['id']} found on "
                                  f"{release}: web1, web2, pillow1")
