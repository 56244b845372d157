"""The task runner: which environment the tasks run in, a task's run published on
the event stream with its outputs, signals as interrupts, and a user's error as
one line and an exit code (never a traceback).
"""
import dataclasses
import functools
import inspect
import os
import signal
import sys
import time

from invoke.exceptions import Exit

from fab import events, history, hooks, notify, precedence
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
        raise UsageError("no environment selected: run `fab <env> <task>`, e.g. `fab sandbox deploy`")
    return env


@dataclasses.dataclass
class CommandLine:
    """What the command line names, read before invoke parses it (fab.entry): for an
    error found before its task runs. One command line per process."""

    environment: str = ""
    task: str = ""
    json: bool = False  # json=yes (or --json) given to a task


command_line = CommandLine()


def user_errors(task_body):
    """Turn a DeployError into one line on stderr and its exit code (no traceback), and,
    when the command line asked for JSON, into its JSON document too (`refused_in_json`)."""

    @functools.wraps(task_body)
    def wrapper(*args, **kwargs):
        try:
            return task_body(*args, **kwargs)
        except DeployError as error:
            refused_in_json(error)
            raise Exit(f"error: {safe_to_show(error)}", code=error.exit_code) from None

    return wrapper


def refused_in_json(error):
    """If the command line asked for a JSON summary (json=yes, FAB_JSON), write the one
    document of a task refused before it began (an unknown task, a bad argument or
    environment file, a bad FAB_* setting), so that every exit gives one."""
    from fab.outputs.summary import JsonSummary

    target = precedence.json_summary_target(os.environ, command_line.json)
    if target is None:
        return
    summary = JsonSummary(sys.stdout if target == precedence.STDOUT else target)
    try:
        summary(events.TaskStarted(command_line.task, command_line.environment, {}, who_am_i(), controller_name()))
        summary(events.TaskFinished(events.REFUSED, error.exit_code, safe_to_show(error)))
    except OSError:
        pass  # FAB_JSON names a place that cannot be written: the error line says what is wrong


def reported(task_body):
    """A task whose run is published on the event stream, start to finish.

    Subscribes the task's outputs for its duration (see `task_outputs`),
    publishes TaskStarted and TaskFinished (succeeded, failed, refused or
    interrupted, with the exit code), and turns a user's error into one line on
    stderr. A deploy, rollback or hotfix_deploy is also watched (fab.notify):
    before its TaskFinished its webhooks are told how it ended and, if it failed
    (after its put-back), its `on_failure` hooks run. Every reported task takes `json` (`task:json=yes`, `task --json`).
    """

    @functools.wraps(task_body)
    def wrapper(c, *args, json=False, **kwargs):
        env = selected_environment_or_none(c)
        recorded = env if records(task_body.__name__, kwargs) else None
        subscribed = task_outputs(json, recorded)
        watch = notify.watch(env, task_body.__name__, kwargs)
        if watch:
            stream.subscribe(watch)
            subscribed.callback(stream.unsubscribe, watch)
            subscribed.callback(watch.close)
        started = time.monotonic()
        stream.publish(events.TaskStarted(
            task_body.__name__, env.name if env else "", dict(kwargs), who_am_i(),
            controller_name(), tuple(env.hosts) if env else ()))

        def finished(outcome, code, error=""):
            seconds = time.monotonic() - started
            if watch:  # a deploy, rollback or hotfix: its webhooks told, its on_failure hooks run
                watch.ended(outcome, error, seconds)
                if outcome in (events.FAILED, events.INTERRUPTED):
                    hooks.run_on_failure(env, watch.context(error or "failed"))
                watch.close()  # at most the webhooks' timeout; warnings before the task's end
            stream.publish(events.TaskFinished(outcome, code, error, seconds))

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
NOT_RECORDED = ("releases",)


def records(task, arguments):
    """Whether a run of `task` goes into the history (a plan changes nothing: no)."""
    return task not in NOT_RECORDED and not arguments.get("plan")


