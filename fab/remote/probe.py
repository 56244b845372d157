"""Health probe, run on a host with its own python: `python -c <this file> <checks JSON>`.

Each check (a service's health_check, with the host's address and the service's
port) must: accept a connection on the port, answer 200 on its path (with the
expected body), and, with a version path and an expected release, report that
release and commit: after a graceful reload old workers may answer for a moment,
so a mismatch is retried like any other problem until the check's timeout.
Polls fast at first (tens of milliseconds), then backs off. Prints one JSON line
of results; exits 1 with one line saying what is wrong.

Plain standard library, no imports from the deployer: the host has only python.
"""
import json
import socket
import sys
import time
import urllib.request


def mismatch(reported, commit, release):
    """Why a version answer is not the expected commit and release, or None.

    The contract (README, "The /version contract"): JSON with `commit`, the full
    commit id, and optionally `release`, the release's name or its absolute path
    (`release` is the path; an app may say either)."""
    if reported is None or commit is None:
        return None
    problems = []
    if reported.get("commit") != commit:
        problems.append(f"serves commit {str(reported.get('commit'))[:12]}, expected {commit[:12]}")
    said = reported.get("release")
    if said and release and str(said).rstrip("/") not in (release, release.rstrip("/").rsplit("/", 1)[-1]):
        problems.append(f"runs from {said}, expected {release} (or its name)")
    return " and ".join(problems) or None


def attempt(check, base):
    """(problem or None, version answer or None) of one try."""
    with socket.create_connection((check["address"], check["port"]), timeout=5):
        pass
    if check["path"]:
        with urllib.request.urlopen(base + check["path"], timeout=5) as response:
            body = response.read().decode(errors="replace")
            if response.status != 200:
                return "HTTP %d" % response.status, None
        if check["expect_body"] and check["expect_body"] not in body:
            return "body lacks %r" % check["expect_body"], None
    if not check["version_path"]:
        return None, None
    with urllib.request.urlopen(base + check["version_path"], timeout=5) as response:
        version = json.loads(response.read().decode())
    return mismatch(version, check.get("commit"), check.get("release")), version


def probe(check):
    base = "http://%s:%d" % (check["address"], check["port"])
    deadline = time.monotonic() + check["timeout"]
    pause = 0.02
    while True:
        try:
            problem, version = attempt(check, base)
        except Exception as error:  # noqa: BLE001 - any failure is retried until the deadline
            problem, version = str(error) or type(error).__name__, None
        if problem is None:
            return {"service": check["service"], "url": base, "version": version}
        if time.monotonic() > deadline:
            path = check["version_path"] if version is not None else (check["path"] or "")
            print("%s%s %s after %gs" % (base, path, problem, check["timeout"]), file=sys.stderr)
            sys.exit(1)
        time.sleep(pause)
        pause = min(pause * 1.5, 0.5)


if __name__ == "__main__":
    print(json.dumps([probe(check) for check in json.loads(sys.argv[1])]))
