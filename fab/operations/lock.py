"""The deploy lock's one-shot remote operations: who holds it (the owner record,
read through the strict reader), breaking it for a holder that hangs (`unlock`),
and making hosts refuse a broken holder's swaps.

Runs on: the first host of the environment (the lock host); `raise_generation` on
the others. Holding the lock for a task is fab.held_lock.
"""
import json
import os

from fab import holders, shell
from fab import host_values as values
from fab.identity import controller_name
from fab.releases import utcnow

ROLES = "first host"


def owner_record(task, performer, claim=None):
    """Who holds the lock, as shown to whoever is refused; `claim`: the token of the
    holder's claim in the history store (whether a claim's holder still holds the lock)."""
    record = {
        "owner": performer,
        "machine": controller_name(),
        "pid": os.getpid(),
        "task": task,
        "since": utcnow().isoformat(),
    }
    return {**record, "claim": claim} if claim else record


def fence_files(paths):
    """The files fab/remote/fence.sh keeps the lock's generation in (its $1 and $2)."""
    return [paths.lock_generation, paths.fence_lock]


def fence_arguments(paths):
    """fence.sh and its files, as the scripts that run it take them (lock.sh,
    unlock.sh, swap.sh)."""
    return [shell.remote_script("fence"), *fence_files(paths)]


def lock_arguments(paths, record, state_arguments=()):
    """fab/remote/lock.sh's arguments: hold the lock for `record` (a dict), and with
    `state_arguments` (state.sh's own) read the host's state under it."""
    state = [shell.remote_script("state"), *state_arguments] if state_arguments else []
    return [paths.lock, paths.lock_owner, paths.lock_released, paths.lock_broken, json.dumps(record),
            *fence_arguments(paths), paths.freeze, *state]


def unlock_arguments(paths, audit):
    """fab/remote/unlock.sh's arguments: break the lock, logging `audit`."""
    return [paths.lock, paths.lock_owner, paths.lock_broken, paths.lock_breaks_log, audit, *fence_arguments(paths)]


def force_release(host, breaker):
    """Break the lock whoever holds it (stopping its holder, and only it), with an
    audit line in log/lock-breaks.log. Returns (the holder's record, the lock's new
    generation), or None if it was free."""
    audit = f"{utcnow().isoformat(timespec='seconds')} lock broken by {breaker}:"
    output = host.run(shell.remote_script("unlock"), unlock_arguments(host.paths, audit)).strip()
    if output.startswith("broken"):
        fields = output.split()
        return decode_record(fields[1] if len(fields) > 1 else ""), fields[2] if len(fields) > 2 else ""
    return None


#: The owner record's fields as the strict reader takes them (fab.host_values): a
#: field that fails is left out (shown as "?"), the others still say who holds it.
_RECORD_FIELDS = {
    "owner": lambda value: values.text(value, "owner", 200),
    "machine": lambda value: values.text(value, "machine", 200),
    "task": lambda value: values.text(value, "task", 100),
    "pid": lambda value: values.integer(value, 1, 1 << 31, "pid"),
    "lock_pid": lambda value: values.integer(value, 1, 1 << 31, "lock_pid"),
    "since": lambda value: values.moment(value, "since"),
    "claim": lambda value: values.hex_digest(value, "claim"),
}
#: The most bytes of an owner record read (a real one is under 300).
RECORD_LIMIT = 4096


def raise_generation(host, generation):
    """Make `host` refuse swaps of lock holders before `generation` (a broken lock's)."""
    host.run(shell.remote_script("fence"), [*fence_files(host.paths), "raise", generation])
    return f"swaps of the broken holder refused from generation {generation}"


def decode_record(encoded):
    """The lock owner record a host reported (base64 of JSON): only its known fields
    that pass the strict reader; {} if it is not a record at all."""
    try:
        return values.encoded_record(encoded, _RECORD_FIELDS, RECORD_LIMIT)
    except values.Unreadable:
        return {}


def describe(holder):
    """The lock's holder as every refusal names one (fab.holders)."""
    return holders.describe(holder.get("owner"), holder.get("task"), holder.get("pid"), holder.get("machine"),
                            holder.get("since"))
