"""The task runner: which environment the tasks run in, a task's run published on
the event stream with its outputs, signals as interrupts, and a user's error as
one line and an exit code (never a traceback).
"""
import functools
import inspect
import signal
import time

from invoke.exceptions import Exit

from fab import events, history
from fab.errors import ConfigError, DeployError, Interrupted, PreflightError, UsageError
from fab.events import stream
from fab.identity import controller_name, who_am_i
from fab.secrets import mask, safe_to_show

_CONFIG_KEY = "deploy_environment"


def select_environment(c, name):
    """Load and validate environment `name` for the tasks that follow on the command line."""
    from fab.config import load_environment  # pydantic: only once an environment is chosen

    c.config[_CONFIG_KEY] = load_environment(name)


def selected_environment_or_none(c):
    return c.config.get(_CONFIG_KEY)


def selected_environment(c):
    env = selected_environment_or_none(c)
    if env is None:
        from fab.folders import available_environments

        known = ", ".join(available_environments()) or "none found"
        raise UsageError(f"no environment selected: run `fab <env> <task>` (environments: {known})")
    return env


def user_errors(task_body):
    """Turn a DeployError into one line on stderr and its exit code (no traceback)."""

    @functools.wraps(task_body)
    def wrapper(*args, **kwargs):
        try:
            return task_body(*args, **kwargs)
        except DeployError as error:
            raise Exit(f"error: {safe_to_show(error)}", code=error.exit_code) from None

    return wrapper


def reported(task_body):
    """A task whose run is published on the event stream, start to finish.

    Subscribes the task's outputs for its duration (see `task_outputs`),
    publishes TaskStarted and TaskFinished (succeeded, failed, refused or
    interrupted, with the exit code), and turns a user's error into one line on
    stderr. Every reported task takes `json` (`task:json=yes`, `task --json`).
    """

    @functools.wraps(task_body)
    def wrapper(c, *args, json=False, **kwargs):
        env = selected_environment_or_none(c)
        recorded = env if records(task_body.__name__, kwargs) else None
        subscribed = task_outputs(json, recorded)
        started = time.monotonic()
        stream.publish(events.TaskStarted(
            task_body.__name__, env.name if env else "", dict(kwargs), who_am_i(),
            controller_name(), tuple(env.hosts) if env else ()))

        def finished(outcome, code, error=""):
            stream.publish(events.TaskFinished(outcome, code, error, time.monotonic() - started))

        previous_handlers = {sig: signal.signal(sig, raise_interrupted) for sig in INTERRUPTS}
        try:
            result = task_body(c, *args, **kwargs)
        except DeployError as error:
            outcome = (events.INTERRUPTED if isinstance(error, Interrupted) else
                       events.REFUSED if isinstance(error, (UsageError, PreflightError, ConfigError)) else
                       events.FAILED)
            finished(outcome, error.exit_code, mask(error))
            raise Exit(f"error: {safe_to_show(error)}", code=error.exit_code) from None
        except Exit as exit_:
            finished(events.SUCCEEDED if not exit_.code else events.FAILED, exit_.code or 0)
            raise
        except KeyboardInterrupt:
            finished(events.INTERRUPTED, 130, "interrupted")
            raise Exit("error: interrupted", code=130) from None
        except BaseException as error:
            finished(events.FAILED, 1, mask(f"internal error: {type(error).__name__}: {error}"))
            raise
        else:
            finished(events.SUCCEEDED, 0)
        finally:
            for sig, handler in previous_handlers.items():
                signal.signal(sig, handler)
            subscribed.close()
        return result

    # invoke reads a task's flags from its signature: add `json` to every reported task's.
    signature = inspect.signature(task_body)
    wrapper.__signature__ = signature.replace(parameters=[
        *signature.parameters.values(),
        inspect.Parameter("json", inspect.Parameter.KEYWORD_ONLY, default=False)])
    return wrapper


#: SIGHUP too: a closed terminal or a dropped SSH session to a jump box is an interrupt,
#: not the end (the outputs survive it: fab.outputs.streams).
INTERRUPTS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def raise_interrupted(signum, frame):
    """SIGINT, SIGTERM and SIGHUP become Interrupted wherever the task is: each stage
    decides what an interrupt there means (nothing changed, or put every host back)."""
    if signum == signal.SIGHUP:
        # A hang-up often comes more than once (the terminal, then the shell): a
        # second one is no one asking to stop the put-back.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    raise Interrupted(f"interrupted by {signal.Signals(signum).name}")


@user_errors
def task_outputs(json=False, recorded_env=None):
    """Subscribe one task's outputs to the stream: the live view or plain lines, the
    JSON summary if asked (`json=yes` or FAB_JSON), and with `recorded_env` the
    history recorder. Close the returned stack to detach them. Every output for
    people, and where it writes, is chosen in `fab.outputs`."""
    from fab import outputs  # rich: only once a task runs (`fab -l` stays quick)
    from fab.outputs.streams import survive_closed_output

    survive_closed_output()  # for the rest of the process: a closed terminal must not stop a put-back
    stack = outputs.attach(stream, json_requested=json)
    if recorded_env is not None:
        recorder = stream.subscribe(history.recorder(recorded_env))
        stack.callback(stream.unsubscribe, recorder)
    return stack


#: Tasks that only look: their runs are not operations in the history.
NOT_RECORDED = ("releases", "check")


def records(task, arguments):
    """Whether a run of `task` goes into the history (a plan changes nothing: no)."""
    return task not in NOT_RECORDED and not arguments.get("plan")


