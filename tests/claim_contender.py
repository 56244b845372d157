"""One controller claiming an environment, round after round (the claim race test runs
two of these at once, with different FAB_CONTROLLER names, against one PostgreSQL store).

    python claim_contender.py <environments dir> <env> <rounds> <signal dir>

Round N: wait for <signal dir>/go-N, try to claim; write <signal dir>/<controller>-N as
`won` or `lost: <message>`; a winner holds the claim until release-N appears, then
gives it back and writes released-N. Every wait is bounded.
"""
import os
import sys
import time

from fab import history
from fab.config import load_environment
from fab.history.errors import ClaimHeld
from fab.identity import controller_name, who_am_i

WAIT_SECONDS = 60


def wait_for(path):
    deadline = time.monotonic() + WAIT_SECONDS
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            sys.exit(f"{controller_name()}: gave up waiting for {path}")
        time.sleep(0.005)


def write(path, text):
    with open(path + ".tmp", "w") as handle:
        handle.write(text)
    os.rename(path + ".tmp", path)


def main(directory, name, rounds, signals):
    env = load_environment(name, directory)
    history.open_store(env)  # connected before the start: the race is on the claim alone
    write(os.path.join(signals, f"ready-{controller_name()}"), "ready")
    for number in range(int(rounds)):
        wait_for(os.path.join(signals, f"go-{number}"))
        outcome = os.path.join(signals, f"{controller_name()}-{number}")
        try:
            with history.claimed(env, "deploy", who_am_i(), controller_name()):
                write(outcome, "won")
                wait_for(os.path.join(signals, f"release-{number}"))
        except ClaimHeld as error:
            write(outcome, f"lost: {error}")
            continue
        write(os.path.join(signals, f"released-{number}"), "released")


if __name__ == "__main__":
    main(*sys.argv[1:])
