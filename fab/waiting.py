"""Waiting for the environment instead of failing (`wait=SECONDS`), for CI jobs that race.

A task that takes the claim and the lock tries to take them (and finds no freeze
that stops it); refused (LockHeld: the claim, the host lock or a freeze), it
holds nothing, says who holds the environment (once, then only when that changes),
looks again every few seconds (jittered, so waiting controllers do not ask in
step) and runs once all are free. At the deadline the last refusal is raised
(exit 3), saying how long it waited. The loop's clock, sleep and pauses are
parameters, so its decisions are tested with a fake clock.
"""
import random
import time

from fab.errors import Frozen, LockHeld

#: Seconds between two looks: a few, at random in this range.
PAUSE_SECONDS = (2.0, 5.0)


def pause():
    return random.uniform(*PAUSE_SECONDS)


def next_look(now, deadline, pause_seconds):
    """Seconds to sleep before looking again, or None: the deadline has come."""
    if now >= deadline:
        return None
    return min(pause_seconds, deadline - now)


def waiting_line(refusal, environment, seconds_left):
    """What a waiting task says about who holds `environment`."""
    state = "frozen" if isinstance(refusal, Frozen) else "locked"
    return f"waiting up to {seconds_left:.0f}s more: {environment} is {state} by {refusal.holder}"


def until_free(attempt, seconds, environment, say, clock=time.monotonic, sleep=time.sleep, pauses=pause):
    """`attempt()`'s result once it is not refused (LockHeld), trying for up to `seconds`
    (0: once); `say(line)` is told who holds the environment, once per holder."""
    deadline = clock() + seconds
    told = None
    while True:
        try:
            return attempt()
        except LockHeld as refusal:
            now = clock()
            delay = next_look(now, deadline, pauses()) if seconds else None
            if delay is None:
                if not seconds:
                    raise
                raise type(refusal)(f"{refusal} (waited {seconds}s)", holder=refusal.holder) from None
            if refusal.holder != told:
                told = refusal.holder
                say(waiting_line(refusal, environment, deadline - now))
            sleep(delay)
