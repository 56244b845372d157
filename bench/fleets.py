"""The bench fleets: local sshd hosts (fab.sandbox machinery) sized for issue 11's targets.

    .venv/bin/python bench/fleets.py up|down|destroy|status [web5|code5|code50|all]
    .venv/bin/python bench/fleets.py env <environment>      # print an environment file

Needs root. Loopback only, clear of the sandbox (/srv/fab-sandbox, 127.0.0.11-14) and the
test fleets (/srv/fab-test-fleet*, 127.0.<run>.21-24):

    web5    web1..web5 (gunicorn `web`, restart: reload) + proxy1 (nginx balancing them)
            127.0.50.101-106, /srv/fab-bench-web5, users fabbench-web5-*
    code5   host1..host5, no services, no supervisord (code + virtualenv + `current` only)
            127.0.51.101-105, /srv/fab-bench-code5, users fabbench-code5-*
    code50  host1..host50, the same shape, 127.0.52.101-150, /srv/fab-bench-code50

Every sshd logs at LogLevel VERBOSE, so a bench can count SSH connections
("Accepted publickey") and remote commands ("Starting session:") per host.

`up` also installs the bench-only host tools (bench/requirements-bench.txt: uv, pinned) from
PyPI into /opt/fab-bench-tools, once, readable by every host user: UV is its uv binary.

Environments (written on `up` into <root>/deploy/environments/, used through
DEPLOY_ENVIRONMENTS; each has its own code_root on the hosts):

    benchweb5     web5: webworkers web1..web5, proxy proxy1; rollout canary 1, batch 4
    benchcode1    code5's host1 only (for T(5)/T(1))
    benchcode5    code5: host1..host5
    benchcold5    code5: host1..host5, a tree the bench wipes before each cold deploy
    benchcode50   code50: host1..host50
"""
import argparse
import glob
import json
import os
import pwd
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)
sys.path.insert(0, PROJECT)

from fab import sandbox  # noqa: E402
from fab.sandbox import FleetSpec  # noqa: E402

SSH_PORT = sandbox.SSH_PORT
LOG_LEVEL = "VERBOSE"
BENCH_TOOLS = "/opt/fab-bench-tools"
BENCH_REQUIREMENTS = os.path.join(HERE, "requirements-bench.txt")
UV = os.path.join(BENCH_TOOLS, "bin", "uv")


def _spec(name, hosts, supervisord):
    return FleetSpec(root=f"/srv/fab-bench-{name}", user_prefix=f"fabbench-{name}", hosts=hosts,
                     supervisord=supervisord, sshd_log_level=LOG_LEVEL)


FLEETS = {
    "web5": _spec("web5", {**{f"web{i}": f"127.0.50.{100 + i}" for i in range(1, 6)},
                           "proxy1": "127.0.50.106"}, supervisord=True),
    "code5": _spec("code5", {f"host{i}": f"127.0.51.{100 + i}" for i in range(1, 6)}, supervisord=False),
    "code50": _spec("code50", {f"host{i}": f"127.0.52.{100 + i}" for i in range(1, 51)}, supervisord=False),
}

WEB_PORT = 8000
PROXY_PORT = 8080


def env_dir(spec):
    return os.path.join(spec.root, "deploy", "environments")


def history_url(spec):
    """Each fleet's deploys are recorded in its own SQLite file, never the user's."""
    return f"sqlite:///{os.path.join(spec.root, 'history.sqlite')}"


def _common(spec, name):
    return {
        "app": {"repo": spec.app_repo, "branch": "main"},
        "code_root": f"~/www/{name}",
        "ssh_config": spec.ssh_config,
        "python": sandbox.SYSTEM_PYTHON,
        "virtualenv": f"{sandbox.TOOLS}/bin/virtualenv",
        "requirements": ["requirements.txt"],
        "pip_args": ["--no-index", "--find-links", sandbox.WHEELHOUSE],
        "keep_releases": 3,
    }


def web_environment(spec, name):
    webs = [h for h in spec.hosts if h.startswith("web")]
    return {
        **_common(spec, name),
        "roles": {"webworkers": webs, "proxy": ["proxy1"]},
        "supervisorctl": f"{sandbox.TOOLS}/bin/supervisorctl -c ~/supervisor/supervisord.conf",
        "services": {
            "web": {
                "role": "webworkers",
                "template": "supervisor/gunicorn.conf.j2",
                "port": WEB_PORT,
                "workers": 1,  # 5 hosts on 2 cores
                "restart": "reload",
                "health_check": {"path": "/health", "version_path": "/version", "timeout": 30},
            },
            "proxy": {
                "role": "proxy",
                "control": "port",
                "port": PROXY_PORT,
                "template": "nginx/proxy.conf.j2",
                "balances": "web",
                "before": "mkdir -p {shared}/proxy/tmp && /usr/sbin/nginx -t -q -c {conf} -e {log}/{program}-error.log",
                "start": "/usr/sbin/nginx -c {conf} -e {log}/{program}-error.log",
                "reload": "kill -HUP {pid}",
                "health_check": {"path": "/health", "timeout": 30},
            },
        },
        # The canary alone, then the other four (never every balanced host at once).
        "rollout": {"canary": 1, "batch": len(webs) - 1, "failure_limit": 0, "canary_watch": 0},
    }


def code_environment(spec, name, hosts):
    return {**_common(spec, name), "roles": {"app": list(hosts)}}


def environments():
    """{environment name: (fleet name, settings)}."""
    web5, code5, code50 = FLEETS["web5"], FLEETS["code5"], FLEETS["code50"]
    return {
        "benchweb5": ("web5", web_environment(web5, "benchweb5")),
        "benchcode1": ("code5", code_environment(code5, "benchcode1", list(code5.hosts)[:1])),
        "benchcode5": ("code5", code_environment(code5, "benchcode5", code5.hosts)),
        "benchcold5": ("code5", code_environment(code5, "benchcold5", code5.hosts)),
        "benchcode50": ("code50", code_environment(code50, "benchcode50", code50.hosts)),
    }


def write_environments(fleet):
    spec = FLEETS[fleet]
    os.makedirs(env_dir(spec), exist_ok=True)
    for name, (owner, settings) in environments().items():
        if owner == fleet:
            with open(os.path.join(env_dir(spec), f"{name}.yml"), "w") as handle:
                handle.write(f"# written by bench/fleets.py for the bench fleet {fleet}\n")
                json.dump(settings, handle, indent=2)  # JSON is YAML


def sshd_log(spec, host):
    return os.path.join(spec.host_dir(host), "sshd", "sshd.log")


def running(fleet):
    spec = FLEETS[fleet]
    if not os.path.exists(spec.state_file):
        return False
    with open(spec.state_file) as handle:
        state = json.load(handle)
    pids = [pid for info in state["hosts"].values()
            for key, pid in info.items() if key.endswith("_pid")]
    return len(state["hosts"]) == len(spec.hosts) and all(sandbox.alive(pid) for pid in pids)


def ensure_bench_tools():
    """The bench hosts' own tools (uv), pinned, in a venv every host user can run; installed
    from PyPI once per version of bench/requirements-bench.txt."""
    marker = os.path.join(BENCH_TOOLS, ".installed-" + sandbox.file_digest(BENCH_REQUIREMENTS))
    if os.path.exists(marker):
        return
    print(f"bench: installing the bench tools into {BENCH_TOOLS}", flush=True)
    if not os.path.exists(os.path.join(BENCH_TOOLS, "bin", "python")):
        sandbox.sh(sandbox.SYSTEM_PYTHON, "-m", "venv", BENCH_TOOLS)
    sandbox.sh(os.path.join(BENCH_TOOLS, "bin", "pip"), "install", "-q", "-r", BENCH_REQUIREMENTS)
    sandbox.sh("chmod", "-R", "a+rX", BENCH_TOOLS)
    open(marker, "w").close()


def up(fleet):
    """Start the fleet (idempotent), install the bench tools and write its environment files."""
    spec = FLEETS[fleet]
    state = sandbox.up(spec)
    ensure_bench_tools()
    write_environments(fleet)
    return state


def stop_proxies(fleet):
    """Stop the nginx the deploys started on the fleet's hosts (it daemonizes, so no
    supervisord stops it): by the pid in its pidfile, when that process is the host user's."""
    spec = FLEETS[fleet]
    for host in spec.hosts:
        uid = pwd.getpwnam(spec.user(host)).pw_uid if _user_exists(spec.user(host)) else None
        for pidfile in glob.glob(os.path.join(spec.home(host), "www", "*", "shared", "proxy", "*.pid")):
            pid = sandbox.read_pid(pidfile)
            if uid is not None and pid and sandbox.alive(pid) and _owner(pid) == uid:
                sandbox.stop_pid(pid, f"nginx of {host}", grace=10)


def _user_exists(user):
    try:
        pwd.getpwnam(user)
        return True
    except KeyError:
        return False


def _owner(pid):
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def down(fleet):
    stop_proxies(fleet)
    sandbox.down(FLEETS[fleet])


def destroy(fleet):
    stop_proxies(fleet)
    sandbox.destroy(FLEETS[fleet])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=["up", "down", "destroy", "status", "env"])
    parser.add_argument("name", nargs="?", default="all",
                        help="a fleet (web5, code5, code50, all) or, for env, an environment")
    args = parser.parse_args(argv)
    if args.action == "env":
        known = environments()
        if args.name not in known:
            sys.exit(f"unknown environment {args.name!r} (known: {', '.join(known)})")
        print(json.dumps(known[args.name][1], indent=2))
        return 0
    names = list(FLEETS) if args.name == "all" else [args.name]
    for name in names:
        if name not in FLEETS:
            sys.exit(f"unknown fleet {name!r} (fleets: {', '.join(FLEETS)}, all)")
    for name in names:
        spec = FLEETS[name]
        if args.action == "up":
            up(name)
            print(f"{name}: up, {len(spec.hosts)} hosts; ssh config {spec.ssh_config}; "
                  f"environments in {env_dir(spec)}")
        elif args.action == "down":
            down(name)
            print(f"{name}: stopped")
        elif args.action == "destroy":
            destroy(name)
            print(f"{name}: destroyed")
        else:
            print(f"{name}: {'running' if running(name) else 'not running'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
