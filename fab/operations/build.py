"""The application's own commands in a new release: build commands, pre-deploy
commands, migrations, and the pre-swap checks.

Runs on: all roles (build, checks), or the hosts of the role `predeploy` and
`migrate` name; in the release directory, with the release's virtualenv first
on PATH and the environment's secrets exported. Each runs once per release
(resume, and a deploy of a release preindex_views prepared, skip it); one that
outlives its time limit is stopped on the host and fails its step.
"""
from fab import shell
from fab.operations import ALL_ROLES
from fab.operations.release import once
from fab.paths import VENV_LINK, VENV_STARTED
from fab.steps import Step

ROLES = ALL_ROLES


def in_release(host, mode, release_dir, *args, venv=True):
    """The arguments of fab/remote/in_release.sh (`run` or `check`), which runs the
    environment's commands in `release_dir` with its virtualenv first on PATH (unless
    not `venv`) and the environment's secrets exported."""
    return [mode, release_dir, host.paths.secrets_file if host.env.secrets else "", VENV_LINK if venv else "", *args]


def build_commands(host, release_name):
    """Step: the environment's build commands in the release (once per release)."""
    return release_commands(host, release_name, "build", host.env.build_commands)


def release_commands(host, release_name, step, commands):
    """Step `step`: run `commands` in the release (once per release)."""
    if not commands:
        return Step(step, f"echo 'no {step} commands'")
    body = shell.step_script("in_release", *in_release(host, "run", host.paths.release(release_name), *commands))
    return once(host, release_name, step, body, then=lambda _: f"{len(commands)} {step} command(s) ran")


def run_release_commands(host, release_name, step, commands, timeout=None):
    """Run `release_commands(...)` alone, stopped after `timeout` seconds (default: the
    environment's command_timeout). Returns its note, or "skipped (already done)"."""
    if not commands:
        return f"no {step} commands"
    return host.run_steps([release_commands(host, release_name, step, commands)], timeout=timeout)[0].note


def preswap_check(host, release_name, programs):
    """Step: check the release can run: its service configs exist and, where the host
    runs app code, its python starts and the environment's checks pass."""
    paths = host.paths
    app = host.env.topology.runs_app(host.name)
    confs = [f"{paths.release_services(release_name)}/{program}.conf" for program in programs]
    args = in_release(host, "check", paths.release(release_name), VENV_STARTED, len(confs), *confs,
                      *(host.env.checks if app else ()), venv=app)
    return Step("check", shell.step_script("in_release", *args))
