"""Health checks after a restart: the port accepts connections, the health path
answers 200 (with the expected body), and /version proves the process serves the
release `current` points to.

Runs on: the hosts of roles whose services have a health_check. The requests are
made on the host itself (with the host's python), so they work wherever the
deployer runs; one round trip per host, retrying until each check's timeout.
"""
import json

from fab import shell
from fab.hosts import RemoteCommandFailed

ROLES = "roles with health-checked services"

_PROBE = r"""
import json, socket, sys, time, urllib.request

def attempt(check, base):
    with socket.create_connection((check["address"], check["port"]), timeout=5):
        pass
    if not check["path"]:
        return None
    with urllib.request.urlopen(base + check["path"], timeout=5) as response:
        body = response.read().decode(errors="replace")
        if response.status != 200:
            return "HTTP %d" % response.status
    if check["expect_body"] and check["expect_body"] not in body:
        return "body lacks %r" % check["expect_body"]
    return None

results = []
for check in json.loads(sys.argv[1]):
    base = "http://%s:%d" % (check["address"], check["port"])
    deadline = time.monotonic() + check["timeout"]
    while True:
        try:
            problem = attempt(check, base)
        except Exception as error:
            problem = str(error) or type(error).__name__
        if problem is None:
            break
        if time.monotonic() > deadline:
            print("%s%s: %s after %ds" % (base, check["path"] or "", problem, check["timeout"]), file=sys.stderr)
            sys.exit(1)
        time.sleep(0.2)
    version = None
    if check["version_path"]:
        with urllib.request.urlopen(base + check["version_path"], timeout=5) as response:
            version = json.loads(response.read().decode())
    results.append({"service": check["service"], "url": base, "version": version})
print(json.dumps(results))
"""


def checks_for(host):
    return [
        {
            "service": name,
            "address": host.address,
            "port": service.port,
            "path": service.health_check.path,
            "expect_body": service.health_check.expect_body,
            "version_path": service.health_check.version_path,
            "timeout": service.health_check.timeout,
        }
        for name, service in host.env.services_on(host.name).items()
        if service.health_check
    ]


def check(host, release_name=None, commit=None, patience=None):
    """Wait for every health-checked service on the host; if a release is given,
    verify that each version endpoint reports it and its commit. `patience`
    (seconds) replaces each check's own timeout, e.g. for a quick recheck."""
    checks = checks_for(host)
    if patience is not None:
        checks = [{**c, "timeout": patience} for c in checks]
    if not checks:
        return "no health checks"
    timeout = sum(c["timeout"] for c in checks) + 30
    output = host.run(shell.command(host.env.python, "-c", _PROBE, json.dumps(checks)), timeout=timeout)
    results = json.loads(output.strip().splitlines()[-1])
    problems = []
    if release_name:
        expected_release = host.paths.release(release_name)
        for result in results:
            problem = version_mismatch(result["version"], commit, expected_release)
            if problem:
                problems.append(f"{result['service']} at {result['url']} {problem}")
    if problems:
        raise RemoteCommandFailed("; ".join(problems))
    verified = release_name and any(r["version"] for r in results)
    return f"healthy, serving {commit[:12]}" if verified else "healthy"


def version_mismatch(reported, commit, release_path):
    """Why a /version answer is not the expected commit and release, or None."""
    if reported is None:
        return None
    problems = []
    if reported.get("commit") != commit:
        problems.append(f"serves commit {str(reported.get('commit'))[:12]}, expected {commit[:12]}")
    if reported.get("release") and reported["release"] != release_path:
        problems.append(f"runs from {reported['release']}, expected {release_path}")
    return " and ".join(problems) or None
