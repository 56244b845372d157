"""Completing the record of an operation that ended without recording its end.

A deployer killed outright (SIGKILL, a crashed machine) or whose store was down
at its end leaves its row `running`; a reader takes it as interrupted, and its
steps as they were when the writes stopped. The next task that takes the lock
reads every host before changing anything: what it finds there is what that
operation left behind, so it corrects the record, per host. Pure decisions here;
fab.history.correct_unfinished finds the operation and writes the correction.
"""
import dataclasses
import json

from fab.history import liveness
from fab.releases import GOOD

#: Tasks that hold the lock and so change hosts: the newest of their runs is the
#: one whose end the hosts show (refused runs changed nothing).
LOCKING_TASKS = frozenset({"deploy", "rollback", "hotfix_deploy", "setup_release", "preindex_views",
                           "clean_releases", "restart_services", "set_supervisor_config", "maintenance"})
#: Of those, the tasks that point `current` at their release.
SWAPPING_TASKS = frozenset({"deploy", "rollback"})

SWAPPED, NOT_SWAPPED = "swapped", "not swapped"
#: A step still `running` when its run's end went unrecorded: how it ended is unknown.
UNRECORDED = "not recorded"
SUCCEEDED = "succeeded"
REFUSED = "refused"


@dataclasses.dataclass(frozen=True)
class Correction:
    """What to write over an unfinished operation's row: its outcome, a line saying what
    the hosts showed (the row's `error`, and its log), and per host a `current` step."""

    outcome: str
    summary: str
    hosts: dict  # host -> (SWAPPED or NOT_SWAPPED, the release it runs or None)
    steps_left_running: str  # what its steps still `running` now read


def unfinished(operations, own_id, taken_over_id, now, stale_after, alive):
    """Of an environment's operations (newest first, as rows), the one whose end the hosts
    now show, if it never recorded that end: the operation whose claim this task took
    over, or else the newest run of a task that holds the lock (refused ones and this
    task's own left out), when it is still `running` and its holder is gone.
    `alive(row)`: whether its process is known to live (liveness.process_alive_here)."""
    for operation in operations:
        if operation["id"] == own_id:
            continue
        if taken_over_id is not None:
            if operation["id"] == taken_over_id:
                return operation if operation["outcome"] == liveness.RUNNING else None
            continue
        if operation["task"] not in LOCKING_TASKS or operation["outcome"] == REFUSED:
            continue
        if operation["outcome"] != liveness.RUNNING:
            return None
        gone = liveness.holder_is_gone(operation["heartbeat_at"], now, stale_after, alive(operation))
        if gone:
            return operation
        # Running and alive: it has not reached the hosts (this task holds the lock); look further.
    return None


def correction(operation, found, reader_id=None):
    """How the unfinished `operation` (a row) really ended, from `found`: {host: (its
    current release or None, the status on that host of the operation's release or
    None)} as the next task (operation `reader_id`) read them before changing anything.

    A deploy or rollback is succeeded when every one of its hosts runs its release,
    marked good there; otherwise interrupted. Per host, swapped means its `current` is
    the operation's release. Other tasks (no release of their own) are interrupted."""
    reader = f"operation {reader_id}" if reader_id else "the next task"
    release = operation["release"]
    if operation["task"] not in SWAPPING_TASKS or not release:
        left = "its release was never recorded" if operation["task"] in SWAPPING_TASKS else "not read back"
        return Correction(liveness.INTERRUPTED,
                          f"its end was not recorded; {reader} took the lock after it ({left})",
                          {}, liveness.INTERRUPTED)
    recorded_hosts = json.loads(operation["hosts"] or "[]")
    hosts = [host for host in recorded_hosts if host in found]
    per_host = {host: (SWAPPED if found[host][0] == release else NOT_SWAPPED, found[host][0]) for host in hosts}
    unread = [host for host in recorded_hosts if host not in found]
    done = bool(hosts) and not unread and all(found[host] == (release, GOOD) for host in hosts)
    swapped = [host for host, (how, _) in per_host.items() if how == SWAPPED]
    others = [f"{host} ({current or 'no release'})" for host, (how, current) in per_host.items()
              if how == NOT_SWAPPED]
    parts = [f"on {release}: {', '.join(swapped)}" if swapped else f"no host on {release}"]
    if others:
        parts.append(f"not swapped: {', '.join(others)}")
    if unread:
        parts.append(f"not read: {', '.join(unread)}")
    summary = f"its end was not recorded; {reader} found {'; '.join(parts)}"
    if done:
        return Correction(SUCCEEDED, summary, per_host, UNRECORDED)
    return Correction(liveness.INTERRUPTED, summary, per_host, liveness.INTERRUPTED)
