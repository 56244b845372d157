"""Every way a deploy loses its lock or its terminal, on the real fleet: `unlock`
while a deploy is paused, SIGHUP mid-wave with the terminal's pipes closed, an
owner record that names another process, a claim whose holder was SIGKILLed.

Checked from outside as a user would: which release every host runs and the
proxy serves, whether the proxies left a host out, what was printed, the exit
code, the release's recorded status and the task's history."""
import contextlib
import glob
import json
import os
import pty
import signal
import subprocess
import threading
import time

import pytest

from conftest import FAB, PROJECT_ROOT, assert_ok, assert_one_line_error
from fab import shell
from fab.operations import lock
from fab.paths import Paths
from fab.history import claims
from fab.history.store import open_store
from test_faults import assert_fleet_on, finish, good_releases, lock_is_free, marker, start_fab, touch, wait_for

pytestmark = pytest.mark.fleet


def last_deploy(env):
    """The newest deploy in the environment's history."""
    return next(op for op in json.loads(assert_ok(env.fab("history:json=yes")).stdout) if op["task"] == "deploy")


def drain(terminal):
    """Read a pty's output as a terminal would (until it closes), so the deployer never blocks on it."""
    def read():
        with contextlib.suppress(OSError):
            while os.read(terminal, 65536):
                pass
    threading.Thread(target=read, daemon=True).start()


def new_releases(env, before):
    return sorted(set(env.releases("web1")) - set(before))


def lock_generation(env, host):
    with open(os.path.join(env.code_root(host), ".deploy.lock.generation")) as handle:
        return int(handle.read())


def drained_in_proxy(env):
    """The backends the proxy's upstream lists leave out (" down")."""
    root = env.code_root("proxy1")
    down = []
    for path in glob.glob(os.path.join(root, "shared", "**", "*"), recursive=True):
        if os.path.isfile(path):
            with open(path, errors="replace") as handle:
                down += [line.strip() for line in handle if line.strip().startswith("server ") and " down" in line]
    return down


def test_a_deploy_whose_lock_is_broken_while_it_is_paused_changes_nothing_more(faulty_env):
    env = faulty_env
    old_release, old_commit = env.current("web1"), env.head()
    good_before, before = good_releases(env), env.releases("web1")
    env.commit("NEWS.txt", "paused mid-build\n", "a release whose deployer is paused")
    touch(env, "web2", "fault-slow-build")
    process = start_fab(env, "deploy")
    try:
        wait_for(marker(env, "web2", "fault-build-started"), "the build to start")
        process.send_signal(signal.SIGSTOP)  # a laptop lid closes
        os.remove(marker(env, "web2", "fault-slow-build"))  # its build ends meanwhile
        unlocked = assert_ok(env.fab("unlock"))
        assert "stopped the lock holder" in unlocked.stdout
        # Every host now refuses the paused deployer's swaps (its generation is behind theirs).
        assert len({lock_generation(env, host) for host in env.hosts}) == 1
    finally:
        process.send_signal(signal.SIGCONT)  # the lid opens
    code, out, err = finish(process)

    assert code == 130, (out, err)
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: the deploy lock on web1 was taken away: ") and " lock broken by " in last, err
    assert "current ->" not in out, out  # not one swap
    assert_fleet_on(env, old_release, old_commit, good_before)
    assert drained_in_proxy(env) == []
    made = new_releases(env, before)
    assert [env.meta("web1", name)["status"] for name in made] == ["interrupted"]
    newest = last_deploy(env)
    assert (newest["task"], newest["outcome"], newest["exit_code"]) == ("deploy", "interrupted", 130)
    assert_ok(env.fab("deploy:resume=yes"))


@pytest.mark.parametrize("closed", ["pipe", "pty"])
def test_sighup_mid_wave_puts_every_host_back_with_the_terminal_gone(faulty_env, closed):
    env = faulty_env
    old_release, old_commit = env.current("web1"), env.head()
    good_before, before = good_releases(env), env.releases("web1")
    env.commit("NEWS.txt", f"hung up ({closed})\n", "a release whose terminal closes mid-wave")
    touch(env, "web2", "fault-slow-restart")  # the second wave, behind the proxy
    if closed == "pipe":
        process = start_fab(env, "deploy")
        terminal = None
    else:
        # A person's terminal: the live view, on a pty whose other side then closes.
        terminal, side = pty.openpty()
        process = subprocess.Popen(
            [FAB, env.name, "deploy"], stdin=side, stdout=side, stderr=side, cwd=PROJECT_ROOT,
            env={**os.environ, "CI": "", "TERM": "xterm", "DEPLOY_ENVIRONMENTS": env.directory})
        os.close(side)
        drain(terminal)
    try:
        wait_for(marker(env, "web2", "fault-restart-started"), "the second wave to restart")
        # The terminal goes: nobody reads the output any more, and the deployer is hung up on.
        if terminal is None:
            process.stdout.close()
            process.stderr.close()
        else:
            os.close(terminal)
        process.send_signal(signal.SIGHUP)
        time.sleep(0.5)
    finally:
        os.remove(marker(env, "web2", "fault-slow-restart"))
    assert process.wait(timeout=240) == 130

    assert_fleet_on(env, old_release, old_commit, good_before)
    assert drained_in_proxy(env) == []  # every host back in the proxies' rotation
    made = new_releases(env, before)
    assert [env.meta("web1", name)["status"] for name in made] == ["interrupted"]
    newest = last_deploy(env)
    assert (newest["task"], newest["outcome"], newest["exit_code"]) == ("deploy", "interrupted", 130)


def test_unlock_stops_nothing_but_the_lock_holder_whatever_the_owner_record_says(deploy_env):
    env = deploy_env
    assert_ok(env.fab("deploy"))
    # A deploy holds the lock (its lock script, over ssh as a deployer runs it) ...
    holder = subprocess.Popen(
        ["ssh", "-F", env.spec.ssh_config, "web1", shell.step_command(shell.remote_script("lock"), lock.lock_arguments(
            Paths(env.code_root("web1")), {"owner": "someone@elsewhere", "task": "deploy"}))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    home = os.stat(env.spec.home("web1"))
    # ... and the app, as the deploy user, points the owner record at one of its own processes.
    bystander = subprocess.Popen(["sleep", "300"], user=home.st_uid, group=home.st_gid, extra_groups=[])
    try:
        assert holder.stdout.readline().startswith("acquired ")
        owner_file = os.path.join(env.code_root("web1"), ".deploy.lock.owner")
        with open(owner_file) as handle:
            record = json.loads(handle.read())
        with open(owner_file, "w") as handle:
            handle.write(json.dumps({**record, "lock_pid": bystander.pid}))

        refused = env.fab("unlock")
        assert_one_line_error(refused, f"names pid {bystander.pid}, which does not hold the lock: nothing was stopped")
        assert bystander.poll() is None and holder.poll() is None  # both alive
        assert env.fab("deploy").returncode == 3  # the lock is still held
        assert not os.path.exists(os.path.join(env.code_root("web1"), "log", "lock-breaks.log"))
    finally:
        bystander.kill()
        bystander.wait()
        holder.kill()
        holder.wait()


def test_a_sigkilled_holders_claim_is_taken_over_at_once_by_another_controller(faulty_env):
    env = faulty_env
    old_release = env.current("web1")
    new_commit = env.commit("NEWS.txt", "killed mid-rollout\n", "a release whose controller is killed")
    touch(env, "web1", "fault-slow-restart")  # the canary, drained, restarting
    laptop = subprocess.Popen(
        [FAB, env.name, "deploy"], cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "CI": "true", "DEPLOY_ENVIRONMENTS": env.directory, "FAB_CONTROLLER": "laptop"})
    try:
        wait_for(marker(env, "web1", "fault-restart-started"), "the canary's restart")
        laptop.kill()
        laptop.wait()
    finally:
        os.remove(marker(env, "web1", "fault-restart-started"))
        os.remove(marker(env, "web1", "fault-slow-restart"))
    assert lock_is_free(env)  # the kernel freed its host lock at once ...
    store = open_store(os.environ["FAB_HISTORY_URL"], env.name)
    claim = store.claim(env.name)
    assert claim["controller"] == "laptop"  # ... its claim is still there, heartbeat fresh
    # (A claim is asked about its host lock only once it is a few seconds old: see claims.LOCK_GRACE_SECONDS.)
    time.sleep(max(0.0, claim["claimed_at"] + claims.LOCK_GRACE_SECONDS - time.time()))

    other = env.fab("deploy", environ={"FAB_CONTROLLER": "ci-runner"})
    assert_ok(other)
    assert "took over the stale claim of" in other.stdout
    assert f"(deploy, pid {laptop.pid} on laptop, since " in other.stdout  # named as every holder is
    assert "it no longer holds the deploy lock on the hosts" in other.stdout
    audit = store.claim_audit(env.name)[-1]
    assert (audit["action"], audit["controller"]) == ("taken_over", "laptop")
    assert "no longer holds the deploy lock" in audit["reason"]
    release = env.current("web1")
    assert release != old_release
    assert {env.current(host) for host in env.hosts} == {release}
    assert env.version("web1")["commit"] == new_commit
    assert drained_in_proxy(env) == []
