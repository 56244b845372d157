"""Health checks after a restart: the port answers, /health is 200, and /version
proves the process serves the release `current` points to.

Runs on: the hosts of roles whose services have a health_check. The requests are
made on the host itself (with the host's python), so they work wherever the
deployer runs; one round trip per host, polling until a timeout.
"""
import json

from fab import shell
from fab.hosts import RemoteCommandFailed

ROLES = "roles with health-checked services"

_PROBE = r"""
import json, sys, time, urllib.request
checks = json.loads(sys.argv[1])
results = []
for check in checks:
    deadline = time.monotonic() + check["timeout"]
    base = "http://%s:%d" % (check["address"], check["port"])
    last = "no answer"
    while True:
        try:
            with urllib.request.urlopen(base + check["path"], timeout=5) as response:
                if response.status == 200:
                    break
                last = "HTTP %d" % response.status
        except Exception as error:
            last = str(error)
        if time.monotonic() > deadline:
            print("%s%s: %s after %ds" % (base, check["path"], last, check["timeout"]), file=sys.stderr)
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
            "version_path": service.health_check.version_path,
            "timeout": service.health_check.timeout,
        }
        for name, service in host.env.services_on(host.name).items()
        if service.health_check
    ]


def check(host, release_name, commit):
    """Wait for every health-checked service on the host; verify the version it serves."""
    checks = checks_for(host)
    if not checks:
        return "no health checks"
    timeout = max(c["timeout"] for c in checks) * len(checks) + 30
    output = host.run(
        shell.command(host.env.python, "-c", _PROBE, json.dumps(checks)), timeout=timeout
    )
    expected_release = host.facts["paths"].release(release_name)
    problems = []
    for result in json.loads(output.strip().splitlines()[-1]):
        problem = version_mismatch(result["version"], commit, expected_release)
        if problem:
            problems.append(f"{result['service']} at {result['url']} {problem}")
    if problems:
        raise RemoteCommandFailed("; ".join(problems))
    return f"healthy at {commit[:12]}"


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
