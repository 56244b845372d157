"""A bounded HTTP load for zero-downtime checks (loopback only).

`Load(url)` sends GET requests from a few threads until stopped, or until it has
sent `max_requests` or run `max_seconds`, whichever comes first. It records every
failure and which version (commit) answered each request.
"""
import collections
import ipaddress
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request


class Load:
    def __init__(self, url, threads=4, max_requests=5000, max_seconds=120, pause=0.005):
        host = urllib.parse.urlparse(url).hostname
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"load tests only target loopback addresses, not {host}")
        self.url = url
        self.threads = threads
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.pause = pause
        self.sent = 0
        self.failures = []
        self.versions = collections.Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers = []

    def _take_ticket(self):
        with self._lock:
            if self.sent >= self.max_requests:
                return False
            self.sent += 1
            return True

    def _run(self, deadline):
        while not self._stop.is_set() and time.monotonic() < deadline and self._take_ticket():
            try:
                with urllib.request.urlopen(self.url, timeout=10) as response:
                    body = response.read()
                    version = json.loads(body).get("commit", "?")[:12] if body.startswith(b"{") else "?"
                    with self._lock:
                        self.versions[version] += 1
            except (urllib.error.URLError, OSError, ValueError) as error:
                with self._lock:
                    self.failures.append(f"{type(error).__name__}: {error}")
            time.sleep(self.pause)

    def start(self):
        deadline = time.monotonic() + self.max_seconds
        self._workers = [threading.Thread(target=self._run, args=(deadline,), daemon=True)
                         for _ in range(self.threads)]
        for worker in self._workers:
            worker.start()
        return self

    def stop(self):
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=30)
        return self

    def wait_for_answer(self, version=None, timeout=60):
        """Poll (bounded) until a request was answered (by `version`, a commit, if given);
        whether it was."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self.versions[version[:12]] if version else self.versions:
                    return True
            if not any(worker.is_alive() for worker in self._workers):
                break
            time.sleep(0.02)
        with self._lock:
            return bool(self.versions[version[:12]] if version else self.versions)

    @property
    def answered(self):
        return sum(self.versions.values())

    def summary(self):
        versions = ", ".join(f"{v}: {n}" for v, n in self.versions.most_common())
        return f"{self.sent} requests, {len(self.failures)} failed; answered by {versions or 'nobody'}"
