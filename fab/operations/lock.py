"""The environment's deploy lock: a directory on the environment's first host.

Runs on: the first host of the environment (the lock host). `mkdir` is atomic,
so of two deploys started together exactly one gets it; the other is told who
holds it. Releasing is safe to rerun and only removes a lock we own.
"""
import getpass
import json
import os
import socket
import uuid

from fab import shell
from fab.errors import LockHeld
from fab.releases import utcnow

ROLES = "first host"


def owner_record(task):
    return {
        "token": uuid.uuid4().hex,
        "owner": f"{getpass.getuser()}@{socket.gethostname()}",
        "pid": os.getpid(),
        "task": task,
        "since": utcnow().isoformat(),
    }


def acquire(host, record):
    """Take the lock for `record`; raise LockHeld naming the holder if it is taken."""
    root = shell.quote(host.env.code_root)
    lock = f"{root}/.deploy-lock"
    output = host.run(
        f"""
mkdir -p {root}
if mkdir {lock} 2>/dev/null; then
  {shell.write_file(host.env.code_root + "/.deploy-lock/owner", json.dumps(record))}
  echo acquired
else
  cat {lock}/owner 2>/dev/null || echo '{{}}'
fi
"""
    )
    if output.strip() == "acquired":
        return record
    try:
        holder = json.loads(output.strip().splitlines()[-1])
    except (ValueError, IndexError):
        holder = {}
    advice = "if that deploy is dead" if holder_may_be_alive(holder) else "its process is gone"
    raise LockHeld(
        f"environment {host.env.name} is locked by {describe(holder)}; "
        f"{advice}, run `fab {host.env.name} unlock`"
    )


def holder_may_be_alive(holder):
    """False only when the holder ran on this machine and its process is gone."""
    owner, pid = holder.get("owner", ""), holder.get("pid")
    if not owner.endswith("@" + socket.gethostname()) or not isinstance(pid, int):
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def describe(holder):
    if not holder.get("owner"):
        return "an unknown deploy"
    return (
        f"{holder['owner']} (pid {holder.get('pid', '?')}, {holder.get('task', '?')}, "
        f"since {holder.get('since', '?')})"
    )


def release(host, record):
    """Remove the lock if `record` still owns it."""
    root = shell.quote(host.env.code_root)
    host.run(
        f"""
if grep -q {shell.quote(record["token"])} {root}/.deploy-lock/owner 2>/dev/null; then
  rm -rf {root}/.deploy-lock
fi
"""
    )


def force_release(host, breaker):
    """Break the lock whoever holds it, leaving a line in log/lock-breaks.log.

    Returns the holder that was removed (or None if there was no lock).
    """
    root = shell.quote(host.env.code_root)
    audit = f"{utcnow().isoformat()} lock broken by {breaker}: "
    output = host.run(
        f"""
if [ -d {root}/.deploy-lock ]; then
  holder=$(cat {root}/.deploy-lock/owner 2>/dev/null || echo '{{}}')
  mkdir -p {root}/log
  printf '%s%s\n' {shell.quote(audit)} "$holder" >> {root}/log/lock-breaks.log
  rm -rf {root}/.deploy-lock
  printf '%s\n' "$holder"
fi
"""
    )
    if not output.strip():
        return None
    try:
        return json.loads(output.strip().splitlines()[-1])
    except ValueError:
        return {}
