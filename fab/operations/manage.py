"""Running an application management command in the current release.

Runs on: one host of the role the environment's `manage` setting names (or
another host or role, or every host of the role, as the task is asked). The
command's output is streamed as it comes; its exit code is returned.
"""
from fab import shell
from fab.operations.build import in_release

ROLES = "the manage role (one host, or each host of a role)"


def run(host, words):
    """Run `<manage.command> <words...>` in `current`, with its virtualenv on PATH and
    the environment's secrets exported."""
    command = f"{host.env.manage.command} {shell.command(*words)}"
    result = host.execute(shell.remote_script("in_release"), in_release(host, "run", host.paths.current, command),
                          stream=True)
    return result.exited
