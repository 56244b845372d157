"""How long the everyday tasks take on the sandbox fleet (4 hosts).

    .venv/bin/python bench/deploy_speed.py [--runs N]

Prints the wall time of: a deploy whose requirements did not change (git cache
fetch, virtualenv reused, rolling restart), setup_release, hotfix_deploy,
rollback, and a read-only `releases` (the floor: one round trip per host).
"""
import argparse
import statistics
import time

from _common import fab, require_sandbox


def measure(label, args, runs, before=None):
    times = []
    for _ in range(runs):
        if before:
            before()
        took, _ = fab(*args)
        times.append(took)
    print(f"{label:<34} median {statistics.median(times):5.2f}s  min {min(times):5.2f}s  max {max(times):5.2f}s  ({runs} runs)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    sandbox = require_sandbox()
    fab("deploy")

    def new_commit():
        sandbox.tools.commit_app_change(sandbox.SANDBOX, "BENCH.txt", f"{time.time()}\n", "bench: new commit")

    measure("releases (read-only)", ["releases"], args.runs)
    measure("deploy, requirements unchanged", ["deploy"], args.runs, before=new_commit)
    measure("setup_release (no swap)", ["setup_release"], args.runs)
    measure("hotfix_deploy", ["hotfix_deploy"], args.runs, before=new_commit)
    measure("rollback", ["rollback"], 1)
    fab("deploy")
    fab("clean_releases")


if __name__ == "__main__":
    main()
