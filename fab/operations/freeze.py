"""Setting and lifting the environment's freeze (fab.freezes) on the lock host.

Runs on: the first host of the environment. Both are safe to run twice: a second
freeze replaces the record (and says whose it replaced), a second lift finds none.
Reading the freeze is no operation of its own: lock.sh and state.sh read it in the
round trips they make anyway.
"""
import json

from fab import freezes, shell

ROLES = "first host"


def freeze(host, record):
    """Freeze with `record`; the freeze it replaced, or None."""
    return parse_answer(host.run(shell.remote_script("freeze"), ["set", host.paths.freeze, json.dumps(record)]))


def lift(host):
    """Unfreeze; the freeze it lifted, or None if there was none."""
    return parse_answer(host.run(shell.remote_script("freeze"), ["lift", host.paths.freeze]))


def parse_answer(output):
    """The record in freeze.sh's answer `was <base64>` (None: `was -`, or no answer)."""
    for line in output.splitlines():
        if line.startswith("was "):
            return freezes.decode(line.partition(" ")[2].strip())
    return None
