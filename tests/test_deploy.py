"""`fab <env> deploy` on a real fleet: what is live where, what the app answers."""
import os
import pathlib
import subprocess
import time
import uuid

from conftest import FAB, PROJECT_ROOT, assert_ok
from fab import sandbox
from fab.outputs.plain import step_notes


def live_release(env):
    """The one release every host's current points to (fails if hosts differ)."""
    currents = {host: env.current(host) for host in env.hosts}
    assert len(set(currents.values())) == 1, currents
    return next(iter(currents.values()))


def test_deploy_puts_the_same_release_live_everywhere(deployed_env):
    # The shared baseline: `fab deploy` of the sample app's head onto hosts with no release.
    env, commit, result = deployed_env.env, deployed_env.commit, deployed_env.result

    release = live_release(env)
    assert release is not None
    assert "deploy finished" in result.stdout
    for host in ("web1", "web2"):
        answer = env.version(host)
        assert answer["commit"] == commit
        assert answer["release"] == os.path.join(env.code_root(host), "releases", release)
    assert env.program_status("pillow1")[f"{env.name}-pillow"] == "RUNNING"
    for host in env.hosts:
        meta = env.meta(host, release)
        assert (meta["status"], meta["commit"]) == ("good", commit)
        with open(os.path.join(env.code_root(host), "current", "REVISION")) as handle:
            assert handle.read().strip() == commit


def test_second_deploy_switches_every_host_and_reuses_the_virtualenv(deploy_env):
    env = deploy_env
    assert_ok(env.fab("deploy"))
    first = live_release(env)
    venv = os.path.realpath(os.path.join(env.code_root("web1"), "releases", first, "python_env"))
    venv_inode = os.stat(venv).st_ino

    new_commit = env.commit("NEWS.txt", "second release\n", "second release")
    result = assert_ok(env.fab("deploy"))

    second = live_release(env)
    assert second != first
    for host in ("web1", "web2"):
        assert env.version(host)["commit"] == new_commit
    # Unchanged requirements: the same venv, untouched, and pip never ran.
    assert "reused venv" in result.stdout and "built venv" not in result.stdout
    second_venv = os.path.realpath(os.path.join(env.code_root("web1"), "releases", second, "python_env"))
    assert second_venv == venv and os.stat(venv).st_ino == venv_inode
    assert env.program_status("pillow1")[f"{env.name}-pillow"] == "RUNNING"


def built_with(output, host):
    """How `host`'s virtualenv step says it got its venv, from a deploy's plain lines."""
    notes = step_notes(output, "virtualenv")
    assert host in notes, f"no virtualenv line for {host}"
    return notes[host]


def test_uv_builds_the_venv_where_the_host_has_it_and_virtualenv_with_pip_elsewhere(deploy_env):
    env = deploy_env
    requirements_path = os.path.join(env.spec.app_workdir, "requirements.txt")
    requirements = pathlib.Path(requirements_path).read_text()
    try:
        # Each host installing from the index (wheels.build: each_host) says which tool
        # built its venv. A uv the hosts do not have: virtualenv + pip, as without the setting.
        env.write_config(uv="no-such-uv", wheels={"build": "each_host"})
        env.commit("requirements.txt", requirements + f"# {uuid.uuid4()}\n", "new venv: no uv on the hosts")
        result = assert_ok(env.fab("deploy"))
        for host in env.hosts:
            assert built_with(result.stdout, host).endswith("with virtualenv + pip"), result.stdout

        env.write_config(uv=os.path.join(sandbox.tools.TOOLS, "bin", "uv"), wheels={"build": "each_host"})
        new_commit = env.commit("requirements.txt", requirements + f"# {uuid.uuid4()}\n", "new venv: uv")
        result = assert_ok(env.fab("deploy"))
        for host in env.hosts:
            assert built_with(result.stdout, host).endswith("with uv"), result.stdout
        for host in ("web1", "web2"):  # the app runs from the uv-built venv
            assert env.version(host)["commit"] == new_commit
    finally:
        env.commit("requirements.txt", requirements, "requirements as they were")


def test_a_host_that_cannot_install_requirements_changes_no_host(deploy_env):
    env = deploy_env
    old_commit = env.head()
    assert_ok(env.fab("deploy"))
    before = live_release(env)

    # web2 alone cannot satisfy the requirements (a pip constraint only it has).
    env.remote("web2", "mkdir -p ~/.config/pip && printf 'gunicorn==0.0.1\\n' > ~/bad-constraints.txt"
               " && printf '[install]\\nconstraint = %s\\n' ~/bad-constraints.txt > ~/.config/pip/pip.conf")
    with open(os.path.join(env.spec.app_workdir, "requirements.txt")) as handle:
        requirements = handle.read()
    env.commit("requirements.txt", requirements + "# needs a new venv\n", "touch requirements")
    result = env.fab("deploy")

    assert result.returncode != 0
    error = result.stderr.strip().splitlines()[-1]
    assert "virtualenv" in error and "web2" in error and "web1" not in error
    assert "Traceback" not in result.stderr
    assert live_release(env) == before
    for host in ("web1", "web2"):
        assert env.version(host)["commit"] == old_commit
    failed = [r for r in env.releases("web1") if r != before]
    assert failed and env.meta("web1", failed[-1])["status"] == "failed"
    # The lock was released: once web2 is fixed, the next deploy goes through.
    env.remote("web2", "rm -rf ~/.config/pip")
    assert_ok(env.fab("deploy"))


def test_two_deploys_started_together_exactly_one_runs_every_time(deploy_env):
    env = deploy_env
    # Code and swap only: quick, so the race is tried often. Whichever deploy wins holds
    # the lock in a pre-swap check until the test lets it go: on a loaded machine one
    # process may start seconds after the other, and must still find the lock held.
    release = pathlib.Path(f"/tmp/fab-test-race-{uuid.uuid4().hex}")  # the hosts' users can see /tmp
    env.write_config(services={}, checks=[
        f"for i in $(seq 1200); do [ -e {release} ] && exit 0; sleep 0.05; done; exit 1"])
    run_env = {**os.environ, "CI": "true", "DEPLOY_ENVIRONMENTS": env.directory}
    for attempt in range(8):
        before = set(env.releases("web1"))
        procs = [
            subprocess.Popen([FAB, env.name, "deploy"], cwd=PROJECT_ROOT, env=run_env,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        # One of them ends first: refused (or, were the lock broken, nothing ends until
        # the check gives up, bounded, and both outcomes show it).
        deadline = time.monotonic() + 60
        while all(p.poll() is None for p in procs) and time.monotonic() < deadline:
            time.sleep(0.05)
        release.touch()
        outcomes = [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in procs]
        release.unlink()  # (a check still waiting has seen it: its deploy has ended)
        codes = sorted(code for code, _, _ in outcomes)
        assert codes == [0, 3], (attempt, outcomes)
        loser = next(err for code, _, err in outcomes if code == 3)
        assert "is locked by" in loser and "deploy" in loser
        assert len(set(env.releases("web1")) - before) == 1  # the loser created nothing
        assert live_release(env) is not None


def test_a_hung_lock_holder_is_named_and_can_be_stopped_with_an_audit_line(deploy_env):
    env = deploy_env
    assert_ok(env.fab("deploy"))
    # A deploy on another machine that hangs while it holds the lock (its
    # connection still open): the lock script, run over ssh as a deployer runs it.
    record = {"owner": "someone@elsewhere", "machine": "elsewhere", "pid": 4242, "task": "deploy",
              "since": "2026-01-01T00:00:00+00:00"}
    with env.lock_held_by_another(record) as holder:
        refused = env.fab("deploy")
        assert refused.returncode == 3
        assert "locked by someone@elsewhere (deploy, pid 4242 on elsewhere" in refused.stderr

        broken = assert_ok(env.fab("unlock"))
        assert "stopped the lock holder someone@elsewhere" in broken.stdout
        assert holder.wait(timeout=30) is not None  # its remote side is gone
    with open(os.path.join(env.code_root("web1"), "log", "lock-breaks.log")) as handle:
        audit = handle.read()
    assert "lock broken by" in audit and '"owner": "someone@elsewhere"' in audit
    assert_ok(env.fab("deploy"))
    assert "was not locked" in assert_ok(env.fab("unlock")).stdout
