"""A tiny port-controlled daemon (pbdeploy style): no pidfile, found by its port.

    python portd.py ADDRESS PORT CURRENT_DIR

Answers every GET with JSON: its pid, how many times it was reloaded (SIGHUP),
and the REVISION it read from CURRENT_DIR (a path through the `current` symlink,
read again on every reload, so a reload picks up a new release).
"""
import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

state = {"reloads": 0, "revision": None}


def load(current):
    try:
        with open(os.path.join(current, "REVISION")) as handle:
            state["revision"] = handle.read().strip()
    except OSError:
        state["revision"] = None


def main(address, port, current):
    load(current)

    def on_hup(signum, frame):
        state["reloads"] += 1
        load(current)

    signal.signal(signal.SIGHUP, on_hup)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"pid": os.getpid(), **state}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    ThreadingHTTPServer((address, int(port)), Handler).serve_forever()


if __name__ == "__main__":
    main(*sys.argv[1:4])
