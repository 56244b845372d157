"""Issue 19's figures: building once (`app.fetch: controller`, `wheels.build: once`)
beside today's way (`app.fetch: hosts`, `wheels.build: each_host`: every host fetches
the code and installs from the index itself), on the bench fleets.

    .venv/bin/python bench/build_once.py [--ways today once] [--only bump cold scale] [--hosts 5 50]
                                         [--scale 50 200] [--scale-ways once] [--stop]

Needs root: brings up the bench fleets code5, code50 and (for scale) code200
(bench/fleets.py; reused when already running). One run of each figure, each the
wall clock of the real `fab` process. Both ways deploy the same commits of one
repository (/srv/fab-bench-build-once/app.git, readable by the hosts) from one
loopback PEP 503 index (tests/package_index.py) serving the sample app's wheels and
`fabdemo-b`, a 1 MB wheel in versions 1.0, 1.1, ...; each way has its own
environments and code roots. Targets, for the build-once way:

    bump   a deploy whose requirements change by one package (fabdemo-b bumped), to 5
           and 50 hosts: 50 hosts <= 2 x 5 hosts; the bytes a host receives (the new
           files in its store) <= 1.2 x the new wheel's size
    cold   a cold deploy (the hosts' code roots and pip/uv caches wiped) to 5 and 50
           hosts; the bytes the controller sends for the 50 (counted by an iptables
           rule on root's packets to the fleet's sshd port) <= 3 x what one host needs
           (the files in its store)
    scale  a code-only change deploy to 50 and 200 hosts (the median of SCALE_DEPLOYS
           changes) over plain OpenSSH `ssh host true` to the same hosts at once (the
           median of 3): <= 1.3 at both; the deployer's own CPU (fab and its children,
           the median of the same deploys) per host added from 50 to 200: <= 12 ms

Today's way gets the same rows as context ("info"); scale measures the build-once way
only unless --scale-ways says otherwise (today's way first deploys 200 hosts cold, each
building its venv from the index: many minutes on 2 cores). A way the deployer does not know
yet (its settings are refused) gets ERROR rows; on a deployer with no such settings,
today's way is the deployer as it is. Nothing is stopped unless --stop, and then only
the fleets this run started; the iptables rule is removed whatever happens.
"""
import argparse
import contextlib
import glob
import json
import os
import shutil
import subprocess
import sys

# bench/targets.py (first: it puts the project and tests/ on the path): the table,
# running fab, the fleets' helpers.
from targets import Cpu, Failed, Table, fab, median, settle, ssh_true_everywhere, wipe

import fleets
from fab import sandbox
from fab import settings as schema
from package_index import PackageIndex, make_wheel, serving

ROOT = "/srv/fab-bench-build-once"
WAYS = {
    "today": {"fetch": "hosts", "wheels": {"build": "each_host"}},
    "once": {"fetch": "controller", "wheels": {"build": "once"}},
}
FIGURES = ["bump", "cold", "scale"]
PACKAGE, WHEEL_PAYLOAD = "fabdemo-b", 1 << 20
#: Code-only changes deployed to each fleet for scale, each figure the median of them:
#: one deploy's time and CPU move by 15-30% from run to run on this machine.
SCALE_DEPLOYS = 3
COUNTED = "fab-bench-build-once"  # the iptables rule's comment


# --- the repository and the index ------------------------------------------------------


class Source:
    """The bench's own repository (a copy of the sample app) and the index's wheelhouse."""

    def __init__(self):
        self.repo, self.work = os.path.join(ROOT, "app.git"), os.path.join(ROOT, "work")
        self.wheelhouse = os.path.join(ROOT, "wheelhouse")
        self.version = 0
        shutil.rmtree(ROOT, ignore_errors=True)
        os.makedirs(self.wheelhouse)
        for wheel in glob.glob(os.path.join(sandbox.tools.WHEELHOUSE, "*.whl")):
            shutil.copy(wheel, self.wheelhouse)
        spec = fleets.FLEETS["code5"]
        sandbox.tools.git("clone", "-q", "--bare", spec.app_repo, self.repo)
        sandbox.tools.git("clone", "-q", self.repo, self.work)
        self.requirements(bump=False)

    def wheel(self, version):
        return os.path.join(self.wheelhouse, f"fabdemo_b-1.{version}-py3-none-any.whl")

    def requirements(self, bump=True):
        """Commit requirements with fabdemo-b one version up (its wheel made now)."""
        self.version += bump
        if not os.path.exists(self.wheel(self.version)):
            make_wheel(self.wheelhouse, PACKAGE, f"1.{self.version}", payload=os.urandom(WHEEL_PAYLOAD))
        return self.commit("requirements.txt", f"gunicorn==23.0.0\n{PACKAGE}==1.{self.version}\n")

    def commit(self, path, content, message="bench: build once"):
        with open(os.path.join(self.work, path), "w") as handle:
            handle.write(content)
        for args in (("add", path), ("commit", "-q", "-m", message), ("push", "-q", "origin", "main")):
            sandbox.tools.git(*args, cwd=self.work)
        subprocess.run(["chmod", "-R", "a+rX", ROOT], check=True)  # today's way: the hosts fetch it


def environment(source, index, fleet, way):
    """Write the environment `bo<way><hosts>` of `way` on `fleet`; its name."""
    spec = fleets.FLEETS[fleet]
    name = f"bo{way}{len(spec.hosts)}"
    settings = fleets.code_environment(spec, name, spec.hosts)
    # Today's way leaves out a setting the deployer does not know yet (it works that way).
    fetch = way == "once" or "fetch" in schema.AppConfig.model_fields
    settings["app"] = {"repo": source.repo, "branch": "main", **({"fetch": WAYS[way]["fetch"]} if fetch else {})}
    if way == "once" or "wheels" in schema.Environment.model_fields:
        settings["wheels"] = WAYS[way]["wheels"]
    settings["pip_args"] = ["--index-url", index.url]
    settings["uv"] = fleets.UV  # both ways: a venv from local wheels is then cheap on each host
    os.makedirs(fleets.env_dir(spec), exist_ok=True)
    with open(os.path.join(fleets.env_dir(spec), f"{name}.yml"), "w") as handle:
        json.dump(settings, handle, indent=2)
    return name


# --- what is counted ------------------------------------------------------------------


@contextlib.contextmanager
def counting_sent(spec):
    """A function giving the bytes root's processes (the controller) sent to the fleet's
    sshd ports since the block started: an iptables rule with no target only counts."""
    nets = sorted({address.rsplit(".", 1)[0] + ".0/24" for address in spec.hosts.values()})
    rules = [["OUTPUT", "-p", "tcp", "-d", net, "--dport", str(fleets.SSH_PORT), "-m", "owner", "--uid-owner", "0",
              "-m", "comment", "--comment", COUNTED] for net in nets]
    added = []
    try:
        for rule in rules:
            subprocess.run(["iptables", "-A", *rule], check=True, capture_output=True)
            added.append(rule)
        yield lambda: sum(int(line.split()[1]) for line in subprocess.run(
            ["iptables", "-L", "OUTPUT", "-v", "-x", "-n"], capture_output=True, text=True, check=True
        ).stdout.splitlines() if f"/* {COUNTED} */" in line)
    finally:
        for rule in added:
            subprocess.run(["iptables", "-D", *rule], capture_output=True)


def store_bytes(spec, env_name):
    """{host: bytes of the complete files in its store}."""
    found = {}
    for host in spec.hosts:
        files = glob.glob(os.path.join(spec.home(host), "www", env_name, "store", "*", "*"))
        found[host] = sum(os.path.getsize(f) for f in files if not f.endswith(".part"))
    return found


def wipe_hosts(spec, env_name):
    """A cold start: the environment's code root and the hosts' pip and uv caches gone."""
    wipe(spec, spec.hosts, f"www/{env_name}")
    for cache in (".cache/pip", ".cache/uv", ".cache/virtualenv"):
        wipe(spec, spec.hosts, cache)


def mb(count):
    return f"{count / (1 << 20):.2f} MB"


# --- the figures ------------------------------------------------------------------------


def measure_cold_and_bump(table, source, index, ways, figures, fleet_names):
    times = {}  # (figure, way, hosts) -> seconds
    for fleet in fleet_names:
        spec = fleets.FLEETS[fleet]
        n = len(spec.hosts)
        source.requirements()
        for way in ways:
            env = environment(source, index, fleet, way)
            try:
                wipe_hosts(spec, env)
                settle()
                with counting_sent(spec) as sent:
                    times["cold", way, n] = fab(env, "deploy", spec=spec)
                    sent_cold = sent()
                one_host = max(store_bytes(spec, env).values())
                if n == 50 and "cold" in figures:
                    bytes_row(table, way, f"controller's bytes, cold deploy to 50 hosts (needs {mb(one_host)} "
                              "per host)", "<= 3 x one host's", sent_cold, one_host and sent_cold / one_host, 3)
            except Failed as error:
                table.error(f"cold deploy to {n} hosts, {way}", "-", error)
                continue
        source.requirements()
        for way in ways:
            env, wheel = f"bo{way}{n}", os.path.getsize(source.wheel(source.version))
            try:
                before = store_bytes(spec, env)
                settle()
                with counting_sent(spec) as sent:
                    times["bump", way, n] = fab(env, "deploy", spec=spec)
                    sent_bump = sent()
                received = max(after - before[h] for h, after in store_bytes(spec, env).items())
                if "bump" in figures:
                    table.add(f"controller's bytes, bump to {n} hosts, {way}", "-", mb(sent_bump), "info")
                    if way == "once":  # today's way: each host downloads from the index, not counted here
                        bytes_row(table, way, f"bytes a host receives, bump to {n} hosts (wheel {mb(wheel)})",
                                  "<= 1.2 x the wheel", received, received / wheel, 1.2)
            except Failed as error:
                table.error(f"requirements bump to {n} hosts, {way}", "-", error)
    for figure, label in (("cold", "cold deploy"), ("bump", "requirements bump (one package)")):
        for way in (ways if figure in figures else ()):
            five, fifty = times.get((figure, way, 5)), times.get((figure, way, 50))
            if five is None and fifty is None:
                continue
            shown = " / ".join(f"{n} hosts {t:.2f}s" for n, t in ((5, five), (50, fifty)) if t is not None)
            if five is None or fifty is None:
                table.add(f"{label}, {way}", "-", shown, "info")
                continue
            limit = "<= 2 x 5 hosts" if figure == "bump" and way == "once" else "-"
            holds = fifty <= 2 * five if limit != "-" else "info"
            table.add(f"{label}, {way}", limit, f"{shown} ({fifty / five:.2f} x)", holds)


def bytes_row(table, way, label, limit, count, ratio, bound):
    holds = ratio <= bound if way == "once" else "info"
    table.add(f"{label}, {way}", limit if way == "once" else "-", f"{mb(count)} ({ratio:.2f} x)", holds)


def measure_scale(table, source, index, ways, sizes):
    """Code-only change deploys to each of `sizes` (two fleet sizes: 50 and 200) hosts,
    each over `ssh host true` to all of them at once, and the CPU every process of this
    machine used for each (the hosts' sshd and commands are most of it: both are bound
    by these 2 cores); the controller's CPU per host added."""
    small, big = sorted(sizes)
    for way in ways:
        envs = {fleet: environment(source, index, fleet, way) for fleet in (f"code{small}", f"code{big}")}
        try:
            for fleet, env in envs.items():  # up to date first (a cold deploy where new)
                fab(env, "deploy", spec=fleets.FLEETS[fleet])
            deploys = {fleet: [] for fleet in envs}  # [(seconds, Cpu)], one per change
            for _ in range(SCALE_DEPLOYS):
                source.commit("BENCH.txt", f"{os.urandom(8).hex()}\n", "bench: code only")
                for fleet, env in envs.items():
                    settle()
                    used = []
                    deploys[fleet].append((fab(env, "deploy", spec=fleets.FLEETS[fleet], cpu=used), used[0]))
            ratios, cpus, machine = {}, {}, {}
            for fleet, env in envs.items():
                spec = fleets.FLEETS[fleet]
                settle()
                floors, reaching = [], []
                for _ in range(3):
                    before = Cpu.now()
                    floors.append(ssh_true_everywhere(spec, list(spec.hosts)))
                    reaching.append((Cpu.now() - before)[1])
                n = len(spec.hosts)
                ratios[n] = (median([took for took, _ in deploys[fleet]]), median(floors))
                cpus[n] = median([cpu[0] for _, cpu in deploys[fleet]])  # Cpu: (controller, machine)
                machine[n] = (median([cpu[1] for _, cpu in deploys[fleet]]), median(reaching))
        except Failed as error:
            table.error(f"code-only change to {small} and {big} hosts, {way}", "-", error)
            continue
        for n, (took, floor) in ratios.items():
            table.add(f"code-only deploy / ssh true, {n} hosts, {way}", "<= 1.3" if way == "once" else "-",
                      f"{took:.2f}s / {floor:.2f}s = {took / floor:.2f}",
                      took / floor <= 1.3 if way == "once" else "info")
            deploying, reaching = machine[n]
            table.add(f"the machine's CPU (every process), code-only deploy / ssh true, {n} hosts, {way}", "-",
                      f"{deploying:.2f}s / {reaching:.2f}s = {deploying / reaching:.2f}", "info")
        per_host = (cpus[big] - cpus[small]) / (big - small) * 1000
        table.add(f"deployer's CPU per host added, {small} -> {big}, {way}", "<= 12 ms" if way == "once" else "-",
                  f"{per_host:.1f} ms ({cpus[small]:.2f}s -> {cpus[big]:.2f}s)",
                  per_host <= 12 if way == "once" else "info")


# --- main -----------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ways", nargs="+", choices=list(WAYS), default=list(WAYS), help="which ways to run")
    parser.add_argument("--only", nargs="+", choices=FIGURES, help="measure only these figures")
    parser.add_argument("--hosts", nargs="+", type=int, choices=[5, 50], default=[5, 50],
                        help="fleet sizes for bump and cold (a quick look: --hosts 5)")
    parser.add_argument("--scale", nargs=2, type=int, choices=[5, 50, 200], default=[50, 200],
                        help="the two fleet sizes of scale (a quick look: --scale 5 50)")
    parser.add_argument("--scale-ways", nargs="+", choices=list(WAYS), default=["once"],
                        help="the ways scale measures (today's way first deploys 200 hosts cold from the index)")
    parser.add_argument("--stop", action="store_true", help="stop the fleets this run started, at the end")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("bench/build_once.py needs root (the bench fleets create users and run sshd; iptables counts)")
    if shutil.which("iptables") is None:
        sys.exit("bench/build_once.py counts bytes with iptables: install it (scripts/bootstrap.sh does)")
    figures = set(args.only or FIGURES)
    os.environ.pop("PIP_FIND_LINKS", None)  # this machine's wheels: the index is the only source
    sized = [f"code{n}" for n in sorted(set(args.hosts))]
    if len(set(args.scale)) != 2:
        parser.error("--scale takes two different sizes")
    needed = sized * bool(figures & {"bump", "cold"}) + [f"code{n}" for n in sorted(args.scale)] * ("scale" in figures)
    needed = list(dict.fromkeys(needed))
    started = [name for name in needed if not fleets.running(name)]
    table = Table()
    try:
        for name in needed:
            print(f"bringing up {name} ({len(fleets.FLEETS[name].hosts)} hosts)", flush=True)
            fleets.up(name)
        source = Source()
        with serving(PackageIndex(source.wheelhouse)) as index:
            if figures & {"bump", "cold"}:
                measure_cold_and_bump(table, source, index, args.ways, figures, sized)
            if "scale" in figures:
                measure_scale(table, source, index, args.scale_ways, args.scale)
    finally:
        if args.stop:
            for name in started:
                fleets.down(name)
    table.print()
    return 0 if all(row[3] != "MISSES" for row in table.rows) else 1


if __name__ == "__main__":
    sys.exit(main())
