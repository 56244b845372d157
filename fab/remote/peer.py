"""Artifacts passed from host to host (fab.transfer), run with the host's python:

    python -c <this file> serve <store> <address> <START-END> <idle seconds> <token> <bytes/s>
        Serves the store's kept files, read only, at /<token>/<sha256>/<name> (never a
        `.part`, nothing outside the store), on the first free port of the range on
        `address`. It detaches (its own session: it outlives the step that started it),
        prints "serving <port> <pid>" and exits once nobody asked for anything for
        <idle seconds>. <bytes/s>: a rate limit per download, 0 for none.
    python -c <this file> fetch <store> <job JSON>
        For each item {"sha256", "name", "size", "sources": [[source, url], ...]} of the
        job, downloads into <store>/<sha256>/<name>.part going on from what the part has
        (HTTP Range), from the first source that answers, the next one if it fails.
        Prints "from <source> <bytes>" per source and "failed <source> <why>" per source
        that failed. What is kept is decided by the caller (peers.sh, receive.sh).

Plain standard library, no imports from the deployer: the host has only python.
"""
import http.client
import http.server
import json
import os
import random
import re
import socket
import sys
import threading
import time
import urllib.error
import urllib.request

CHUNK = 1 << 16
ARTIFACT = re.compile(r"^/([^/]+)/([0-9a-f]{64})/([A-Za-z0-9][A-Za-z0-9._+-]*)$")
READ_TIMEOUT = 15  # seconds to connect, or without a byte, before the next source is tried


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, store, token, rate):
        self.store, self.token, self.rate = os.path.realpath(store), token, rate
        self.busy, self.last_request, self.lock = 0, time.monotonic(), threading.Lock()
        super().__init__(address, Handler, bind_and_activate=True)

    def idle_for(self):
        with self.lock:
            return 0.0 if self.busy else time.monotonic() - self.last_request


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *args):  # stdout and stderr are /dev/null once detached
        pass

    def do_GET(self):  # noqa: N802 - http.server's name
        server = self.server
        with server.lock:
            server.busy += 1
        try:
            self._send()
        finally:
            with server.lock:
                server.busy -= 1
                server.last_request = time.monotonic()

    def _send(self):
        path = self._file()
        if path is None:
            self.send_error(404)
            return
        size = os.path.getsize(path)
        offset = _range_start(self.headers.get("Range"))
        if offset is None or offset > size:
            offset = 0
        self.send_response(206 if offset else 200)
        if offset:
            self.send_header("Content-Range", f"bytes {offset}-{size - 1}/{size}")
        self.send_header("Content-Length", str(size - offset))
        self.end_headers()
        with open(path, "rb") as handle:
            handle.seek(offset)
            started, sent = time.monotonic(), 0
            for block in iter(lambda: handle.read(CHUNK), b""):
                self.wfile.write(block)
                sent += len(block)
                if self.server.rate:
                    time.sleep(max(0.0, sent / self.server.rate - (time.monotonic() - started)))

    def _file(self):
        """The kept artifact the request names, or None: the token must match, the
        digest and name be an artifact's, and the file a regular one in the store."""
        matched = ARTIFACT.match(self.path)
        if not matched or matched.group(1) != self.server.token or matched.group(3).endswith(".part"):
            return None
        path = os.path.join(self.server.store, matched.group(2), matched.group(3))
        real = os.path.realpath(path)
        if real != path or not os.path.isfile(real):
            return None
        return real


def _range_start(header):
    matched = re.match(r"^bytes=(\d+)-$", header or "")
    return int(matched.group(1)) if matched else None


def serve(store, address, ports, idle, token, rate):
    first, last = (int(port) for port in ports.split("-"))
    candidates = list(range(first, last + 1))
    random.shuffle(candidates)  # two servers starting at once rarely try the same port
    for port in candidates:
        try:
            server = Server((address, port), store, token, float(rate))
            break
        except OSError:
            continue
    else:
        print(f"not-serving no free port in {ports} on {address}")
        return
    sys.stdout.flush()
    pid = os.fork()
    if pid:
        print(f"serving {port} {pid}")
        sys.stdout.flush()
        os._exit(0)
    os.setsid()  # out of the step's session, which ends with the step
    null = os.open(os.devnull, os.O_RDWR)
    for stream in (0, 1, 2):
        os.dup2(null, stream)

    def stop_when_idle():
        while server.idle_for() < float(idle):
            time.sleep(0.5)
        server.shutdown()

    threading.Thread(target=stop_when_idle, daemon=True).start()
    server.serve_forever(poll_interval=0.5)
    os._exit(0)


class CannotWrite(Exception):
    """The part cannot be written here (a full disk): no other source would help."""


def fetch(store, job):
    received = {}
    try:
        for item in json.loads(job):
            part = os.path.join(store, item["sha256"], item["name"] + ".part")
            for source, url in item["sources"]:
                try:
                    if _download(url, part, item["size"], received, source):
                        break
                except (OSError, ValueError, http.client.HTTPException) as error:
                    print(f"failed {source} {_why(error)}")
    except CannotWrite as error:
        print(f"{os.path.basename(part)}: cannot write: {_why(error.__cause__)}", file=sys.stderr)
        sys.exit(1)
    finally:
        for source, count in received.items():
            print(f"from {source} {count}")


def _download(url, part, size, received, source):
    """Append what `part` lacks from `url`; True once it holds `size` bytes."""
    have = os.path.getsize(part) if os.path.exists(part) else 0
    if have == size:
        return True
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if 0 < have < size else {})
    with urllib.request.urlopen(request, timeout=READ_TIMEOUT) as response:
        # A part longer than the file is not its start: it starts again, as when the
        # source sends the whole file.
        mode = "ab" if 0 < have < size and response.status == 206 else "wb"
        try:
            os.makedirs(os.path.dirname(part), exist_ok=True)
            target = open(part, mode, buffering=0)  # a full disk fails the write, not a later flush
        except OSError as error:
            raise CannotWrite() from error
        with target:
            for block in iter(lambda: response.read(CHUNK), b""):
                try:
                    target.write(block)
                except OSError as error:
                    raise CannotWrite() from error
                received[source] = received.get(source, 0) + len(block)
    if os.path.getsize(part) != size:
        raise ValueError(f"sent {os.path.getsize(part)} of {size} bytes")
    return True


def _why(error):
    if isinstance(error, urllib.error.URLError) and not isinstance(error, urllib.error.HTTPError):
        error = error.reason
    if isinstance(error, socket.timeout):
        return "timed out"
    return " ".join(str(error).split()) or type(error).__name__


if __name__ == "__main__":
    {"serve": serve, "fetch": fetch}[sys.argv[1]](*sys.argv[2:])
