"""The errors a user can cause, each reported as one line and a non-zero exit.

Anything else that escapes a task is an internal bug and keeps its traceback.
"""


class DeployError(Exception):
    """Base for every error the task layer turns into one line and exit code."""

    exit_code = 1


class UsageError(DeployError):
    """Bad command line: unknown task or environment, malformed argument."""

    exit_code = 2


class ConfigError(DeployError):
    """An environment file is missing, malformed or invalid."""

    exit_code = 2


class PreflightError(DeployError):
    """Something found before the first change to any host (bad branch, lock held)."""


class LockHeld(PreflightError):
    """Another deploy holds the environment's lock."""

    exit_code = 3


class FleetInconsistent(DeployError):
    """A deploy failed after changing hosts and could not put every host back: the
    hosts now differ (see `fab <env> releases`). Distinct from a failure that
    left the fleet as it was (exit 1), so CI can page someone."""

    exit_code = 4


class StepFailed(DeployError):
    """A step failed on one or more hosts; `failures` maps host -> detail."""

    def __init__(self, step, failures):
        self.step = step
        self.failures = dict(failures)
        hosts = ", ".join(
            f"{host} ({detail})" for host, detail in sorted(self.failures.items())
        )
        super().__init__(f"step '{step}' failed on {hosts}")


class RemoteCommandFailed(DeployError):
    """A command exited non-zero on one host; the message is its last output line.

    Raised inside one host's step; `Fleet.each` gathers these into StepFailed.
    """

    def __init__(self, message, output="", stdout=""):
        super().__init__(message)
        self.output = output
        self.stdout = stdout  # what it printed on stdout before it stopped, if anything


class ConnectionLost(RemoteCommandFailed):
    """The SSH connection to a host dropped while a step ran on it."""


class Paused(DeployError):
    """A deploy stopped, as asked (rollout.pause), with its release live on the canary
    only; `deploy:resume=yes` continues it, `rollback` gives it up. Not a failure,
    not a success either: CI gets its own exit code."""

    exit_code = 5


class Interrupted(DeployError):
    """SIGINT, SIGTERM or SIGHUP reached the deployer."""

    exit_code = 130


class LockLost(Interrupted):
    """The task's deploy lock ended under it (`unlock`, its connection lost): it changes
    nothing more, puts back what it swapped as an interrupt does, and is recorded as interrupted."""
