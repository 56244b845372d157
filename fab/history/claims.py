"""The environment's claim in the history store: of two controllers, exactly one proceeds.

As Buildbot claims build requests: a claim is one row per environment, inserted
in one transaction, and the primary key is the rule (never read-then-write).
The holder heartbeats. A claim whose holder stopped heartbeating for
`stale_after` seconds (or whose process is known dead on this controller) is
stale: the next claimant takes it over in one transaction that only matches the
old claim's token, and leaves an audit row. `fab <env> unlock` clears a claim,
also with an audit row. The host-side lock stays the last line of defence.

A claim is stale at once, too, when its holder no longer holds the deploy lock on
the hosts (SIGKILLed: the kernel freed its lock, but its heartbeat looks recent).
The claimant asks `holder_gone(claim)` (fab.opening): that takes the host lock
itself and looks whether the lock's last holder was this claim's (the holder's
lock record names its claim's token). Holding the lock then, the claimant cannot
race the old holder, which can change nothing more without it.
"""
import os
import threading
import time
import uuid

from sqlalchemy.exc import IntegrityError

from fab import holders
from fab.history import liveness
from fab.history.errors import ClaimHeld
from fab.history.engine import describe_database_error

TAKEN_OVER, CLEARED = "taken_over", "cleared"
_TRIES = 5  # a claim released or taken over between our insert and our look: try again


class Claim:
    """A claim this process holds (`took_over`: the stale claim it replaced, if any,
    and `why`: why it was stale)."""

    def __init__(self, values, took_over=None, why=None):
        self.environment = values["environment"]
        self.token = values["token"]
        self.values = values
        self.took_over = took_over
        self.why = why


#: A claim younger than this is not asked whether its holder still holds the host
#: lock: between claiming and taking the lock a live holder would find it taken.
LOCK_GRACE_SECONDS = liveness.HEARTBEAT_SECONDS


def new_token():
    return uuid.uuid4().hex


def acquire(store, environment, task, holder, controller, stale_after, operation_id=None, now=time.time,
            token=None, holder_gone=None):
    """Claim `environment` for `task` (with `token`, to name it elsewhere before it is
    claimed), or raise ClaimHeld naming who holds it. A claim held by another is taken
    over when it is stale, or when `holder_gone(claim)` says its holder lost its
    deploy lock on the hosts (see the module's docstring)."""
    token = token or new_token()
    for _ in range(_TRIES):
        at = now()
        values = dict(environment=environment, token=token, holder=holder,
                      controller=controller, pid=os.getpid(), task=task, operation_id=operation_id,
                      claimed_at=at, heartbeat_at=at)
        try:
            store.insert_claim(values)
            return Claim(values)
        except IntegrityError:
            pass
        current = store.claim(environment)
        if current is None:
            continue
        if is_stale(current, at, stale_after, controller):
            why = why_stale(current, at)
        elif holder_gone is not None and at - current["claimed_at"] >= LOCK_GRACE_SECONDS \
                and holder_gone(current):
            why = (f"it no longer holds the deploy lock on the hosts "
                   f"(its last heartbeat {at - current['heartbeat_at']:.0f}s ago)")
        else:
            raise ClaimHeld(describe_held(current, at), holder=describe(current))
        audit = audit_row(current, TAKEN_OVER, holder, at, reason=why)
        if store.replace_claim(current, values, audit):
            return Claim(values, took_over=current, why=why)
    raise ClaimHeld(f"environment {environment}: several controllers are claiming it at once; try again")


def is_stale(claim, now, stale_after, this_controller):
    process_alive = liveness.process_alive_here(claim["controller"], claim["pid"], this_controller)
    return liveness.holder_is_gone(claim["heartbeat_at"], now, stale_after, process_alive)


def why_stale(claim, now):
    return f"no heartbeat for {now - claim['heartbeat_at']:.0f}s (or its process is gone)"


def describe(claim):
    """The claim's holder as every refusal names one (fab.holders)."""
    return holders.describe(claim["holder"], claim["task"], claim["pid"], claim["controller"], claim["claimed_at"])


def describe_held(claim, now):
    environment = claim["environment"]
    return (f"environment {environment} is locked by {describe(claim)}, claimed in the history store, "
            f"last heartbeat {max(0, now - claim['heartbeat_at']):.0f}s ago; if it is dead, "
            f"`fab {environment} unlock` clears it")


def audit_row(claim, action, by, at, reason=None):
    return dict(environment=claim["environment"], action=action, holder=claim["holder"],
                controller=claim["controller"], task=claim["task"], claimed_at=claim["claimed_at"],
                heartbeat_at=claim["heartbeat_at"], by=by, at=at, reason=reason)


def release(store, claim):
    """Give the claim back; False if it was not ours any more (taken over)."""
    return store.delete_claim(claim.environment, claim.token)


def clear(store, environment, by, now=time.time):
    """Remove whoever's claim on `environment` with an audit row; the removed claim or None."""
    for _ in range(_TRIES):
        current = store.claim(environment)
        if current is None:
            return None
        audit = audit_row(current, CLEARED, by, now(), reason="fab unlock")
        if store.delete_claim(environment, current["token"], audit):
            return current
    return None


class Heartbeat:
    """Refreshes a claim's heartbeat in a background thread until stopped.

    `on_problem(text)` is told once if the claim was taken over or the store stops
    answering; the task goes on while it holds the deploy lock on the hosts (which
    stops it at its next step once lost: fab.operations.lock).
    """

    def __init__(self, store, claim, on_problem, interval=liveness.HEARTBEAT_SECONDS):
        self._store, self._claim, self._on_problem, self._interval = store, claim, on_problem, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="claim-heartbeat", daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join()

    def _run(self):
        complained = False
        while not self._stop.wait(self._interval):
            try:
                ours = self._store.heartbeat_claim(self._claim.environment, self._claim.token, time.time())
            except Exception as error:  # noqa: BLE001 - a lost store must not stop the task
                if not complained:
                    self._on_problem(f"cannot refresh the claim on {self._claim.environment}: "
                                     f"{describe_database_error(error)}")
                    complained = True
                continue
            if not ours:
                self._on_problem(f"the claim on {self._claim.environment} is no longer this task's (cleared "
                                 "by `unlock` or taken over): it goes on only while it holds the deploy lock")
                return
