"""The sandbox's sample web app: a WSGI app that says which code it runs.

/health   -> "ok"
/version  -> JSON: the commit and the release directory this process loaded
             its code from (resolved at start, so a process still running old
             code after a swap is visible), and its pid.
"""
import json
import os

HERE = os.path.dirname(os.path.realpath(__file__))


def _commit():
    """The deployer writes the release's commit to REVISION."""
    try:
        with open(os.path.join(HERE, "REVISION")) as handle:
            return handle.read().strip()
    except OSError:
        return "unknown"


VERSION = {"commit": _commit(), "release": HERE, "pid": os.getpid()}


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/health":
        status, body, kind = "200 OK", b"ok\n", "text/plain"
    elif path == "/version":
        status, body, kind = "200 OK", json.dumps(VERSION).encode() + b"\n", "application/json"
    elif path == "/":
        status, kind = "200 OK", "text/plain"
        body = f"Hello from the sample app at {VERSION['commit'][:12]}\n".encode()
    else:
        status, body, kind = "404 Not Found", b"not found\n", "text/plain"
    start_response(status, [("Content-Type", kind), ("Content-Length", str(len(body)))])
    return [body]
