"""`python -m fab.sandbox up|status|down|destroy`: the built-in sandbox's fleet (fab.sandbox)."""
import argparse
import json
import os
import sys

import fab.sandbox
from fab.sandbox import SANDBOX, destroy, down, up
from fab.sandbox.daemons import SSH_PORT, recorded_daemon
from fab.sandbox.tools import log


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fab.sandbox", description=fab.sandbox.__doc__.split("\n")[0])
    parser.add_argument("action", choices=["up", "down", "destroy", "status"])
    args = parser.parse_args(argv)
    if args.action == "up":
        state = up(SANDBOX)
        for host, info in state["hosts"].items():
            log(f"{host:<8} {info['user']}@{info['address']}:{SSH_PORT} (sshd pid {info['sshd_pid']}, supervisord pid {info['supervisord_pid']})")
        log(f"ssh config: {SANDBOX.ssh_config}; app repository: {SANDBOX.app_repo}")
    elif args.action == "down":
        down(SANDBOX)
        log("stopped")
    elif args.action == "destroy":
        destroy(SANDBOX)
        log("destroyed")
    else:
        if not os.path.exists(SANDBOX.state_file):
            log("not running")
            return 1
        with open(SANDBOX.state_file) as handle:
            state = json.load(handle)
        for host, info in state["hosts"].items():
            running = all(recorded_daemon(SANDBOX, host, info, key) for key in ("sshd_pid", "supervisord_pid"))
            log(f"{host:<8} {info['address']} {'running' if running else 'NOT running'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
