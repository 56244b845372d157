"""Running an application management command in the current release.

Runs on: one host of the role the environment's `manage` setting names (or
another host or role, or every host of the role, as the task is asked). The
command's output is streamed as it comes; its exit code is returned.
"""
from fab import shell
from fab.operations.build import in_release_environment

ROLES = "the manage role (one host, or each host of a role)"


def run(host, words):
    """Run `<manage.command> <words...>` in `current`, with its virtualenv on PATH and
    the environment's secrets exported."""
    result = host.execute(
        f"cd {shell.quote(host.paths.current)} || exit 1\n"
        f"{in_release_environment(host)}\n"
        f"{host.env.manage.command} {shell.command(*words)}",
        stream=True,
    )
    return result.exited
