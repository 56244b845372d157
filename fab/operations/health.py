"""Health checks after a restart: the port accepts connections, the health path
answers 200 (with the expected body), and /version proves the process serves the
release `current` points to.

Runs on: the hosts of roles whose services have a health_check. The requests are
made on the host itself by fab/remote/probe.py (with the host's python), so they
work wherever the deployer runs; one round trip per host, retrying fast until
each check's timeout.
"""
import json

from fab import shell
from fab.steps import Step

ROLES = "roles with health-checked services"


def checks_for(host, ports=()):
    """The host's checks; `ports` ((service, port), ...) where a service listens
    elsewhere than its setting says (a release rendered before a port changed)."""
    listening = dict(ports)
    return [
        {
            "service": name,
            "address": host.address,
            "port": listening.get(name, service.port),
            "path": service.health_check.path,
            "expect_body": service.health_check.expect_body,
            "version_path": service.health_check.version_path,
            "timeout": service.health_check.timeout,
            "max_server_errors": service.health_check.max_server_errors,
        }
        for name, service in host.env.topology.services_on(host.name).items()
        if service.health_check
    ]


def check_step(host, release_name=None, commit=None, patience=None, ports=()):
    """Step: wait for every health-checked service on the host; with a release,
    each version endpoint must report it and its commit (retried as long as the
    check's timeout: old workers may answer for a moment after a reload).
    `patience` (seconds) replaces each check's own timeout, e.g. for a quick recheck."""
    expected = {"release": host.paths.release(release_name), "commit": commit} if release_name else {}
    checks = [{**c, **expected, **({"timeout": patience} if patience is not None else {})}
              for c in checks_for(host, ports)]
    verified = bool(release_name and any(c["version_path"] for c in checks))

    def note(_):
        return f"healthy, serving {commit[:12]}" if verified else "healthy"

    body = shell.command(host.env.python, "-c", shell.remote_script("probe.py"), json.dumps(checks))
    return Step("health", body if checks else "echo 'no health checks'", then=note if checks else None)


def check(host, release_name=None, commit=None, patience=None, ports=()):
    """Run `check_step` alone; returns its note."""
    step = check_step(host, release_name, commit, patience, ports)
    waits = [patience if patience is not None else c["timeout"] for c in checks_for(host)]
    return host.run_steps([step], timeout=sum(waits) + 30)[0].note
