"""Is the process behind a running operation or a claim still there? Pure decisions.

A holder heartbeats while it works. One whose heartbeat is older than the
staleness limit is gone (killed, machine down, cut off); on the holder's own
controller we can also see at once that its process no longer exists.
"""
import os

RUNNING = "running"
INTERRUPTED = "interrupted"

#: How often holders write their heartbeat; the staleness limit must be well above it.
HEARTBEAT_SECONDS = 5.0


def holder_is_gone(heartbeat_at, now, stale_after, process_alive=None):
    """True when the holder stopped: its process is known dead (`process_alive` is
    False: same controller, pid gone) or its heartbeat is older than `stale_after`."""
    if process_alive is False:
        return True
    return now - heartbeat_at > stale_after


def effective_outcome(outcome, heartbeat_at, now, stale_after, process_alive=None):
    """What a stored outcome means now: a `running` row whose holder is gone reads `interrupted`."""
    if outcome == RUNNING and holder_is_gone(heartbeat_at, now, stale_after, process_alive):
        return INTERRUPTED
    return outcome


def process_alive_here(row_controller, pid, this_controller):
    """Whether `pid` lives, if the row was written on this controller; None when we cannot know."""
    if row_controller != this_controller or not isinstance(pid, int) or pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
