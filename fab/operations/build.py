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
from fab.operations.release import once, run_once
from fab.paths import VENV_LINK
from fab.steps import Step

ROLES = ALL_ROLES


def in_release_environment(host):
    """Shell lines (run in a release directory) that put its virtualenv first on PATH
    and export the environment's secrets."""
    lines = [f'export PATH="$PWD/{VENV_LINK}/bin:$PATH" VIRTUAL_ENV="$PWD/{VENV_LINK}"']
    if host.env.secrets:
        lines.append(f"set -a; . {shell.quote(host.paths.secrets_file)}; set +a")
    return "\n".join(lines)


def build_commands(host, release_name):
    """Step: the environment's build commands in the release (once per release)."""
    return release_commands(host, release_name, "build", host.env.build_commands)


def release_commands(host, release_name, step, commands):
    """Step `step`: run `commands` in the release (once per release)."""
    if not commands:
        return Step(step, f"echo 'no {step} commands'")
    body = "\n".join([in_release_environment(host), *commands,
                      f"echo '{len(commands)} {step} command(s) ran'"])
    return once(host, release_name, step, body)


def run_release_commands(host, release_name, step, commands, timeout=None):
    """Run `release_commands(...)` alone, within `timeout` seconds."""
    if not commands:
        return f"no {step} commands"
    return run_once(host, release_name, step, release_commands(host, release_name, step, commands).body, timeout)


def preswap_check(host, release_name, programs):
    """Step: check the release can run: its python starts and its service configs exist."""
    paths = host.paths
    confs = " ".join(
        shell.quote(paths.release_service_config(release_name, "supervisor", program)) for program in programs
    )
    return Step("check", f"""
{shell.quote(VENV_LINK)}/bin/python -c 'import sys' || {{ echo {shell.quote(VENV_LINK + " does not run")} >&2; exit 1; }}
for conf in {confs}; do [ -f "$conf" ] || {{ echo "missing $conf" >&2; exit 1; }}; done
{in_release_environment(host)}
{chr(10).join(host.env.checks)}
echo ready
""", cwd=paths.release(release_name))
