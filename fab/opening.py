"""Opening the fleet a task works on: connect to its hosts (keys verified), hold
the environment's claim in the history store and its deploy lock on the hosts,
and read every host's state under the lock.
"""
import concurrent.futures
import contextlib
import time
import uuid

from fab import events, freezes, history, rollout, waiting
from fab.errors import DeployError, Frozen, LockHeld
from fab.events import stream
from fab.fleet import Fleet
from fab.held_lock import HeldLock, may_predate_release
from fab.hosts import connect, describe_error
from fab.identity import controller_name, who_am_i
from fab.operations import lock, state


@contextlib.contextmanager
def open_fleet(env, hosts=None, lock=None, drains=False, partial=False, wait=0, force=False, read=True):
    """The environment's hosts, connected and read: each host's state and paths.

    Every host key is verified before anything is written anywhere. With `lock`
    (the task's name), the environment's deploy lock is held from before the
    hosts are read until the fleet closes; a freeze refuses the tasks it stops
    unless `force`; held or frozen, it waits up to `wait` seconds for the
    environment to be free (see `locked`). With `drains` (a task that restarts
    balanced services), a fleet limited to some `hosts` also connects to the
    proxies outside it that balance them (`fleet.balancers`). A `partial` fleet
    (a read-only task's, without lock) leaves out the hosts it cannot reach or
    read, naming them in `fleet.unreachable`. Without `read` (and without lock), the
    hosts are only connected: their states are not read (`check` reads its own way).
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
        if not read and not lock:
            yield fleet
            return
        if partial:
            fleet.leave_out(fleet.attempt("state", state.read, list(fleet.connected.values()), quiet=True)[1])
        elif not lock:
            fleet.each("state", state.read, list(fleet.connected.values()), quiet=True)
        with locked(env, lock, lock_host or fleet.connected[first], fleet, wait, force) if lock \
                else contextlib.nullcontext():
            stream.publish(events.ReleasesRead({name: host.state.current for name, host in fleet.hosts.items()}))
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
def locked(env, task, lock_host, fleet, wait=0, force=False):
    """Hold the environment's claim in the history store, then its deploy lock on the
    hosts (the last line of defence), for the duration, unless a freeze read under
    the lock stops `task` (Frozen, unless `force`: then a warning, kept in the history);
    read every host's state, and with it complete the record of a previous run that
    never recorded its end. Refused (held or frozen), it holds nothing and tries
    again until `wait` seconds have passed (fab.waiting).

    A claim held by another controller whose holder no longer holds the deploy lock
    (SIGKILLed: the kernel freed its lock at once) is taken over at once: we take the
    host lock first, and if its last holder was that claim's, the holder is gone
    (see fab.history.claims). Our own lock record names our claim for the same reason.
    """
    guards = waiting.until_free(lambda: guarded(env, task, lock_host, fleet, force), wait, env.name, stream.note)
    with guards:
        yield


def guarded(env, task, lock_host, fleet, force):
    """The claim and the lock taken, the freeze passed (see `locked`): an ExitStack that
    lets go of them; refused, everything taken is let go first."""
    token = uuid.uuid4().hex
    held = HeldLock(lock_host, lock.owner_record(task, who_am_i(), claim=token))

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

    with contextlib.ExitStack() as taken:
        claim = taken.enter_context(
            history.claimed(env, task, who_am_i(), controller_name(), token=token, holder_gone=holder_gone))
        taken.enter_context(host_locked(env, held, fleet))
        stop_if_frozen(env, task, held.freeze, force)
        history.correct_unfinished(env, claim, fleet.states)
        return taken.pop_all()


def stop_if_frozen(env, task, freeze, force):
    """Frozen (exit 3) if `freeze` stops `task`; forced, a warning (the history keeps it)."""
    refusal = freezes.refusal(env.name, task, freeze, force)
    if refusal:
        raise Frozen(refusal, holder=freezes.describe(freeze))
    if freeze is not None and force and task in freezes.STOPPED:
        stream.warning(freezes.forced(env.name, task, freeze))


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


