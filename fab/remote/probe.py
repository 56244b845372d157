"""Health probe, run on a host with its own python: `python -c <this file> <checks JSON>`.

Each check (a service's health_check, with the host's address and the service's
port) must: accept a connection on the port, answer 200 on its path (with the
expected body), and, with a version path and an expected release, report that
release and commit: after a graceful reload old workers may answer for a moment,
so a mismatch is retried like any other problem until the check's timeout.
Only a server error (HTTP 5xx) answered `max_server_errors` times in a row
fails at once: the app runs and keeps failing (a refused connection, an app
still starting, waits). Polls fast at first (tens of milliseconds), then backs
off. Prints one JSON line of results; exits 1 with one line saying what is wrong.

Plain standard library, no imports from the deployer: the host has only python.
"""
import json
import socket
import sys
import time
import urllib.error
import urllib.request


def mismatch(reported, commit, release):
    """Why a version answer is not the expected commit and release, or None."""
    if reported is None or commit is None:
        return None
    problems = []
    if reported.get("commit") != commit:
        problems.append(f"serves commit {str(reported.get('commit'))[:12]}, expected {commit[:12]}")
    if reported.get("release") and release and reported["release"] != release:
        problems.append(f"runs from {reported['release']}, expected {release}")
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


def server_errors_in_a_row(count, error):
    """How many server errors in a row after a try that raised `error` (None: none)."""
    server_error = isinstance(error, urllib.error.HTTPError) and error.code >= 500
    return count + 1 if server_error else 0


def probe(check):
    base = "http://%s:%d" % (check["address"], check["port"])
    started = time.monotonic()
    deadline = started + check["timeout"]
    limit = check.get("max_server_errors") or 0
    pause = 0.02
    in_a_row = 0
    while True:
        error = None
        try:
            problem, version = attempt(check, base)
        except Exception as failure:  # noqa: BLE001 - any failure is retried until the deadline
            error = failure
            problem, version = str(failure) or type(failure).__name__, None
        if problem is None:
            return {"service": check["service"], "url": base, "version": version}
        in_a_row = server_errors_in_a_row(in_a_row, error)
        path = check["version_path"] if version is not None else (check["path"] or "")
        if limit and in_a_row >= limit:
            print("%s %s, %d times in a row, after %.1fs" % (
                error.filename, problem, in_a_row, time.monotonic() - started), file=sys.stderr)
            sys.exit(1)
        if time.monotonic() > deadline:
            print("%s%s %s after %gs" % (base, path, problem, check["timeout"]), file=sys.stderr)
            sys.exit(1)
        time.sleep(pause)
        pause = min(pause * 1.5, 0.5)


if __name__ == "__main__":
    print(json.dumps([probe(check) for check in json.loads(sys.argv[1])]))
