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
    raise LockHeld(
        f"environment {host.env.name} is locked by {describe(holder)}; "
        f"if that deploy is dead, run `fab {host.env.name} unlock`"
    )


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


def force_release(host):
    """Break the lock whoever holds it; returns the holder that was removed (or None)."""
    root = shell.quote(host.env.code_root)
    output = host.run(
        f"""
if [ -d {root}/.deploy-lock ]; then
  cat {root}/.deploy-lock/owner 2>/dev/null || echo '{{}}'
  rm -rf {root}/.deploy-lock
fi
"""
    )
    if not output.strip():
        return None
    try:
        return json.loads(output.strip().splitlines()[-1])
    except ValueError:
        return {}
