"""Hooks: the user's commands around a task's stages, run on the deployer's machine.

As Kamal does, hooks run where the deployer runs (a laptop, a CI job), in the
environment's deploy folder, with the deploy's context as environment variables:
notifying a chat, tagging a release in git, or refusing a deploy is work for the
machine that holds those credentials, not for the servers. (Commands that must
run on the servers are `build_commands`, `predeploy`, `migrate` and the
services' `before`/`after`.)

    DEPLOY_ENVIRONMENT  DEPLOY_TASK  DEPLOY_HOOK  DEPLOY_RELEASE  DEPLOY_COMMIT
    DEPLOY_REF  DEPLOY_PREVIOUS_RELEASE  DEPLOY_PERFORMER  DEPLOY_HOSTS (comma-separated)
    DEPLOY_MESSAGE (why, as the performer said it; may be empty)
    DEPLOY_ERROR  DEPLOY_FAILED_HOSTS (comma-separated)  (on_failure only)

A hook that fails (non-zero, or longer than `hooks.timeout`) raises HookFailed;
the task decides what that means (before the swap it stops the deploy).
`on_failure` hooks run from the task runner (fab.runner) when a deploy,
rollback or hotfix_deploy failed, after its put-back: a failing one is a warning
and never hides the task's own error.
"""
import dataclasses
import os
import signal
import subprocess

from fab.errors import DeployError
from fab.events import stream


class HookFailed(DeployError):
    """A hook command failed or ran out of time."""


@dataclasses.dataclass(frozen=True)
class HookContext:
    """What hooks are told about the task they run in."""

    environment: str
    task: str
    performer: str
    hosts: tuple
    release: str = ""
    commit: str = ""
    ref: str = ""
    previous_release: str = ""
    message: str = ""
    error: str = ""  # the failure's one line (on_failure)
    failed_hosts: tuple = ()  # the hosts where a step failed (on_failure)

    def variables(self, point):
        failure = {"DEPLOY_ERROR": self.error or "", "DEPLOY_FAILED_HOSTS": ",".join(self.failed_hosts)}
        return {
            "DEPLOY_ENVIRONMENT": self.environment,
            "DEPLOY_TASK": self.task,
            "DEPLOY_HOOK": point,
            "DEPLOY_RELEASE": self.release or "",
            "DEPLOY_COMMIT": self.commit or "",
            "DEPLOY_REF": self.ref or "",
            "DEPLOY_PREVIOUS_RELEASE": self.previous_release or "",
            "DEPLOY_PERFORMER": self.performer,
            "DEPLOY_HOSTS": ",".join(self.hosts),
            "DEPLOY_MESSAGE": self.message or "",
            **(failure if point == "on_failure" else {}),
        }


def run(env, point, context):
    """Run the environment's `point` hooks (e.g. "before_swap") one after another."""
    commands = env.hooks.commands(point)
    for command in commands:
        stream.stage(f"hook {point}: {command}")
        run_one(command, {**os.environ, **context.variables(point)}, env.folder, env.hooks.timeout, point)


def run_after(env, point, context):
    """Run hooks after a stage that cannot be undone: a failure is a warning, not an error."""
    try:
        run(env, point, context)
    except HookFailed as error:
        stream.warning(f"{error} (the {point.split('_', 1)[1]} itself is done)")


def run_on_failure(env, context):
    """Run the `on_failure` hooks of a task that failed (`context` carries its error
    and failed hosts). Nothing here may hide that failure: a hook that fails, or an
    interrupt meanwhile, is a warning."""
    try:
        run(env, "on_failure", context)
    except DeployError as error:
        stream.warning(f"{error} (the task's own error stands)")


def run_one(command, environ, cwd, timeout, point):
    """Run one hook command in its own process group; its output goes to the event
    stream. Stopped whole on a timeout or an interrupt."""
    process = subprocess.Popen(
        ["/bin/sh", "-c", command], cwd=cwd, env=environ, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(process)
        raise HookFailed(f"hook {point} ({command}) took longer than {timeout:.0f}s: stopped") from None
    except BaseException:
        stop(process)
        raise
    lines = output.strip().splitlines()
    for line in lines:
        stream.note(f"  {line}")
    if process.returncode != 0:
        last = f": {lines[-1]}" if lines else ""
        raise HookFailed(f"hook {point} ({command}) exited {process.returncode}{last}")


def stop(process):
    """End a hook's whole process group and collect it."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
