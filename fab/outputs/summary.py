"""The machine-readable summary: ONE JSON document per task, written when it ends.

Its shape is `summary.schema.json` beside this file (documented in the README);
the tests validate real deploys against it. Written to stdout (the human output
then goes to stderr, so stdout is pure JSON) or to a file, atomically.
"""
import datetime as dt
import json
import os

from fab import events
from fab.outputs.record import TaskRecord

SCHEMA_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "summary.schema.json")
#: Bumped when a field changes meaning or goes away (adding fields does not).
FORMAT_VERSION = 1


class JsonSummary:
    """Collects a task's events; at TaskFinished writes `document()` to `target`.

    `target` is an open text stream (stdout) or a file path.
    """

    name = "JSON summary"

    def __init__(self, target):
        self.target = target
        self._record = None

    def __call__(self, event):
        self._record = TaskRecord.folded(self._record, event)
        if isinstance(event, events.TaskFinished) and self._record is not None:
            self.write(document(self._record))

    def close(self):
        pass

    def write(self, doc):
        text = json.dumps(doc, indent=2) + "\n"
        if isinstance(self.target, str):
            partial = f"{self.target}.partial"
            with open(partial, "w") as handle:
                handle.write(text)
            os.replace(partial, self.target)
        else:
            self.target.write(text)
            self.target.flush()


def timestamp(at):
    return dt.datetime.fromtimestamp(at, dt.timezone.utc).isoformat(timespec="milliseconds")


def document(record):
    """The summary of one task's run as plain JSON data."""
    started, finished, chosen = record.started, record.finished, record.release
    doc = {
        "format": FORMAT_VERSION,
        "task": started.task,
        "environment": started.environment,
        "arguments": {name: _jsonable(value) for name, value in started.arguments.items()},
        "performer": started.performer,
        "controller": started.controller,
        "outcome": finished.outcome if finished else "unfinished",
        "exit_code": finished.exit_code if finished else None,
        "error": (finished.error or None) if finished else None,
        "started_at": timestamp(started.at),
        "finished_at": timestamp(finished.at) if finished else None,
        "seconds": round(finished.seconds, 3) if finished else None,
        "release": chosen.release if chosen else None,
        "commit": chosen.commit if chosen else None,
        "ref": (chosen.ref or None) if chosen else None,
        "previous_release": chosen.previous if chosen else None,
        "hosts": {host.name: _host(host) for host in record.hosts.values()},
        "stages": [{"at": timestamp(s.at), "text": s.text} for s in record.stages],
        "notes": [{"at": timestamp(n.at), "text": n.text, "host": n.host, "level": n.level}
                  for n in record.notes],
    }
    if record.listing is not None:
        doc["releases"] = record.listing.hosts
        doc["drift"] = record.listing.drift
        doc["unreachable"] = record.listing.unreachable
        doc["wheel_sets"] = record.listing.wheel_sets
    if record.plan is not None:
        doc["plan"] = record.plan.plan
    return doc


def _host(host):
    return {
        "outcome": host.outcome,
        "release": host.release if host.release_known else None,
        "seconds": round(host.seconds, 3),
        "steps": [_step(step) for step in host.steps],
        "received": {"bytes": sum(host.received.values()), "from": dict(sorted(host.received.items()))},
    }


def _step(step):
    data = {
        "step": step.step,
        "outcome": step.outcome or "unfinished",
        "note": step.note,
        "seconds": round(step.seconds, 3),
        "started_at": timestamp(step.started_at),
        "finished_at": timestamp(step.finished_at) if step.finished_at else None,
        "quiet": step.quiet,
    }
    if step.output:
        data["output"] = step.output
    return data


def _jsonable(value):
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
