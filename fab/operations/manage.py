"""Running an application management command in the current release.

Runs on: one host of the role the environment's `manage` setting names. The
command's output is streamed as it comes; its exit code is returned.
"""
from fab import shell

ROLES = "the manage role (one host)"


def run(host, words):
    """Run `<manage.command> <words...>` in `current`, with its virtualenv on PATH."""
    paths = host.paths
    result = host.execute(
        f"cd {shell.quote(paths.current)} && "
        f'export PATH="$PWD/python_env/bin:$PATH" VIRTUAL_ENV="$PWD/python_env" && '
        f"{host.env.manage.command} {shell.command(*words)}",
        stream=True,
    )
    return result.exited
