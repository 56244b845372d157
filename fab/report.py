"""Progress lines for people and CI logs: one plain line per host and step.

Lines are written as they happen (so a log shows a live deploy) and are never
rewritten in place, so a CI log keeps exactly what a terminal showed.
"""
import sys
import threading
import time


class Reporter:
    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self._lock = threading.Lock()
        self._started = time.monotonic()

    def line(self, text):
        with self._lock:
            elapsed = time.monotonic() - self._started
            self.stream.write(f"[{elapsed:6.1f}s] {text}\n")
            self.stream.flush()

    def host(self, host, step, text):
        self.line(f"{host:<10} {step:<12} {text}")

    def stage(self, text):
        self.line(f"== {text}")


#: The reporter tasks and the runner share; tests may swap its stream.
reporter = Reporter()
