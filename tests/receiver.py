"""A webhook receiver on loopback for the notification tests: a threaded http.server
that keeps what it was sent, and can answer slowly (`delay`) or with an error (`status`)."""
import contextlib
import http.server
import json
import threading
import time


class Receiver:
    """What a receiver was POSTed: `received` holds (path, headers, JSON body) in order."""

    def __init__(self, status=200, delay=0.0):
        self.status = status
        self.delay = delay
        self.received = []
        self.attempts = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.attempts += 1
                if receiver.delay:
                    receiver._stop.wait(receiver.delay)  # a receiver that hangs (until the test ends)
                if receiver.status == 200:
                    with receiver._lock:
                        receiver.received.append((self.path, dict(self.headers), json.loads(data)))
                try:
                    self.send_response(receiver.status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender gave up waiting

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def events(self):
        return [body.get("event") for _, _, body in self.received]

    def wait_for(self, count, timeout=10):
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.received


@contextlib.contextmanager
def receiving(status=200, delay=0.0):
    """A Receiver serving for the duration of the block, stopped after even on failure."""
    receiver = Receiver(status, delay)
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver._stop.set()
        receiver.server.shutdown()
        receiver.server.server_close()
        thread.join(timeout=10)
