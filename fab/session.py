"""What every task shares: the selected environment, one-line errors, the locked fleet.

Kept out of fabfile.py so that file reads as the story of each task.
"""
import contextlib
import functools

from invoke.exceptions import Exit

from fab.config import load_environment
from fab.errors import DeployError, UsageError
from fab.hosts import Fleet, describe_error
from fab.operations import lock
from fab.report import reporter

_CONFIG_KEY = "deploy_environment"


def select_environment(c, name):
    """Load and validate environment `name` for the tasks that follow on the command line."""
    c.config[_CONFIG_KEY] = load_environment(name)


def selected_environment(c):
    env = c.config.get(_CONFIG_KEY)
    if env is None:
        raise UsageError("no environment selected: run `fab <env> <task>`, e.g. `fab sandbox deploy`")
    return env


def user_errors(task_body):
    """Turn a DeployError into one line on stderr and its exit code (no traceback)."""

    @functools.wraps(task_body)
    def wrapper(*args, **kwargs):
        try:
            return task_body(*args, **kwargs)
        except DeployError as error:
            raise Exit(f"error: {error}", code=error.exit_code) from None

    return wrapper


@contextlib.contextmanager
def open_fleet(env, hosts=None):
    """Connections to the environment's hosts, closed on the way out."""
    try:
        fleet = Fleet.open(env, hosts)
    except DeployError:
        raise
    except Exception as error:  # noqa: BLE001 - a bad ssh_config is a user error
        message = describe_error(error)
        if message is None:
            raise
        raise DeployError(message) from None
    try:
        yield fleet
    finally:
        fleet.close()


@contextlib.contextmanager
def locked(fleet, task):
    """Hold the environment's deploy lock (on its first host) for the duration."""
    lock_host = fleet[fleet.env.hosts[0]]
    record = lock.owner_record(task)
    fleet.each("lock", lambda host: lock.acquire(host, record) and "acquired", hosts=[lock_host])
    try:
        yield
    finally:
        try:
            fleet.each("unlock", lambda host: lock.release(host, record) or "released", hosts=[lock_host])
        except DeployError as error:
            reporter.line(f"warning: could not release the lock: {error}")
