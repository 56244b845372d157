"""The environment's freeze: while it stands, deploys, hotfixes and restarts refuse
(exit 3) unless forced; `rollback` still runs (it is the fix).

A freeze is a small JSON record (who, from which machine and pid, since when, why)
in one file beside the deploy lock on the lock host (Paths.freeze), so every
controller sees it whatever history store it uses. `freeze` and `unfreeze` write it
(fab.operations.freeze); a task that takes the lock reads it in the lock's own
round trip (fab/remote/lock.sh), `releases` with the host's state. Pure: the
record, how it reads, and whether it stops a task.
"""
from fab import holders
from fab import host_values as values
from fab.task_input import MESSAGE_LIMIT

#: The tasks a freeze stops: what puts new code live or restarts it.
STOPPED = frozenset({"deploy", "hotfix_deploy", "restart_services", "set_supervisor_config"})
#: The most bytes of a freeze record read (a real one is under 600).
RECORD_LIMIT = 4096

#: The record's fields as the strict reader takes them: a field that fails is left out
#: (shown as "?"); the freeze stands all the same.
_FIELDS = {
    "by": lambda value: values.text(value, "by", 200),
    "machine": lambda value: values.text(value, "machine", 200),
    "pid": lambda value: values.integer(value, 1, 1 << 31, "pid"),
    "since": lambda value: values.moment(value, "since"),
    "reason": lambda value: values.text(value, "reason", MESSAGE_LIMIT + 20),
}


def record(reason, by, machine, pid, since):
    """A new freeze's record (`since`: an aware datetime)."""
    return {"by": by, "machine": machine, "pid": pid, "since": since.isoformat(timespec="seconds"),
            "reason": reason}


def decode(encoded):
    """The freeze a host reported (base64 of JSON; "-" or "": none): its known fields that
    pass the strict reader, {} for a freeze file that is not a record at all (it still
    freezes: someone meant it), or None when there is no freeze."""
    if encoded in ("", "-"):
        return None
    try:
        return values.encoded_record(encoded, _FIELDS, RECORD_LIMIT)
    except values.Unreadable:
        return {}


def describe(freeze):
    """`alice@laptop (freeze, pid 4242 on laptop, since 2026-11-23 05:59:01 UTC): <reason>`."""
    who = holders.describe(freeze.get("by") or "someone", "freeze", freeze.get("pid"), freeze.get("machine"),
                           freeze.get("since"))
    return f"{who}: {freeze.get('reason') or 'no reason given'}"


def refusal(environment, task, freeze, force):
    """Why `task` may not run on a frozen `environment` (one line), or None: not frozen,
    a task a freeze does not stop, or forced (the caller warns and records it)."""
    if freeze is None or task not in STOPPED or force:
        return None
    return (f"environment {environment} is frozen by {describe(freeze)}; `fab {environment} unfreeze` "
            f"lifts it, or `{task}:force=yes` runs anyway (recorded)")


def forced(environment, task, freeze):
    """The warning a forced task gives, and its history keeps."""
    return f"environment {environment} is frozen by {describe(freeze)}: {task} runs anyway (force=yes)"


def after_rollback(message, leaving, target):
    """The reason a rollback freezes with (`rollback_freezes: true`): its message, else
    which release it left for which."""
    return f"rolled back: {message}" if message else \
        f"rolled back: from {leaving or 'releases that differed'} to {target}"


def announcement(environment, reason):
    """What a task that froze the environment says (its stage line; the history's log keeps it)."""
    return f"{environment} is frozen: {reason}; {_UNTIL}`fab {environment} unfreeze`"


_UNTIL = "deploys, hotfixes and restarts refuse until "


def announced_reason(line, environment):
    """The reason in a stored log line that is `announcement` (a rollback that froze
    with `rollback_freezes`), or None for any other line."""
    _, found, said = line.partition(f"== {environment} is frozen: ")
    ending = f"; {_UNTIL}`fab {environment} unfreeze`"
    return said[:-len(ending)] if found and said.endswith(ending) else None
