"""What the controller uploads to deliver one artifact to N hosts, and how long it takes:
with peers (fab.transfer's default: the controller sends one copy, hosts pass it on)
beside without (`transfer: {peers: false}`: the controller sends to every host).

    .venv/bin/python bench/transfer.py [--hosts 5 50] [--mb 20] [--stop]

Needs root: brings the bench fleets up (bench/fleets.py: code5 for 5 hosts, code50 for
50; reused when already running). Each figure is one `transfer.deliver` of a new random
artifact (every host lacks it), run in this process over the fleet's environment
(benchcode5, benchcode50), the artifact removed from the hosts' stores afterwards.
Target (issue 19): with peers, the controller's bytes <= 1.5 x the artifact, whatever N.
Nothing is stopped unless --stop, and then only the fleets this run started.
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import fleets  # noqa: E402
from fab import config, shell, transfer  # noqa: E402
from fab.opening import open_fleet  # noqa: E402
from fab.settings.build import TransferSettings  # noqa: E402

FLEET_OF = {5: ("code5", "benchcode5"), 50: ("code50", "benchcode50")}


def deliver_once(env, size, peers):
    """(controller bytes, seconds, {source: bytes} over every host) of one delivery."""
    env = env.model_copy(update={"transfer": TransferSettings(**{**env.transfer.model_dump(), "peers": peers})})
    work = tempfile.mkdtemp(prefix="fab-bench-transfer-")
    try:
        path = os.path.join(work, "bench-1.0-py3-none-any.whl")
        with open(path, "wb") as handle:
            handle.write(os.urandom(size))
        artifact = transfer.artifact(path)
        with open_fleet(env) as fleet:
            started = time.monotonic()
            received = transfer.deliver(fleet, {name: [artifact] for name in fleet.names})
            seconds = time.monotonic() - started
            fleet.each("clean", lambda host: host.run(shell.command(
                "rm", "-rf", os.path.dirname(host.paths.stored(artifact.sha256, artifact.name)))), quiet=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sources = {}
    for got in received.values():
        assert got.bytes == size, got
        for source, count in got.sources.items():
            sources[source] = sources.get(source, 0) + count
    return sources.get(transfer.CONTROLLER, 0), seconds, sources


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", nargs="+", type=int, default=[5, 50], choices=sorted(FLEET_OF))
    parser.add_argument("--mb", type=float, default=20.0, help="the artifact's size in MB (0.1-200)")
    parser.add_argument("--stop", action="store_true", help="stop the fleets this run started, at the end")
    args = parser.parse_args(argv)
    if not 0.1 <= args.mb <= 200:
        parser.error("--mb must be 0.1-200")
    if os.geteuid() != 0:
        sys.exit("bench/transfer.py needs root (the bench fleets create users and run sshd)")
    size = int(args.mb * 1_000_000)
    needed = [FLEET_OF[n][0] for n in args.hosts]
    started_here = [name for name in needed if not fleets.running(name)]
    rows = []
    try:
        for n in args.hosts:
            fleet_name, env_name = FLEET_OF[n]
            print(f"fleet {fleet_name}: {'starting' if fleet_name in started_here else 'reusing'}", flush=True)
            fleets.up(fleet_name)
            env = config.load_environment(env_name, fleets.env_dir(fleets.FLEETS[fleet_name]))
            for peers in (True, False):
                controller, seconds, sources = deliver_once(env, size, peers)
                peer_hosts = len(set(sources) - {transfer.CONTROLLER})
                rows.append((n, "peers" if peers else "controller only", controller / size, seconds, peer_hosts))
                print(f"   {n} hosts, {rows[-1][1]}: controller sent {controller / 1e6:.1f} MB "
                      f"({rows[-1][2]:.2f} x the artifact) in {seconds:.2f}s", flush=True)
    finally:
        print(f"\none artifact of {size / 1e6:.1f} MB to every host (one run each)")
        print(f"{'hosts':>5}  {'way':<16} {'controller sent':>16} {'seconds':>8}  hosts that served")
        for n, way, copies, seconds, served in rows:
            print(f"{n:>5}  {way:<16} {copies:>13.2f} x  {seconds:>8.2f}  {served}")
        if args.stop:
            for name in started_here:
                fleets.down(name)
                print(f"fleet {name}: stopped")
    peers_rows = [row for row in rows if row[1] == "peers"]
    return 0 if all(copies <= 1.5 for _, _, copies, _, _ in peers_rows) else 1


if __name__ == "__main__":
    sys.exit(main())
