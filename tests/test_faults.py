"""The fault matrix: faults injected at each stage of a deploy on the real fleet.

Whatever happens, checked from outside (ssh, the hosts' files, HTTP): every host
serves one release (the old one, or the new one after a completed rollout), no
release that was good is gone, the lock is free, the new release's recorded
status says what happened, and a resume or a new deploy then succeeds.

Faults are timed with marker files in a host's home: the environment's build
command and the web service's `before` hook wait while a marker exists, and
say so by touching a `...-started` file; the test app exits at start or answers
503 on /health while a marker exists. (The hosts' homes are directories on this
machine, so the test reads and writes them directly.)
"""
import contextlib
import datetime
import json
import os
import signal
import subprocess
import time
import urllib.request

import pytest

from conftest import FAB, PROJECT_ROOT, assert_ok
from shared_fixtures import FAULTY_CONFIG

pytestmark = pytest.mark.fleet

# --- injecting faults --------------------------------------------------------


def marker(env, host, name):
    return os.path.join(env.spec.home(host), name)


def touch(env, host, name, content=""):
    path = marker(env, host, name)
    with open(path, "w") as handle:
        handle.write(content)
    os.chown(path, *owner_ids(env, host))


def owner_ids(env, host):
    stat = os.stat(env.spec.home(host))
    return stat.st_uid, stat.st_gid


def wait_for(path, what, timeout=60):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def start_fab(env, *args):
    return subprocess.Popen(
        [FAB, env.name, *args], cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "CI": "true", "DEPLOY_ENVIRONMENTS": env.directory},
    )


def finish(process, timeout=240):
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def drop_connections(env, host):
    """Cut every SSH session to `host` (its sshd keeps listening)."""
    subprocess.run(["pkill", "-KILL", "-u", env.spec.user(host), "-x", "sshd"], check=False)


@contextlib.contextmanager
def sshd_stopped(env, host):
    from fab import sandbox

    with open(env.spec.state_file) as handle:  # the pid the fleet recorded when it started sshd
        os.kill(json.load(handle)["hosts"][host]["sshd_pid"], signal.SIGTERM)
    try:
        yield
    finally:
        sandbox.up(env.spec)  # starts it again and records its new pid, so teardown stops it


@contextlib.contextmanager
def disk_full(env, host):
    """A small tmpfs as `host`'s code root, holding one good release, then filled up."""
    root = env.code_root(host)
    saved = os.path.join(env.spec.home(host), "code-root-saved")  # outside supervisord's www/* glob
    os.rename(root, saved)
    os.makedirs(root)
    uid, gid = owner_ids(env, host)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size=48m,uid={uid},gid={gid},mode=0755",
                    "fabtest-full", root], check=True)
    try:
        yield root
    finally:
        subprocess.run(["umount", "-l", root], check=False)
        os.rmdir(root)
        os.rename(saved, root)


def fill(path):
    filler = os.path.join(path, "filler")
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=1M", "count=100"],
                   capture_output=True, check=False)


# --- what a user checks from outside ------------------------------------------


def currents(env):
    return {host: env.current(host) for host in env.hosts}


def good_releases(env):
    return {(host, r) for host in env.hosts for r in env.releases(host)
            if env.meta(host, r).get("status") == "good"}


def lock_is_free(env, within=10):
    """Whether the deploy lock frees within `within` seconds: its holder on web1 ends
    once sshd has seen the deployer's connection close (a dead deployer included)."""
    lockfile = os.path.join(env.code_root("web1"), ".deploy.lock")
    deadline = time.monotonic() + within
    while subprocess.run(["flock", "-n", lockfile, "true"], check=False).returncode != 0:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def served_commits(env):
    commits = {host: env.version(host)["commit"] for host in ("web1", "web2")}
    url = f"http://{env.spec.hosts['proxy1']}:{env.proxy_port}/version"
    with urllib.request.urlopen(url, timeout=10) as response:
        commits["proxy"] = json.loads(response.read().decode())["commit"]
    return commits


def assert_fleet_on(env, release, commit, good_before):
    assert set(currents(env).values()) == {release}, currents(env)
    assert set(served_commits(env).values()) == {commit}
    assert good_before <= good_releases(env) | {(h, r) for h, r in good_before if r == release}
    for host, name in good_before:
        assert name in env.releases(host), f"good release {name} is gone from {host}"
    assert lock_is_free(env)


def new_release_of(env, before):
    made = sorted(set(env.releases("web1")) - set(before))
    assert len(made) == 1, made
    return made[0]


# --- the matrix -------------------------------------------------------------------

#: (fault, stage) -> what the fault does once the deploy is running.
CASES = [
    ("unreachable", "before the build"),
    ("connection drop", "mid-build"),
    ("connection drop", "during the restart waves"),
    ("sshd stopped", "during the canary"),
    ("disk full", "mid-build"),
    ("program exits at once", "canary"),
    ("program exits at once", "during the restart waves"),
    ("health check fails", "after the swap"),
    ("SIGINT", "mid-build"),
    ("SIGTERM", "during the restart waves"),
    ("SIGINT", "after the health checks"),
    ("SIGKILL", "mid-build"),
    ("SIGKILL", "during the restart waves"),
]


@pytest.mark.parametrize("fault,stage", CASES, ids=[f"{f}@{s}" for f, s in CASES])
def test_fault_matrix(faulty_env, fault, stage):
    env = faulty_env
    old_release, old_commit = env.current("web1"), env.head()
    good_before = good_releases(env)
    releases_before = env.releases("web1")
    new_commit = env.commit("NEWS.txt", f"{fault} {stage}\n", f"release under fault: {fault} {stage}")
    outcome = inject(env, fault, stage)

    if outcome == "completed":
        # The interrupt came after every wave was live and healthy: the new release stays.
        release = new_release_of(env, releases_before)
        assert_fleet_on(env, release, new_commit, good_before)
        return
    if outcome == "recovered":
        # Its extra deploys cleaned older releases as they should: only the fleet's
        # agreement, what it serves and the lock are left to check.
        assert_fleet_on(env, env.current("web1"), env.head(), set())
        return

    made = sorted(set(env.releases("web1")) - set(releases_before))
    if outcome != "killed":  # a SIGKILLed deployer can put nothing back: the next deploy does
        assert_fleet_on(env, old_release, old_commit, good_before)
        if made:
            status = env.meta("web1", made[0])["status"]
            assert status == outcome, f"release {made[0]} is {status}, expected {outcome}"
    # The fault is gone: the fleet deploys again (no unlock), resuming where it can.
    assert_ok(env.fab("deploy:resume=yes" if made and outcome != "killed" else "deploy"))
    release = env.current("web1")
    assert release != old_release
    assert_fleet_on(env, release, new_commit, good_before)


def inject(env, fault, stage):
    """Run a deploy with `fault` at `stage`; return the status its release should
    have ("completed" if the rollout finished)."""
    if fault == "unreachable":
        with sshd_stopped(env, "web2"):
            code, _, err = finish(start_fab(env, "deploy"))
        assert code == 1 and "web2" in err and "cannot connect" in err, err
        return "none"

    if fault == "disk full":
        # Its own code root: a small tmpfs with one good release on it, then full.
        with disk_full(env, "web2") as root:
            assert_ok(env.fab("deploy"))
            good = env.current("web2")
            fill(root)
            env.commit("NEWS.txt", "more news\n", "another release under a full disk")
            code, out, err = finish(start_fab(env, "deploy"))
            assert code == 1 and "web2" in err, err
            assert "No space left" in out + err
            assert env.current("web2") == good and env.current("web1") == good
            os.remove(os.path.join(root, "filler"))
            assert_ok(env.fab("deploy:resume=yes"))
            assert len(set(currents(env).values())) == 1
            assert lock_is_free(env)
        # Back on its real disk web2 runs the release it had: a deploy brings it level.
        assert_ok(env.fab("deploy"))
        return "recovered"

    if stage == "mid-build":
        touch(env, "web2", "fault-slow-build")
        process = start_fab(env, "deploy")
        wait_for(marker(env, "web2", "fault-build-started"), "the build to start")
        if fault == "connection drop":
            drop_connections(env, "web2")
            code, out, err = finish(process)
            assert code == 1 and "connection to web2 lost" in err, err
            os.remove(marker(env, "web2", "fault-slow-build"))
            return "failed"
        process.send_signal({"SIGINT": signal.SIGINT, "SIGKILL": signal.SIGKILL}[fault])
        code, out, err = finish(process)
        os.remove(marker(env, "web2", "fault-slow-build"))
        if fault == "SIGKILL":
            assert code == -signal.SIGKILL
            return "building"
        assert code == 130 and "interrupted" in err and "deploy:resume=yes" in out, (out, err)
        # The step that was running is the one stopped; those before it are reported done.
        assert "web2       build        FAILED: stopped" in out, out
        assert "web2       virtualenv   FAILED" not in out and "@@fab-step" not in out, out
        return "interrupted"

    if fault == "sshd stopped":
        # web2 goes away while the canary web1 restarts: its own wave cannot even
        # connect. The canary is put back all the same, and the error says both.
        old_release, old_commit = env.current("web1"), env.version("web1")["commit"]
        touch(env, "web1", "fault-slow-restart")
        process = start_fab(env, "deploy")
        wait_for(marker(env, "web1", "fault-restart-started"), "the canary's restart to start")
        with sshd_stopped(env, "web2"):
            drop_connections(env, "web2")
            os.remove(marker(env, "web1", "fault-slow-restart"))
            code, out, err = finish(process)
            assert code == 4, (out, err)
            assert "connection to web2 lost" in err or "cannot connect" in err, err
            assert "could not put back web2" in err and "rotation: web2" in err, err
            # What a user checks before web2 is back: the canary and pillow1 went back.
            assert env.current("web1") == env.current("pillow1") == old_release
            assert env.version("web1")["commit"] == old_commit
        return "failed"

    if stage in ("during the restart waves", "canary") and fault != "program exits at once":
        host = "web2"
        touch(env, host, "fault-slow-restart")
        process = start_fab(env, "deploy")
        wait_for(marker(env, host, "fault-restart-started"), "the restart to start")
        if fault == "connection drop":
            drop_connections(env, host)
        else:
            process.send_signal({"SIGTERM": signal.SIGTERM, "SIGKILL": signal.SIGKILL}[fault])
        if fault == "SIGKILL":
            finish(process)
            os.remove(marker(env, host, "fault-slow-restart"))
            # Nothing could put the fleet back: the next deploy must run (no unlock
            # needed) and leave every host on one release.
            return "killed"
        os.remove(marker(env, host, "fault-slow-restart"))
        code, out, err = finish(process)
        assert "every host is back on its previous release" in err, (out, err)
        if fault == "SIGTERM":
            assert code == 130, err
            return "interrupted"
        assert code == 1 and "web2" in err, err
        return "failed"

    if fault == "program exits at once":
        host = "web1" if stage == "canary" else "web2"
        untouched = {h: env.version(h)["pid"] for h in ("web1", "web2") if h != host}
        touch(env, host, "fault-crash", env.head())
        try:
            code, out, err = finish(start_fab(env, "deploy"))
        finally:
            os.remove(marker(env, host, "fault-crash"))
        # gunicorn's workers fail to boot: supervisor gives up (FATAL), or the master
        # stays up and the health check times out. Either way the host failed.
        assert code == 1 and f"{host} (" in err, (out, err)
        if stage == "canary":
            assert "the canary failed" in err
            # No other host was touched: same processes, never swapped.
            for other, pid in untouched.items():
                assert env.version(other)["pid"] == pid
            assert "web2       swap" not in out and "pillow1    swap" not in out
        else:
            assert "more than the failure limit" in err
        return "failed"

    if fault == "health check fails":
        touch(env, "web2", "fault-unhealthy", env.head())
        try:
            code, out, err = finish(start_fab(env, "deploy"))
        finally:
            os.remove(marker(env, "web2", "fault-unhealthy"))
        assert code == 1 and "web2" in err and "503" in err, err
        return "failed"

    if fault == "SIGINT" and stage == "after the health checks":
        # Every web wave is live and healthy; the proxy wave is being restarted.
        process = start_fab(env, "deploy")
        deadline = time.monotonic() + 120
        seen = ""
        while "proxies: proxy1 going live" not in seen:
            assert time.monotonic() < deadline, seen
            seen += process.stdout.readline()
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=240)
        # Interrupted while the proxy went live, every wave is put back; interrupted
        # later (marking, cleaning), the release is already good everywhere.
        live = set(currents(env).values())
        return "completed" if live != {None} and env.head() == env.version("web1")["commit"] else "interrupted"
    raise AssertionError(f"no injection for {fault} at {stage}")


def test_a_host_failing_within_the_failure_limit_goes_back_while_the_others_stay_live(faulty_env):
    env = faulty_env
    env.write_config(**FAULTY_CONFIG, rollout={"canary": ["web1"], "batch": 1, "failure_limit": 1})
    old_release, old_commit = env.current("web2"), env.head()
    new_commit = env.commit("NEWS.txt", "web2 cannot serve this one\n", "a release web2 fails")
    touch(env, "web2", "fault-unhealthy", new_commit)
    try:
        code, out, err = finish(start_fab(env, "deploy"))
    finally:
        os.remove(marker(env, "web2", "fault-unhealthy"))

    assert code == 4, (out, err)
    assert "within the failure limit" in err and "web2" in err, err
    new_release = env.current("web1")
    assert new_release != old_release
    assert {host: env.current(host) for host in ("web2", "pillow1", "proxy1")} == {
        "web2": old_release, "pillow1": new_release, "proxy1": new_release}
    assert (env.version("web1")["commit"], env.version("web2")["commit"]) == (new_commit, old_commit)
    assert env.meta("web2", old_release)["status"] == "good"
    # Both web hosts are in rotation: every proxied request is answered.
    url = f"http://{env.spec.hosts['proxy1']}:{env.proxy_port}/version"
    answered = set()
    for _ in range(8):
        with urllib.request.urlopen(url, timeout=10) as response:
            answered.add(json.loads(response.read().decode())["commit"])
    assert answered <= {new_commit, old_commit}
    assert lock_is_free(env)

    # The fault gone, the next deploy brings web2 level with the others.
    assert_ok(env.fab("deploy"))
    assert set(currents(env).values()) == {env.current("web1")}
    assert set(served_commits(env).values()) == {new_commit}


def test_a_failing_canary_is_shown_as_it_happened(faulty_env, tmp_path):
    """The canary's health check fails: the JSON summary shows the step the canary
    was really in while it polled (health, for the time it really polled: a steady
    503 fails at its third answer, well before the check's timeout; not the swap),
    and the release each host is on after the task: the canary put back, the others
    never moved."""
    from test_outputs import validate

    env = faulty_env
    old_release = env.current("web1")
    new_commit = env.commit("NEWS.txt", "the canary cannot serve this one\n", "a release the canary fails")
    touch(env, "web1", "fault-unhealthy", new_commit)
    summary = tmp_path / "summary.json"
    try:
        result = env.fab("deploy", environ={"FAB_JSON": str(summary)})
    finally:
        os.remove(marker(env, "web1", "fault-unhealthy"))
    assert result.returncode == 1 and "the canary failed" in result.stderr, result.stderr
    doc = validate(json.loads(summary.read_text()))

    steps = doc["hosts"]["web1"]["steps"]
    failed = [step for step in steps if step["outcome"] == "failed"]
    assert [step["step"] for step in failed] == ["health"], steps
    health = failed[0]
    timeout = FAULTY_CONFIG["service_settings"]["web"]["health_check"]["timeout"]
    polled = at(health["finished_at"]) - at(health["started_at"])
    assert 0 < health["seconds"] < timeout and abs(polled - health["seconds"]) < 1.5, health
    assert "3 times in a row" in health["output"], health
    before = steps[steps.index(health) - 1]
    assert before["step"] == "restart" and at(before["finished_at"]) <= at(health["started_at"])

    assert {host: (entry["release"], entry["outcome"]) for host, entry in doc["hosts"].items()} == {
        "web1": (old_release, "put back"), "web2": (old_release, "ok"), "pillow1": (old_release, "ok"),
        "proxy1": (old_release, "ok")}
    assert set(currents(env).values()) == {old_release}


def at(timestamp):
    return datetime.datetime.fromisoformat(timestamp).timestamp()


def test_releases_shows_the_hosts_it_can_read_while_one_is_down(deploy_env):
    env = deploy_env
    assert_ok(env.fab("deploy"))
    live = env.current("web1")
    with sshd_stopped(env, "web2"):
        result = env.fab("releases")
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert f"* {live}" in result.stdout  # web1, pillow1, proxy1 are listed
    assert "not read: cannot connect" in result.stdout
    error = [line for line in result.stderr.splitlines() if line.strip()][-1]
    assert "could not read web2" in error, result.stderr
