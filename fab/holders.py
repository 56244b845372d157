"""Who holds an environment, named one way whichever guard refused a task: the
history store's claim, the deploy lock on the hosts, or a freeze. A refusal (and
a task waiting with `wait=`) says

    alice@laptop (deploy, pid 4242 on laptop, since 2026-11-23 05:59:01 UTC)

from whatever that guard recorded; a part it lacks reads `?`.
"""
import datetime as dt


def describe(owner, task=None, pid=None, machine=None, since=None):
    """`owner (task, pid N on machine, since <UTC>)`; `since`: epoch seconds or ISO text."""
    if not owner:
        return "an unknown task"
    return f"{owner} ({task or '?'}, pid {pid or '?'} on {machine or '?'}, since {since_text(since)})"


def since_text(since):
    """`2026-11-23 05:59:01 UTC` from epoch seconds or an ISO time with its offset; `?` if neither."""
    try:
        if isinstance(since, (int, float)) and not isinstance(since, bool):
            moment = dt.datetime.fromtimestamp(since, dt.timezone.utc)
        elif isinstance(since, str):
            moment = dt.datetime.fromisoformat(since)
            if moment.tzinfo is None:
                return since
            moment = moment.astimezone(dt.timezone.utc)
        else:
            return "?"
    except (ValueError, OverflowError, OSError):
        return str(since)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
