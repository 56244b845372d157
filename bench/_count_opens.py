"""`fab` in this very process, counting the SSH connections that are being opened at
the same moment (paramiko's SSHClient.connect: TCP connect, key exchange, host key
check, authentication), however the deployer reaches it.

    FAB_BENCH_OPENS=<file.json> python bench/_count_opens.py <fab arguments>

Run from the project's folder (Fabric loads ./fabfile.py). At exit, writes
{"most": most connecting at once, "total": connections opened} to the file.
"""
import atexit
import json
import os
import sys
import threading

import paramiko

_lock = threading.Lock()
_counts = {"now": 0, "most": 0, "total": 0}
_connect = paramiko.SSHClient.connect


def connect(self, *args, **kwargs):
    with _lock:
        _counts["now"] += 1
        _counts["total"] += 1
        _counts["most"] = max(_counts["most"], _counts["now"])
    try:
        return _connect(self, *args, **kwargs)
    finally:
        with _lock:
            _counts["now"] -= 1


def report():
    with open(os.environ["FAB_BENCH_OPENS"], "w") as handle:
        json.dump({"most": _counts["most"], "total": _counts["total"]}, handle)


if __name__ == "__main__":
    paramiko.SSHClient.connect = connect
    atexit.register(report)
    sys.path.insert(0, os.getcwd())
    from fabric.main import program

    sys.argv[0] = "fab"
    sys.exit(program.run())
