"""fab/remote/in_release.sh run here, as the build, predeploy, migrate and check
steps run it on a host (the steps fab.operations.build makes, composed and run with
the local bash): the environment's commands run in order in the release, with its
virtualenv first on PATH and the secrets exported, and the first failure stops them."""
import os
import subprocess
import types

import pytest

from fab import shell, steps
from fab.operations import build
from fab.operations.shared import secrets_file_text
from fab.paths import Paths

NAME = "2026-12-01_00.00.00"


def host_for(tmp_path, secrets=None, checks=(), runs_app=True):
    paths = Paths(str(tmp_path / "root"))
    release = paths.release(NAME)
    os.makedirs(os.path.join(release, "python_env", "bin"))
    os.makedirs(os.path.join(release, ".release", "steps"))
    os.symlink("/usr/bin/python3", os.path.join(release, "python_env", "bin", "python"))
    if secrets:
        os.makedirs(paths.shared)
        with open(paths.secrets_file, "w") as handle:
            handle.write(secrets_file_text(secrets))
    env = types.SimpleNamespace(secrets=bool(secrets), checks=list(checks), build_commands=[],
                                topology=types.SimpleNamespace(runs_app=lambda name: runs_app))
    return types.SimpleNamespace(name="web1", env=env, paths=paths)


def run(step):
    result = subprocess.run(["bash", "-c", steps.compose([step])], capture_output=True, text=True, timeout=30)
    done, failed = steps.parse([step], result.stdout)
    return result, (done[0].note if done else None), failed


def test_commands_run_in_order_in_the_release_with_its_venv_and_secrets(tmp_path):
    host = host_for(tmp_path, secrets={"API_KEY": "it's $ecret"})
    commands = ['echo "$PWD" > where', "command -v python > which", 'printf %s "$API_KEY" > secret',
                "step=two", 'echo "$step" >> where']
    result, note, failed = run(build.release_commands(host, NAME, "build", commands))
    assert result.returncode == 0 and failed is None, result.stderr
    assert note == "5 build command(s) ran"
    release = host.paths.release(NAME)
    with open(os.path.join(release, "where")) as where, open(os.path.join(release, "which")) as which, \
            open(os.path.join(release, "secret")) as secret:
        assert where.read().split() == [release, "two"]
        assert which.read().strip() == os.path.join(release, "python_env", "bin", "python")
        assert secret.read() == "it's $ecret"
    assert run(build.release_commands(host, NAME, "build", commands))[1] == "skipped (already done)"


def test_the_first_failing_command_stops_the_rest_with_its_own_output(tmp_path):
    host = host_for(tmp_path)
    commands = ["echo building", "echo 'the real reason' >&2; false", "touch never"]
    result, _, failed = run(build.release_commands(host, NAME, "build", commands))
    assert result.returncode == 1 and failed == "build"
    assert result.stderr.strip().splitlines() == ["building", "the real reason"]
    assert not os.path.exists(os.path.join(host.paths.release(NAME), "never"))


def test_no_commands_is_said(tmp_path):
    assert run(build.release_commands(host_for(tmp_path), NAME, "migrate", []))[1] == "no migrate commands"


@pytest.mark.parametrize("programs, checks, error", [
    (["prod-web"], [], None),
    (["prod-web", "prod-worker"], [], "missing {services}/prod-worker.conf"),
    (["prod-web"], ["test -f services/supervisor/prod-web.conf", "python -c 'import sys; sys.exit(3)'"], ""),
])
def test_the_check_needs_a_running_python_every_config_and_the_checks(tmp_path, programs, checks, error):
    host = host_for(tmp_path, checks=checks)
    services = host.paths.release_services(NAME)
    os.makedirs(services)
    open(os.path.join(services, "prod-web.conf"), "w").close()
    result, note, failed = run(build.preswap_check(host, NAME, programs))
    if error is None:
        assert result.returncode == 0 and note == "ready", result.stderr
    else:
        assert failed == "check" and result.returncode != 0
        assert result.stderr.strip() == error.format(services=services)


def test_a_release_whose_python_does_not_run_fails_its_check(tmp_path):
    host = host_for(tmp_path)
    os.remove(os.path.join(host.paths.release(NAME), "python_env", "bin", "python"))
    result, _, failed = run(build.preswap_check(host, NAME, []))
    assert failed == "check" and result.stderr.strip().splitlines()[-1] == "python_env does not run"


def test_a_host_that_runs_no_app_code_checks_only_its_configs(tmp_path):
    host = host_for(tmp_path, checks=["false"], runs_app=False)
    os.remove(os.path.join(host.paths.release(NAME), "python_env", "bin", "python"))  # it has no venv
    services = host.paths.release_services(NAME)
    os.makedirs(services)
    open(os.path.join(services, "prod-proxy.conf"), "w").close()
    result, note, failed = run(build.preswap_check(host, NAME, ["prod-proxy"]))
    assert result.returncode == 0 and note == "ready", result.stderr
    result, _, failed = run(build.preswap_check(host, NAME, ["prod-gone"]))
    assert failed == "check" and result.stderr.strip() == f"missing {services}/prod-gone.conf"


def test_the_manage_command_keeps_its_exit_code(tmp_path):
    host = host_for(tmp_path)
    args = build.in_release(host, "run", host.paths.release(NAME), "python -c 'import sys; sys.exit(7)'")
    assert subprocess.run(["bash", "-c", shell.remote_script("in_release"), "in_release", *args]).returncode == 7


def test_the_check_starts_python_again_only_for_another_interpreter(tmp_path):
    """Starting python costs every host ~10 ms per deploy: the check starts it once per
    interpreter file (inode, change time), and again when it is replaced."""
    host = host_for(tmp_path)
    starts = tmp_path / "starts"
    python = os.path.join(host.paths.release(NAME), "python_env", "bin", "python")

    def interpreter(exit_code):
        os.remove(python)
        with open(python, "w") as handle:
            handle.write(f"#!/bin/bash\necho started >> {starts}\nexit {exit_code}\n")
        os.chmod(python, 0o755)

    interpreter(0)
    for _ in range(3):
        result, note, _ = run(build.preswap_check(host, NAME, []))
        assert note == "ready", result.stderr
    assert starts.read_text().splitlines() == ["started"]
    interpreter(1)  # a new file: an upgrade, or a reinstall that broke it
    result, _, failed = run(build.preswap_check(host, NAME, []))
    assert failed == "check" and result.stderr.strip().splitlines()[-1] == "python_env does not run"
    assert starts.read_text().splitlines() == ["started", "started"]
