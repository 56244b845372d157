"""How the dashboard reads stored rows: an operation's summary and detail, the live
release, the freeze, the claim, and the history's cursors. Pure functions of row
dicts (fab.dashboard.reading fetches the rows); no database here.

Every text comes out as stored (the recorder masked it); escaping is the pages' job.
"""
import json

from fab import freezes
from fab.history import liveness, views

#: The tasks that put a release live: the environments page's `live` is the newest of
#: these that succeeded with a release.
LIVE_TASKS = ("deploy", "rollback", "hotfix_deploy")
FREEZE_TASKS = ("freeze", "unfreeze")


def effective(row, now, stale_after, this_controller):
    """The row's outcome as it reads now: `running` whose holder is gone is `interrupted`."""
    alive = liveness.process_alive_here(row["controller"], row["pid"], this_controller) \
        if row["outcome"] == liveness.RUNNING else None
    return liveness.effective_outcome(row["outcome"], row["heartbeat_at"], now, stale_after, alive)


def operation_summary(row, now, stale_after, this_controller):
    """The contract's operation summary of a fab_operations row (a dict)."""
    return {
        "id": row["id"], "environment": row["environment"], "task": row["task"],
        "performer": row["performer"], "controller": row["controller"],
        "started_at": row["started_at"], "finished_at": row["finished_at"],
        "seconds": views.elapsed(row, now),
        "outcome": effective(row, now, stale_after, this_controller), "exit_code": row["exit_code"],
        "release": row["release"], "previous_release": row["previous_release"], "commit": row["commit"],
        "commit_subject": row["commit_subject"], "commit_time": row["commit_time"], "ref": row["ref"],
        "message": row["message"], "error": row["error"], "hosts": _json_list(row["hosts"]),
        "arguments": _arguments(row["arguments"]),
    }


def step_detail(step, operation_outcome, now):
    """One step as the operation page shows it: a step still `running` in an operation
    that ended was cut off (`interrupted`, as `deploy_log` reads it)."""
    outcome, seconds = step["outcome"], step["seconds"]
    if outcome == liveness.RUNNING and operation_outcome != liveness.RUNNING:
        outcome = liveness.INTERRUPTED
    if seconds is None and outcome == liveness.RUNNING:
        seconds = max(0.0, now - step["started_at"])
    return {"host": step["host"], "step": step["step"], "started_at": step["started_at"],
            "finished_at": step["finished_at"], "outcome": outcome, "note": step["note"], "seconds": seconds,
            "output": step["output"]}


def operation_detail(summary, row, steps, received, now):
    return {**summary, "steps": [step_detail(step, summary["outcome"], now) for step in steps],
            "received": received, "log_lines": row["log_lines"], "log_pruned": row["log_pruned_at"] is not None}


def live(row):
    """What the newest successful deploy, rollback or hotfix put live (None: nothing did)."""
    if row is None:
        return None
    return {"operation_id": row["id"], "task": row["task"], "release": row["release"], "commit": row["commit"],
            "commit_subject": row["commit_subject"], "ref": row["ref"], "performer": row["performer"],
            "finished_at": row["finished_at"]}


def lock(claim, now, stale_after):
    """The environment's claim, if its holder is still there (a stale claim is
    taken over by the next task: it holds nothing)."""
    if claim is None or liveness.holder_is_gone(claim["heartbeat_at"], now, stale_after):
        return None
    return {"holder": claim["holder"], "controller": claim["controller"], "pid": claim["pid"],
            "task": claim["task"], "since": claim["claimed_at"], "heartbeat_at": claim["heartbeat_at"]}


def freeze(row, environment, rollback_log=()):
    """The freeze as the history tells it, from the newest successful `freeze`,
    `unfreeze` or rollback that froze (`rollback_log`: that rollback's log lines, in
    which it announced the freeze); None when unfrozen or never frozen."""
    if row is None or row["task"] == "unfreeze":
        return None
    if row["task"] == "freeze":
        reason = json.loads(row["arguments"] or "{}").get("reason") or ""
    else:
        reason = next((found for line in rollback_log
                       if (found := freezes.announced_reason(line, environment)) is not None), None)
        if reason is None:
            return None
    return {"by": row["performer"], "reason": reason, "since": row["finished_at"], "operation_id": row["id"]}


# -- cursors: opaque strings for keyset paging (newest first, by id) -----------------


def reader_cursor(last_id):
    return str(last_id)


def reader_position(cursor):
    """The id a page starts below; None: from the newest. ValueError for a cursor
    that is not one of ours (the page says so in one line)."""
    if cursor in (None, ""):
        return None
    position = int(cursor)
    if position < 0:
        raise ValueError(cursor)
    return position


def catalogue_cursor(positions):
    """One cursor for several stores: each store's id a page starts below (0: done)."""
    return ".".join(f"{index}-{position}" for index, position in sorted(positions.items()))


def catalogue_positions(cursor):
    """{store index: id to start below, or 0 when that store is done}; {} from the newest."""
    if cursor in (None, ""):
        return {}
    positions = {}
    for part in cursor.split("."):
        index, _, position = part.partition("-")
        positions[int(index)] = int(position)
        if positions[int(index)] < 0:
            raise ValueError(cursor)
    return positions


def _json_list(text):
    try:
        value = json.loads(text or "[]")
    except ValueError:
        return []
    return [str(item) for item in value] if isinstance(value, list) else []


def _arguments(text):
    try:
        return views.arguments_text(text or "{}")
    except (ValueError, AttributeError):
        return ""
