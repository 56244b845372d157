"""The application's own build commands and the pre-swap checks.

Runs on: all roles, in the release directory, with the release's virtualenv
first on PATH. Build commands run once per release (resume skips them).
"""
from fab import shell
from fab.operations import ALL_ROLES
from fab.operations.release import once

ROLES = ALL_ROLES

_WITH_VENV = 'export PATH="$PWD/python_env/bin:$PATH" VIRTUAL_ENV="$PWD/python_env"'


def run_build_commands(host, release_name):
    commands = host.env.build_commands
    if not commands:
        return "no build commands"
    body = "\n".join([_WITH_VENV, *commands, f"echo '{len(commands)} build command(s) ran'"])
    return once(host, release_name, "build", body)


def preswap_check(host, release_name, programs):
    """Check the release can run: its python starts and its service configs exist."""
    paths = host.paths
    confs = " ".join(
        shell.quote(f"{paths.release_services(release_name)}/{program}.conf") for program in programs
    )
    host.run(
        f"""
set -e
cd {shell.quote(paths.release(release_name))}
python_env/bin/python -c 'import sys' || {{ echo "python_env does not run" >&2; exit 1; }}
for conf in {confs}; do [ -f "$conf" ] || {{ echo "missing $conf" >&2; exit 1; }}; done
{_WITH_VENV}
{chr(10).join(host.env.checks)}
"""
    )
    return "ready"
