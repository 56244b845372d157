"""Issue 11's speed targets, each measured on the bench fleets, with whether it holds.

    .venv/bin/python bench/targets.py [--runs 3] [--only NAME ...] [--no-scale] [--stop]

Needs root: brings the bench fleets up (bench/fleets.py; reused when already running).
Every figure is measured here, now: the median of --runs runs of the real `fab`
process (wall clock, start-up included). Targets (names for --only):

    web       one-line change deploy to 5 web hosts (reload, health-checked, through the
              proxy) <= 2.5 s, 0 failed requests through the proxy, proxy serves the new commit
    rollback  rollback of those 5 web hosts <= 2 s (services healthy, previous commit served)
    code      code-only deploy to 5 hosts <= 1.2 s; T(5)/T(1) <= 1.3
    scale     code-only deploy to 50 hosts <= 2 x the 5-host time; SSH connections
              opening at once <= ssh_concurrency (counted in the client)
    nochange  a no-change redeploy: <= 4 remote commands and 1 SSH connection per host
              (counted from each host's sshd log), on code5 and on web5
    list      `fab -l` <= 0.5 s
    cold      cold deploy (first release, venv built) to 5 hosts <= one plain
              `ssh host bash -s` per host doing the same steps (bench/ssh_baseline.sh)
    uv        a deploy whose requirements changed, to 5 hosts: with the environment's uv option
              (the hosts' tools' uv, /opt/fab-sandbox-tools/bin/uv) faster
              than virtualenv + pip; each deploy's output must show the builder it was for

Loops are bounded (runs <= 20, every `fab` run <= 10 minutes, load <= 60 s per phase).
Nothing is stopped unless --stop, and then only the fleets this run started.
"""
import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(PROJECT, "tests"))  # loadgen
sys.path.insert(0, PROJECT)

import fleets  # noqa: E402
from fab import sandbox  # noqa: E402
from fab.settings import Environment  # noqa: E402
from fab.outputs.plain import step_notes  # noqa: E402
from loadgen import Load  # noqa: E402

FAB = os.path.join(PROJECT, ".venv", "bin", "fab")
PYTHON = os.path.join(PROJECT, ".venv", "bin", "python")
TARGETS = ["list", "web", "rollback", "nochange", "code", "scale", "cold", "uv"]
FAB_TIMEOUT = 600


class Failed(Exception):
    """A measured command failed: the target gets an ERROR row, the others go on."""


# --- running fab --------------------------------------------------------------


def environ_for(env_name, spec=None):
    spec = spec or spec_of(env_name)
    return {**os.environ, "CI": "true", "DEPLOY_ENVIRONMENTS": fleets.env_dir(spec),
            "FAB_HISTORY_URL": fleets.history_url(spec)}


def fab(env_name, *args, argv0=None, environ=None, spec=None, output=False, cpu=None):
    """Run `fab <env> <args>` from the project folder; return its wall seconds (and, with
    `output`, what it printed). `spec`: the fleet of an environment file written outside
    fleets.environments(). `cpu`, a list, gets a Cpu of the run appended."""
    command = [*(argv0 or [FAB]), env_name, *args]
    cpu_before = Cpu.now()
    started = time.monotonic()
    try:
        result = subprocess.run(command, cwd=PROJECT, capture_output=True, text=True,
                                env={**environ_for(env_name, spec), **(environ or {})},
                                stdin=subprocess.DEVNULL, timeout=FAB_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise Failed(f"fab {env_name} {' '.join(args)}: still running after {FAB_TIMEOUT}s") from None
    took = time.monotonic() - started
    if cpu is not None:
        cpu.append(Cpu.now() - cpu_before)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-6:]
        raise Failed(f"fab {env_name} {' '.join(args)} exited {result.returncode}: " + " | ".join(tail))
    return (took, result.stdout) if output else took


class Cpu(tuple):
    """(controller, machine) CPU seconds: what `fab` and its own children used, and what
    every process on this machine used, the hosts' sshd and commands included."""

    @classmethod
    def now(cls):
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        with open("/proc/stat") as handle:
            ticks = [int(t) for t in handle.readline().split()[1:]]
        busy = sum(ticks) - ticks[3] - ticks[4]  # all but idle and iowait
        return cls((children.ru_utime + children.ru_stime, busy / os.sysconf("SC_CLK_TCK")))

    def __sub__(self, other):
        return Cpu((self[0] - other[0], self[1] - other[1]))


def spec_of(env_name):
    return fleets.FLEETS[fleets.environments()[env_name][0]]


def hosts_of(env_name):
    roles = fleets.environments()[env_name][1]["roles"]
    return [h for hosts in roles.values() for h in hosts]


def new_commit(spec, what="bench: one-line change"):
    return sandbox.tools.commit_app_change(spec, "BENCH.txt", f"{time.time()}\n", what)


def settle(limit=20):
    """Wait (at most `limit` s) until no more processes are runnable than there are cores,
    so a warm-up's stragglers do not land in the next timed run. Others' load stays."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        with open("/proc/loadavg") as handle:
            runnable = int(handle.read().split()[3].split("/")[0]) - 1  # this reader itself
        if runnable <= os.cpu_count():
            return
        time.sleep(0.5)


def median(values):
    return statistics.median(values)


def spread(values):
    return f"{median(values):.2f}s (min {min(values):.2f}, max {max(values):.2f}, {len(values)} runs)"


# --- what answers -------------------------------------------------------------


def version_at(url):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read()).get("commit", "?")


def web_urls():
    spec = fleets.FLEETS["web5"]
    webs = [h for h in spec.hosts if h.startswith("web")]
    return ([f"http://{spec.hosts[h]}:{fleets.WEB_PORT}/version" for h in webs],
            f"http://{spec.hosts['proxy1']}:{fleets.PROXY_PORT}/version")


def serving(commit, proxy_requests=15):
    """None if every web host and every one of `proxy_requests` proxied requests answer
    `commit`; else what answered instead."""
    hosts, proxy = web_urls()
    wrong = []
    for url in hosts + [proxy] * proxy_requests:
        try:
            answered = version_at(url)
        except OSError as error:
            answered = f"error {error}"
        if answered != commit:
            wrong.append(f"{url.split('//')[1].split('/')[0]} {answered[:12]}")
    if not wrong:
        return None
    return f"{len(set(wrong))} of {len(hosts) + 1} answer otherwise ({', '.join(sorted(set(wrong))[:2])}, ...)"


def under_load(run):
    """run() while a bounded, paced load goes through the proxy; return (its value, load)."""
    _, proxy = web_urls()
    load = Load(proxy, threads=2, max_requests=3000, max_seconds=60, pause=0.02).start()
    time.sleep(0.3)
    try:
        value = run()
    finally:
        time.sleep(0.3)
        load.stop()
    return value, load


# --- sshd logs ----------------------------------------------------------------


def log_offsets(spec, hosts):
    return {h: os.path.getsize(fleets.sshd_log(spec, h)) for h in hosts}


def sessions_since(spec, offsets):
    """{host: (SSH connections, remote commands)} logged since `offsets`."""
    time.sleep(0.3)  # sshd's last lines of a closing connection
    counts = {}
    for host, offset in offsets.items():
        with open(fleets.sshd_log(spec, host), errors="replace") as handle:
            handle.seek(offset)
            text = handle.read()
        counts[host] = (text.count("Accepted publickey"), text.count("Starting session:"))
    return counts


# --- the table ----------------------------------------------------------------


class Table:
    def __init__(self):
        self.rows = []

    def add(self, target, limit, figure, holds):
        verdict = {True: "HOLDS", False: "MISSES"}.get(holds, holds)
        self.rows.append((target, limit, figure, verdict))
        print(f"  -> {target}: {figure} [{verdict}]", flush=True)

    def error(self, target, limit, error):
        self.add(target, limit, f"not measured: {error}", "ERROR")

    def print(self):
        widths = [max(len(str(r[i])) for r in self.rows + [("target", "limit", "figure", "")])
                  for i in range(4)]
        widths[2] = min(widths[2], 90)
        line = "  ".join(f"{{:<{w}}}" for w in widths)
        print()
        print(line.format("target", "limit", "figure", "verdict"))
        print(line.format(*("-" * w for w in widths)))
        for row in self.rows:
            print(line.format(*row))


# --- the measurements -----------------------------------------------------------


def measure_list(table, runs):
    limit = "<= 0.50s"
    times = []
    for _ in range(runs):
        started = time.monotonic()
        result = subprocess.run([FAB, "-l"], cwd=PROJECT, capture_output=True, text=True,
                                stdin=subprocess.DEVNULL, timeout=60)
        times.append(time.monotonic() - started)
        if result.returncode != 0:
            return table.error("fab -l", limit, f"exited {result.returncode}")
    table.add("fab -l", limit, spread(times), median(times) <= 0.5)


def measure_web(table, runs, wanted):
    """Change deploys and rollbacks of web5, interleaved, each under load through the proxy."""
    env, spec = "benchweb5", fleets.FLEETS["web5"]
    fab(env, "deploy")  # a known, healthy start with the newest commit
    settle()
    deploys, rollbacks, failed_deploy, failed_rollback, wrong = [], [], 0, 0, []
    for _ in range(runs):
        before = version_at(web_urls()[1])  # what is live: a rollback goes back to it
        commit = new_commit(spec)
        took, load = under_load(lambda: fab(env, "deploy"))
        deploys.append(took)
        failed_deploy += len(load.failures)
        if (problem := serving(commit)):
            wrong.append(f"after deploy: {problem}")
        if "rollback" in wanted:
            took, load = under_load(lambda: fab(env, "rollback"))
            rollbacks.append(took)
            failed_rollback += len(load.failures)
            if (problem := serving(before)):
                wrong.append(f"after rollback: {problem}")
    if "web" in wanted:
        add_web_rows(table, "change deploy, 5 web hosts (reload, via proxy)", 2.5, deploys, failed_deploy,
                     "deploys", "proxy and every web host serve the new commit", "after deploy", wrong)
    if "rollback" in wanted:
        add_web_rows(table, "rollback, 5 web hosts (healthy, via proxy)", 2.0, rollbacks, failed_rollback,
                     "rollbacks", "everyone serves the previous commit after it", "after rollback", wrong)


def add_web_rows(table, label, limit, times, failed, runs, serving_label, stage, wrong):
    """The rows of one web5 operation: its time, failed requests, and who served what after."""
    problems = [w for w in wrong if w.startswith(stage)]
    table.add(label, f"<= {limit:.2f}s", spread(times), median(times) <= limit)
    table.add(f"  failed requests through the proxy ({runs})", "0", str(failed), failed == 0)
    table.add(f"  {serving_label}", "yes", problems[0] if problems else "yes", not problems)


def measure_nochange(table, env):
    """One no-change redeploy of `env`: the remote commands the deployer ran on each host
    (bench/_count_commands.py: a host's commands share a session, so sshd's log shows
    sessions, not commands), and connections and sessions per host from sshd's logs."""
    spec, hosts = spec_of(env), hosts_of(env)
    fab(env, "deploy")  # whatever was pending is deployed: the next one changes nothing
    settle()
    offsets = log_offsets(spec, hosts)
    with tempfile.TemporaryDirectory() as scratch:
        counted = os.path.join(scratch, "commands.json")
        took = fab(env, "deploy", argv0=[PYTHON, os.path.join(HERE, "_count_commands.py")],
                   environ={"FAB_BENCH_COMMANDS": counted})
        with open(counted) as handle:
            commands = json.load(handle)
    counts = sessions_since(spec, offsets)
    most_connections = max(c for c, _ in counts.values())
    most_commands = max(commands.get(h, 0) for h in hosts)
    busiest = max(hosts, key=lambda h: commands.get(h, 0))
    detail = ", ".join(f"{h} {commands.get(h, 0)}/{n}" for h, (_, n) in counts.items())
    table.add(f"no-change redeploy {env} ({len(hosts)} hosts, {took:.2f}s): commands/host", "<= 4",
              f"max {most_commands} ({busiest}); commands/sessions: {detail}", most_commands <= 4)
    table.add(f"no-change redeploy {env}: SSH connections/host", "<= 1",
              f"max {most_connections}", most_connections <= 1)


def measure_code(table, runs, scale):
    """Code-only change deploys to 1 and 5 hosts (and 50 with scale), interleaved."""
    code5, code50 = fleets.FLEETS["code5"], fleets.FLEETS["code50"]
    for env in ["benchcode1", "benchcode5"] + (["benchcode50"] if scale else []):
        fab(env, "deploy")  # the venv exists: the timed deploys change code only
    settle()
    t1, t5, t50 = [], [], []
    cpu5, cpu50 = [], []
    for run in range(runs):
        new_commit(code5)
        order = [("benchcode1", t1), ("benchcode5", t5)]
        for env, times in order if run % 2 == 0 else reversed(order):
            settle()  # not the tail of the deploy before (50 hosts' sshd exiting)
            times.append(fab(env, "deploy", cpu=cpu5 if env == "benchcode5" else None))
        if scale:
            new_commit(code50)
            settle()
            t50.append(fab("benchcode50", "deploy", cpu=cpu50))
    table.add("code-only change deploy, 5 hosts", "<= 1.20s", spread(t5), median(t5) <= 1.2)
    ratio = median(t5) / median(t1)
    table.add("  T(5)/T(1)", "<= 1.30", f"{ratio:.2f} (T(1) {spread(t1)})", ratio <= 1.3)
    if scale:
        ratio = median(t50) / median(t5)
        table.add("code-only change deploy, 50 hosts / 5 hosts", "<= 2.00",
                  f"{ratio:.2f} (T(50) {spread(t50)})", ratio <= 2.0)
        added = [(median([c[i] for c in cpu50]) - median([c[i] for c in cpu5])) / 45 * 1000 for i in (0, 1)]
        table.add("  context: CPU per host added, 5 -> 50 hosts", "-",
                  f"controller (fab) {added[0]:.0f} ms; whole machine {added[1]:.0f} ms "
                  f"(the hosts' sshd, shells, git, python share these {os.cpu_count()} cores)", "info")
        floor5, floor50 = [], []
        for _ in range(runs):
            floor5.append(ssh_true_everywhere(code50, hosts_of("benchcode50")[:5]))
            floor50.append(ssh_true_everywhere(code50, hosts_of("benchcode50")))
        table.add("  context: plain `ssh host true`, all hosts at once, 50 / 5", "-",
                  f"{median(floor50) / median(floor5):.2f} (T(50) {spread(floor50)}; T(5) {spread(floor5)})",
                  "info")


def ssh_true_everywhere(spec, hosts):
    """Wall seconds of one OpenSSH `ssh host true` per host, all at once: what merely
    reaching the hosts costs on this machine, whose cores the hosts' sshd share."""
    started = time.monotonic()
    processes = [subprocess.Popen(["ssh", "-F", spec.ssh_config, host, "true"], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for host in hosts]
    for host, process in zip(hosts, processes):
        try:
            if process.wait(timeout=120) != 0:
                raise Failed(f"ssh {host} true: {process.stderr.read().decode().strip()}")
        except subprocess.TimeoutExpired:
            process.kill()
            raise Failed(f"ssh {host} true: no answer in 120 s") from None
    return time.monotonic() - started


def measure_openings(table):
    """One code-only change deploy to 50 hosts, counting connections opening at once."""
    limit_setting = Environment.model_fields.get("ssh_concurrency")
    label = "SSH connections opening at once, 50 hosts"
    if limit_setting is None:
        return table.add(label, "bounded", "n/a (no ssh_concurrency setting)", "n/a")
    bound = fleets.environments()["benchcode50"][1].get("ssh_concurrency", limit_setting.default)
    new_commit(fleets.FLEETS["code50"])
    with tempfile.TemporaryDirectory(prefix="fab-bench-") as scratch:
        out = os.path.join(scratch, "opens.json")
        fab("benchcode50", "deploy", argv0=[PYTHON, os.path.join(HERE, "_count_opens.py")],
            environ={"FAB_BENCH_OPENS": out})
        with open(out) as handle:
            counts = json.load(handle)
    table.add(label, f"<= {bound} (ssh_concurrency)",
              f"{counts['most']} at most ({counts['total']} opened in the deploy)", counts["most"] <= bound)


def wipe(spec, hosts, tree):
    """Remove `tree` (under each host user's home) on every host: as root, on the shared disk."""
    for host in hosts:
        path = os.path.join(spec.home(host), tree)
        if not os.path.realpath(path).startswith(spec.root + "/"):
            raise Failed(f"refusing to remove {path}: outside {spec.root}")
        shutil.rmtree(path, ignore_errors=True)


def measure_cold(table, runs):
    env, spec = "benchcold5", fleets.FLEETS["code5"]
    hosts = hosts_of(env)
    baseline = [os.path.join(HERE, "ssh_baseline.sh"), spec.ssh_config, "www/bench-floor",
                spec.app_repo, *hosts]
    project, floor = [], []

    def deploy_project():
        wipe(spec, hosts, f"www/{env}")
        settle()
        project.append(fab(env, "deploy"))

    def deploy_baseline():
        wipe(spec, hosts, "www/bench-floor")
        settle()
        started = time.monotonic()
        result = subprocess.run(baseline, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                                timeout=FAB_TIMEOUT)
        floor.append(time.monotonic() - started)
        if result.returncode != 0:
            raise Failed(f"ssh_baseline.sh exited {result.returncode}: {result.stderr.strip()[-300:]}")

    for run in range(runs):  # interleaved, each going first in turn
        for deploy in (deploy_project, deploy_baseline)[:: 1 if run % 2 == 0 else -1]:
            deploy()
    table.add("cold deploy, 5 hosts (venv built) vs ssh bash -s per host",
              f"<= baseline {median(floor):.2f}s", f"{spread(project)}; baseline {spread(floor)}",
              median(project) <= median(floor))


def builders(output):
    """{host: its virtualenv step's note} in a deploy's output."""
    return step_notes(output, "virtualenv")


def measure_uv(table, runs):
    """Deploys whose requirements changed, with the environment's uv option (the hosts'
    tools' uv) and without it (virtualenv + pip), interleaved; each checked for its builder."""
    label = "venv build when requirements change: uv vs virtualenv+pip (5 hosts)"
    if not os.access(fleets.UV, os.X_OK):
        raise Failed(f"no uv at {fleets.UV} (bench/fleets.py up installs it)")
    spec = fleets.FLEETS["code5"]
    settings = {**fleets.environments()["benchcode5"][1], "code_root": "~/www/benchuv5", "uv": fleets.UV}
    path = os.path.join(fleets.env_dir(spec), "benchuv5.yml")
    with open(path, "w") as handle:
        json.dump(settings, handle, indent=2)
    requirements = os.path.join(spec.app_workdir, "requirements.txt")
    with open(requirements) as handle:
        original = handle.read()
    fab_uv, fab_pip = [], []
    try:
        fab("benchuv5", "deploy", spec=spec)  # its git cache and first release exist (the first fills uv's cache)
        for run in range(runs):
            # A comment changes the requirements' hash, not what they install (offline).
            sandbox.tools.commit_app_change(spec, "requirements.txt", original + f"# bench {time.time()}\n",
                                      "bench: requirements changed")
            for env, times, builder in (("benchcode5", fab_pip, "virtualenv + pip"),
                                        ("benchuv5", fab_uv, "uv"))[:: 1 if run % 2 == 0 else -1]:
                settle()
                took, output = fab(env, "deploy", spec=spec, output=True)
                times.append(took)
                notes = builders(output)
                wrong = {h: n for h, n in notes.items() if not n.endswith(f" with {builder}")}
                if wrong or len(notes) != len(spec.hosts):
                    raise Failed(f"{env} deploy {run + 1}: venv not built with {builder} on every host: "
                                 f"{wrong or notes}")
    finally:
        os.remove(path)
        sandbox.tools.commit_app_change(spec, "requirements.txt", original, "bench: requirements back")
    print(f"   every timed deploy built its venvs with the builder wanted ({len(spec.hosts)} hosts each)")
    table.add(label, "faster", f"uv {spread(fab_uv)}; virtualenv+pip {spread(fab_pip)}",
              median(fab_uv) < median(fab_pip))


# --- main -----------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (median; 1-20)")
    parser.add_argument("--only", nargs="+", choices=TARGETS, help="measure only these targets")
    parser.add_argument("--no-scale", action="store_true", help="skip the 50-host fleet")
    parser.add_argument("--stop", action="store_true", help="stop the fleets this run started, at the end")
    args = parser.parse_args(argv)
    if not 1 <= args.runs <= 20:
        parser.error("--runs must be 1-20")
    if os.geteuid() != 0:
        sys.exit("bench/targets.py needs root (the bench fleets create users and run sshd)")
    wanted = set(args.only or TARGETS) - ({"scale"} if args.no_scale else set())
    needed = set()
    if wanted & {"web", "rollback"} or "nochange" in wanted:
        needed.add("web5")
    if wanted & {"code", "scale", "nochange", "cold", "uv"}:
        needed.add("code5")
    if "scale" in wanted:
        needed.add("code50")
    started_here = [name for name in fleets.FLEETS if name in needed and not fleets.running(name)]
    for name in fleets.FLEETS:
        if name in needed:
            print(f"fleet {name}: {'starting' if name in started_here else 'reusing'}", flush=True)
            fleets.up(name)

    table = Table()
    steps = [
        ("list", "fab -l", lambda: measure_list(table, max(args.runs, 5))),
        ("web", "5 web hosts: change deploy / rollback", lambda: measure_web(table, args.runs, wanted)),
        ("nochange", "no-change redeploy", lambda: [measure_nochange(table, env)
                                                    for env in ("benchcode5", "benchweb5")]),
        ("code", "code-only deploys", lambda: measure_code(table, args.runs, "scale" in wanted)),
        ("scale", "connections opening at once", lambda: measure_openings(table)),
        ("cold", "cold deploy vs baseline", lambda: measure_cold(table, args.runs)),
        ("uv", "uv vs virtualenv+pip", lambda: measure_uv(table, args.runs)),
    ]
    if "rollback" in wanted and "web" not in wanted:
        steps[1] = ("rollback",) + steps[1][1:]
    if "scale" in wanted and "code" not in wanted:
        steps[3] = ("scale",) + steps[3][1:]
    try:
        for key, title, run in steps:
            if key not in wanted:
                continue
            print(f"== {title}", flush=True)
            started = time.monotonic()
            try:
                run()
            except Failed as error:
                table.error(title, "", error)
            print(f"   ({time.monotonic() - started:.0f}s)", flush=True)
    finally:
        table.print()
        if args.stop:
            for name in started_here:
                fleets.down(name)
                print(f"fleet {name}: stopped")
    return 0 if all(row[3] in ("HOLDS", "n/a") for row in table.rows) else 1


if __name__ == "__main__":
    sys.exit(main())
