"""Hooks run on the deployer's machine with the deploy's context; failures are one line."""
import os
import time

import pytest

from conftest import assert_ok

from fab import hooks


def context():
    return hooks.HookContext(environment="production", task="deploy", performer="me@laptop",
                             hosts=("web1", "web2"), release="2026-01-02_03.04.05", commit="a" * 40,
                             ref="main", previous_release="2026-01-01_00.00.00")


def test_a_hook_gets_the_deploys_context_as_environment_variables(tmp_path):
    out = tmp_path / "seen"
    hooks.run_one(f"env | grep ^DEPLOY_ | sort > {out}", {**os.environ, **context().variables("after_swap")},
                  str(tmp_path), 10, "after_swap")
    seen = dict(line.split("=", 1) for line in out.read_text().splitlines())
    assert seen == {
        "DEPLOY_ENVIRONMENT": "production", "DEPLOY_TASK": "deploy", "DEPLOY_HOOK": "after_swap",
        "DEPLOY_RELEASE": "2026-01-02_03.04.05", "DEPLOY_COMMIT": "a" * 40, "DEPLOY_REF": "main",
        "DEPLOY_PREVIOUS_RELEASE": "2026-01-01_00.00.00", "DEPLOY_PERFORMER": "me@laptop",
        "DEPLOY_HOSTS": "web1,web2", "DEPLOY_MESSAGE": "",
    }


def test_a_failing_hook_says_which_and_its_last_line(tmp_path):
    with pytest.raises(hooks.HookFailed, match=r"hook before_swap \(echo no; exit 3\) exited 3: no"):
        hooks.run_one("echo no; exit 3", dict(os.environ), str(tmp_path), 10, "before_swap")


def test_a_hook_past_its_time_limit_is_stopped_with_its_children(tmp_path):
    pid_file = tmp_path / "child.pid"
    with pytest.raises(hooks.HookFailed, match="took longer than 1s: stopped"):
        hooks.run_one(f"sleep 300 & echo $! > {pid_file}; wait", dict(os.environ), str(tmp_path), 1, "after_build")
    child = int(pid_file.read_text())
    for _ in range(100):  # the group was signalled; wait (bounded) for the child to be reaped
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        with open(f"/proc/{child}/stat") as handle:
            if handle.read().split(") ")[-1].split()[0] == "Z":
                break
        time.sleep(0.05)
    else:
        pytest.fail("the hook's child process is still running")


def test_a_deploy_runs_every_hook_in_order_before_migrate_before_the_migration(deploy_env):
    env = deploy_env
    heard = os.path.join(env.directory, "hooks-heard.txt")
    migrated = os.path.join(env.spec.home("web1"), "migrated")
    # Each hook says its name and whether the migration (a file on web1) has run yet.
    say = f'echo "$DEPLOY_HOOK $(test -e {migrated} && echo migrated || echo not-migrated)" >> {heard}'
    points = ("before_build", "after_build", "before_migrate", "before_swap", "after_swap")
    env.write_config(hooks={point: [say] for point in points},
                     migrate={"command": "touch ~/migrated", "role": "webworkers"})
    try:
        assert_ok(env.fab("deploy"))
        with open(heard) as handle:
            assert handle.read().splitlines() == [
                "before_build not-migrated", "after_build not-migrated", "before_migrate not-migrated",
                "before_swap migrated", "after_swap migrated"]
        # A failing before_migrate stops the deploy before the migration: nothing migrates.
        env.remote("web1", "rm -f ~/migrated")
        env.write_config(hooks={"before_migrate": ["echo not approved; exit 1"]},
                         migrate={"command": "touch ~/migrated", "role": "webworkers"})
        env.commit("NEWS.txt", "needs approval\n", "a change that needs approval")
        result = env.fab("deploy")
        assert result.returncode != 0 and "hook before_migrate" in result.stderr
        assert not os.path.exists(migrated)
    finally:
        env.remote("web1", "rm -f ~/migrated", check=False)
