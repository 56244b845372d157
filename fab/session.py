"""What every task shares: the selected environment, one-line errors, the locked fleet.

Kept out of fabfile.py so that file reads as the story of each task.
"""
import contextlib
import functools
import time

from invoke.exceptions import Exit

from fab import events, history
from fab.config import load_environment
from fab.errors import ConfigError, DeployError, PreflightError, UsageError
from fab.hosts import Fleet, describe_error
from fab.identity import controller_name, who_am_i  # noqa: F401 - who_am_i: tasks import it from here
from fab.operations import lock
from fab.events import stream
from fab.report import PlainLines

_CONFIG_KEY = "deploy_environment"


def select_environment(c, name):
    """Load and validate environment `name` for the tasks that follow on the command line."""
    c.config[_CONFIG_KEY] = load_environment(name)


def selected_environment_or_none(c):
    return c.config.get(_CONFIG_KEY)


def selected_environment(c):
    env = selected_environment_or_none(c)
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


def reported(task_body):
    """A task whose run is published on the event stream, start to finish.

    Subscribes the outputs, publishes TaskStarted and TaskFinished (succeeded,
    failed, refused or interrupted, with the exit code), and turns a user's
    error into one line on stderr.
    """

    @functools.wraps(task_body)
    def wrapper(c, *args, **kwargs):
        env = selected_environment_or_none(c)
        ensure_outputs(env)
        started = time.monotonic()
        stream.publish(events.TaskStarted(
            task_body.__name__, env.name if env else "", dict(kwargs), who_am_i(),
            controller_name(), tuple(env.hosts) if env else ()))

        def finished(outcome, code, error=""):
            stream.publish(events.TaskFinished(outcome, code, error, time.monotonic() - started))

        try:
            result = task_body(c, *args, **kwargs)
        except DeployError as error:
            outcome = events.REFUSED if isinstance(error, (UsageError, PreflightError, ConfigError)) else events.FAILED
            finished(outcome, error.exit_code, str(error))
            raise Exit(f"error: {error}", code=error.exit_code) from None
        except Exit as exit_:
            finished(events.SUCCEEDED if not exit_.code else events.FAILED, exit_.code or 0)
            raise
        except KeyboardInterrupt:
            finished(events.INTERRUPTED, 130, "interrupted")
            raise Exit("error: interrupted", code=130) from None
        except BaseException as error:
            finished(events.FAILED, 1, f"internal error: {type(error).__name__}: {error}")
            raise
        finished(events.SUCCEEDED, 0)
        return result

    return wrapper


_outputs = []
_recorders = {}


def ensure_outputs(env=None):
    """Subscribe this process's outputs to the stream, once, and a history recorder
    for each environment a task runs on."""
    if not _outputs:
        _outputs.append(stream.subscribe(PlainLines()))
    if env is not None and env.name not in _recorders:
        _recorders[env.name] = stream.subscribe(history.recorder(env))


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
    """Hold the environment's claim in the history store, then its deploy lock on the
    hosts (the last line of defence), for the duration."""
    with history.claimed(fleet.env, task, who_am_i(), controller_name()):
        with host_locked(fleet, task):
            yield


@contextlib.contextmanager
def host_locked(fleet, task):
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
            stream.warning(f"could not release the lock: {error}")
