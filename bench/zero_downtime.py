"""Failed requests through the sandbox's proxy while a deploy, a restart_services
and a rollback run. Goal: 0 failed requests.

    .venv/bin/python bench/zero_downtime.py [--requests N] [--seconds S]

Each phase sends a bounded load (at most N requests, at most S seconds, loopback
only) to http://127.0.0.14:8080/version and prints how many failed and which
commit answered how many.
"""
import argparse
import time

from _common import fab, require_sandbox
from loadgen import Load

PROXY = "http://127.0.0.14:8080/version"


def phase(name, args, requests, seconds):
    # Paced (~100 requests/s) so the load spans the whole task, within the bounds.
    load = Load(PROXY, threads=4, max_requests=requests, max_seconds=seconds, pause=0.04).start()
    time.sleep(0.5)
    took, _ = fab(*args)
    time.sleep(0.5)
    load.stop()
    print(f"{name:<18} {took:5.1f}s  {load.summary()}")
    return len(load.failures)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--seconds", type=int, default=30)
    args = parser.parse_args()
    sandbox = require_sandbox()
    fab("deploy")  # a known starting point
    sandbox.tools.commit_app_change(sandbox.SANDBOX, "BENCH.txt", f"{time.time()}\n", "bench: new commit")
    failed = 0
    failed += phase("deploy", ["deploy"], args.requests, args.seconds)
    failed += phase("restart_services", ["restart_services"], args.requests, args.seconds)
    failed += phase("rollback", ["rollback"], args.requests, args.seconds)
    print(f"total failed requests: {failed}")


if __name__ == "__main__":
    main()
