"""Plain progress lines for people and CI logs: one subscriber of the event stream.

Lines are written as they happen (so a log shows a live deploy) and are never
rewritten in place, so a CI log keeps exactly what a terminal showed.
"""
import sys
import time

from fab import events


class PlainLines:
    """Turns events into timestamped lines: stages, host steps, failures, notes."""

    name = "plain lines"

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self._started = time.monotonic()

    def __call__(self, event):
        for text in self.lines(event):
            elapsed = time.monotonic() - self._started
            self.stream.write(f"[{elapsed:6.1f}s] {text}\n")
        self.stream.flush()

    @staticmethod
    def lines(event):
        if isinstance(event, events.Stage):
            return [f"== {event.text}"]
        if isinstance(event, events.StepFinished):
            if event.outcome == events.FAILED:
                details = [f"| {line}" for line in event.output.splitlines()[-15:]]
                return [host_line(event.host, event.step, text)
                        for text in details + [f"FAILED: {event.note}"]]
            if event.quiet:
                return []
            return [host_line(event.host, event.step, f"{event.note or 'ok'} ({event.seconds:.1f}s)")]
        if isinstance(event, events.Note):
            text = f"warning: {event.text}" if event.level == "warning" else event.text
            return [host_line(event.host, "", text) if event.host else text]
        return []


def host_line(host, step, text):
    return f"{host:<10} {step:<12} {text}"
