"""What every task shares: the selected environment, one-line errors, the locked fleet.

Kept out of fabfile.py so that file reads as the story of each task.
"""
import concurrent.futures
import contextlib
import functools
import inspect
import signal
import time
import uuid

from invoke.exceptions import Exit

from fab import events, history, rollout
from fab.errors import ConfigError, DeployError, Interrupted, LockHeld, PreflightError, UsageError
from fab.hosts import Fleet, connect, describe_error
from fab.identity import controller_name, who_am_i  # noqa: F401 - who_am_i: tasks import it from here
from fab.operations import lock, state
from fab.events import stream
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
NOT_RECORDED = ("releases",)


def records(task, arguments):
    """Whether a run of `task` goes into the history (a plan changes nothing: no)."""
    return task not in NOT_RECORDED and not arguments.get("plan")


@contextlib.contextmanager
def open_fleet(env, hosts=None, lock=None, drains=False, partial=False):
    """The environment's hosts, connected and read: each host's state and paths.

    Every host key is verified before anything is written anywhere. With `lock`
    (the task's name), the environment's deploy lock is held from before the
    hosts are read until the fleet closes. With `drains` (a task that restarts
    balanced services), a fleet limited to some `hosts` also connects to the
    proxies outside it that balance them (`fleet.balancers`). A `partial` fleet
    (a read-only task's, without lock) leaves out the hosts it cannot reach or
    read, naming them in `fleet.unreachable`.
    """
    assert not (partial and lock), "a task that changes hosts needs every one of them"
    # The lock is held over the first host's fleet connection; a fleet limited to
    # other hosts opens one for it, together with the fleet's.
    balancers = env.topology.balancers_outside(hosts) if drains and hosts else []
    first = env.hosts[0]
    lock_host = connect(first, env) if lock and hosts and first not in [*hosts, *balancers] else None
    try:
        fleet = Fleet.connect(env, hosts, also=[lock_host] if lock_host else [], balancers=balancers,
                              partial=partial)
    except BaseException as error:
        if lock_host:
            lock_host.close()
        message = describe_error(error) if isinstance(error, Exception) else None
        if message is None or isinstance(error, DeployError):
            raise
        raise DeployError(message) from None  # e.g. a bad ssh_config: a user error
    try:
        if partial:
            fleet.leave_out(fleet.attempt("state", state.read, list(fleet.connected.values()), quiet=True)[1])
        elif not lock:
            fleet.each("state", state.read, list(fleet.connected.values()), quiet=True)
        with locked(env, lock, lock_host or fleet.connected[first], fleet) if lock else contextlib.nullcontext():
            yield fleet
    finally:
        fleet.close()
        if lock_host:
            lock_host.close()


def fence_the_broken_holder(env, generation):
    """Every other host refuses the broken holder's swaps from now on (should it wake up);
    a host that cannot be reached is named: it refuses them once the next holder swaps there."""
    others = env.hosts[1:]
    if not others or not generation:
        return
    with open_fleet(env, hosts=others, partial=True) as fleet:
        _, failed = fleet.attempt("fence", lambda host: lock.raise_generation(host, generation), quiet=True)
    unfenced = {**fleet.unreachable, **failed}
    if unfenced:
        stream.warning(f"could not tell {rollout.describe_failures(unfenced)} to refuse the broken "
                       "holder's swaps (its own deployer stops at its next step all the same)")


@contextlib.contextmanager
def locked(env, task, lock_host, fleet):
    """Hold the environment's claim in the history store, then its deploy lock on the
    hosts (the last line of defence), for the duration; read every host's state, and
    with it complete the record of a previous run that never recorded its end.

    A claim held by another controller whose holder no longer holds the deploy lock
    (SIGKILLed: the kernel freed its lock at once) is taken over at once: we take the
    host lock first, and if its last holder was that claim's, the holder is gone
    (see fab.history.claims). Our own lock record names our claim for the same reason.
    """
    token = uuid.uuid4().hex
    held = lock.HeldLock(lock_host, lock.owner_record(task, who_am_i(), claim=token))

    def holder_gone(claim):
        if not held.acquired:
            try:
                take_lock(held, fleet)
            except LockHeld:
                return False  # its holder still holds it: the claim stands
        if held.previous_holder.get("claim") == claim["token"]:
            return True
        release_lock(held)
        return False

    with history.claimed(env, task, who_am_i(), controller_name(), token=token, holder_gone=holder_gone) as claim:
        with host_locked(env, held, fleet):
            history.correct_unfinished(env, claim, fleet.states)
            yield


@contextlib.contextmanager
def host_locked(env, held, fleet):
    """Hold the environment's deploy lock (`held`, a HeldLock on its first host, over
    its fleet connection or one of the lock's own) for the duration, and read every
    host of `fleet` under it. Stopping a step closes only that step's session, never the lock's.

    The lock host's state is read in the lock's own round trip, the other hosts' at
    the same time; if the previous holder let go after those reads began (or did not
    let go cleanly), they are read again, now under the lock. (Taken already to see
    whether a claim's holder is gone, the lock has them read now.)
    """
    lock_host_read = held.host in fleet.connected.values()
    others = [host for host in fleet.connected.values() if host is not held.host]
    unread, began = others, time.monotonic()
    if not held.acquired:
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as reading:
            meanwhile = reading.submit(fleet.attempt, "state", state.read, others, True)
            try:
                take_lock(held, fleet)
            finally:
                _, unread = meanwhile.result()
    try:
        if lock_host_read:
            state.adopt(held.host, held.state_output)
        if unread or may_predate_release(held.released_ago, time.monotonic() - began):
            fleet.each("state", state.read, hosts=others, quiet=True)
        fleet.lock = held
        yield
    finally:
        fleet.lock = None
        release_lock(held)


def take_lock(held, fleet):
    """Take `held` on its host, reading that host's state in the same round trip when it
    is one of `fleet`'s; LockHeld naming the holder if another task has it."""
    read_state = held.host in fleet.connected.values()
    Fleet(held.host.env, [held.host]).each("lock", lambda host: held.acquire(read_state=read_state))


def release_lock(held):
    try:
        Fleet(held.host.env, [held.host]).each("unlock", lambda host: held.release() or "released")
    except DeployError as error:
        stream.warning(f"could not release the lock cleanly (it frees itself): {error}")


#: Seconds of leeway when deciding whether state read while the lock was being taken
#: may predate the previous holder's last change (two clocks measure the durations).
STATE_LEEWAY = 0.25


def may_predate_release(released_ago, reading_for):
    """Whether state read in the last `reading_for` seconds, while the lock was being
    taken, may predate the previous holder's last change: it let go `released_ago`
    seconds ago (0.0: not cleanly, so maybe just now; None: nobody ever held the lock)."""
    return released_ago is not None and released_ago < reading_for + STATE_LEEWAY
