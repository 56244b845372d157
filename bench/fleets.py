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
    code200 host1..host200, the same shape, 127.0.53.101-200 and 127.0.54.101-200,
            /srv/fab-bench-code200 (bench/build_once.py's scale figures)

Every sshd logs at LogLevel VERBOSE, so a bench can count SSH connections
("Accepted publickey") and remote commands ("Starting session:") per host.

The hosts' tools are the sandbox's (fab/builtin/sandbox-hosts-requirements.txt, in
/opt/fab-sandbox-tools): supervisord, virtualenv and uv (UV, for the `uv` target).

Environments (written on `up` into <root>/deploy/environments/, used through
DEPLOY_ENVIRONMENTS; each has its own code_root on the hosts):

    benchweb5     web5: webworkers web1..web5, proxy proxy1; rollout canary 1, batch 4
    benchcode1    code5's host1 only (for T(5)/T(1))
    benchcode5    code5: host1..host5
    benchcold5    code5: host1..host5, a tree the bench wipes before each cold deploy
    benchcode50   code50: host1..host50
"""
import argparse
import json
import os
import sys

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, PROJECT)

from fab import sandbox  # noqa: E402
from fab.sandbox import FleetSpec  # noqa: E402

SSH_PORT = sandbox.daemons.SSH_PORT
LOG_LEVEL = "VERBOSE"
UV = os.path.join(sandbox.tools.TOOLS, "bin", "uv")


def _spec(name, hosts, supervisord):
    return FleetSpec(root=f"/srv/fab-bench-{name}", user_prefix=f"fabbench-{name}", hosts=hosts,
                     supervisord=supervisord, sshd_log_level=LOG_LEVEL)


FLEETS = {
    "web5": _spec("web5", {**{f"web{i}": f"127.0.50.{100 + i}" for i in range(1, 6)},
                           "proxy1": "127.0.50.106"}, supervisord=True),
    "code5": _spec("code5", {f"host{i}": f"127.0.51.{100 + i}" for i in range(1, 6)}, supervisord=False),
    "code50": _spec("code50", {f"host{i}": f"127.0.52.{100 + i}" for i in range(1, 51)}, supervisord=False),
    "code200": _spec("code200", {f"host{i}": f"127.0.{53 + (i - 1) // 100}.{101 + (i - 1) % 100}"
                                 for i in range(1, 201)}, supervisord=False),
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
        "python": sandbox.tools.SYSTEM_PYTHON,
        "virtualenv": f"{sandbox.tools.TOOLS}/bin/virtualenv",
        "requirements": ["requirements.txt"],
        "pip_args": ["--no-index", "--find-links", sandbox.tools.WHEELHOUSE],
        "keep_releases": 3,
    }


def web_environment(spec, name):
    webs = [h for h in spec.hosts if h.startswith("web")]
    return {
        **_common(spec, name),
        "roles": {"webworkers": webs, "proxy": ["proxy1"]},
        "supervisorctl": f"{sandbox.tools.TOOLS}/bin/supervisorctl -c ~/supervisor/supervisord.conf",
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
    return len(state["hosts"]) == len(spec.hosts) and all(
        sandbox.daemons.recorded_daemon(spec, host, info, key)
        for host, info in state["hosts"].items() for key in info if key.endswith("_pid"))


def up(fleet):
    """Start the fleet (idempotent), write its environment files, and bring its history
    store (kept between runs) to this deployer's schema."""
    spec = FLEETS[fleet]
    state = sandbox.up(spec)
    write_environments(fleet)
    from fab.history.store import upgrade_store

    upgrade_store(history_url(spec))
    return state


def down(fleet):
    sandbox.down(FLEETS[fleet])


def destroy(fleet):
    sandbox.destroy(FLEETS[fleet])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=["up", "down", "destroy", "status", "env"])
    parser.add_argument("name", nargs="?", default="all",
                        help="a fleet (web5, code5, code50, code200, all) or, for env, an environment")
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
