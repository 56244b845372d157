"""Several steps of one host in one round trip.

A deploy's stages are many small steps per host (create the release, export
the code, link the venv, render service configs, check, swap, restart, probe),
and each SSH round trip costs about as much as the step itself. So steps that
follow each other on a host run in one remote script (fab/remote/batch.sh): each still
runs in its own subshell under `set -e`, in its own directory, once per release
where it has a marker, and reports on lines of its own that it started, then its
outcome, duration and note (its last output line). The report lines are read as
they arrive (`Reader`), so a step is shown as it runs on its host, with the times
the host measured. The first failure stops the script with that step's own
output, so the deployer reports exactly which step failed and why, as it would
for a step run alone.
"""
import dataclasses
import re
from typing import Callable, Optional

from fab import shell

#: Prefix of the lines the composed script reports its steps on.
REPORT = "@@fab-step"


@dataclasses.dataclass(frozen=True)
class Step:
    """One step of a host's batch.

    `body` is shell run under `set -e` in `cwd` (default: the home directory);
    its last stdout line becomes the step's note, through `then` if given, and with
    `result` its structured result (what the line says, as data: None if it cannot
    be read; an event, fab.events.Event, is published as the step ends). With
    `marker`, the step runs once per release: skipped if the marker exists, which
    is created when it succeeds.
    """

    name: str
    body: str
    cwd: Optional[str] = None
    marker: Optional[str] = None
    then: Optional[Callable[[str], str]] = None
    result: Optional[Callable[[str], object]] = None

    def note(self, last_line):
        if self.then is not None:
            return self.then(last_line)
        return last_line or "done"


@dataclasses.dataclass(frozen=True)
class Started:
    """A step of the batch began on its host."""

    step: str


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one step of a batch did: ok, skipped or failed, its note and the seconds
    it took on its host."""

    step: str
    outcome: str
    note: str
    seconds: float
    #: What the step's `result` read from its last line (None: skipped, failed or no result).
    result: object = None


def arguments(steps):
    """fab/remote/batch.sh's arguments that run `steps` in order, stopping at the first
    failure (batch.sh says how each step runs and reports)."""
    args = []
    for step in steps:
        if not _NAME.match(step.name):
            raise ValueError(f"step name {step.name!r} must be a lowercase word")
        args += [step.name, step.cwd or "", step.marker or "", step.body]
    return args


def on_host(steps):
    """(script, arguments) that run `steps` on a host: what Host.run_steps sends."""
    return shell.remote_script("batch"), arguments(steps)


def compose(steps):
    """The one-line command running `steps` as a host does (a local bash can run it)."""
    return shell.script_command("batch", *arguments(steps))


_NAME = re.compile(r"^[a-z][a-z_]*$")


class Reader:
    """Reads a batch's output as it arrives, in pieces of any size (a file-like object:
    Fabric writes the host's stdout into it), and hands each report to
    `on_report(report)` as soon as its line is whole: Started, then an Outcome.

    Host output: a report line that is not one of ours (too short, another step's
    name, no times) is not believed, and breaks nothing. A report of the host's that
    `on_report` (or a step's `then`) cannot take is raised by `close`, not into the
    thread that writes.
    """

    def __init__(self, steps, on_report=None):
        self._steps = {step.name: step for step in steps}
        self._on_report = on_report or (lambda report: None)
        self._partial = ""
        self._error = None
        #: The Outcomes of the steps that ended well (ok or skipped), in order.
        self.done = []
        #: The Outcome of the step the host said failed, if it said so.
        self.failed = None
        #: The name of the step begun and not ended, if any (the one a cut stops).
        self.running = None

    def write(self, text):
        # Only newlines end a line: a note may hold any other byte.
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            self._line(line)
        return len(text)

    def flush(self):
        pass

    def close(self):
        """The output ended: read its last line, even without a newline."""
        partial, self._partial = self._partial, ""
        if partial:
            self._line(partial)
        if self._error is not None:
            raise self._error

    def _line(self, line):
        if self._error is not None or not line.startswith(REPORT + " "):
            return
        try:
            report = self._report(line.split(" ", 5))
            if report is not None:
                self._on_report(report)
        except Exception as error:  # noqa: BLE001 - raised by close, in the caller's thread
            self._error = error

    def _report(self, fields):
        if len(fields) < 5 or fields[2] not in self._steps:
            return None
        kind, name = fields[1], fields[2]
        if kind == "started":
            self.running = name
            return Started(name)
        try:
            seconds = max(0.0, _seconds(fields[4]) - _seconds(fields[3]))
        except ValueError:
            seconds = 0.0
        self.running = None
        if kind == "failed":
            self.failed = Outcome(name, kind, "", seconds)
            return self.failed
        last_line = fields[5].strip() if len(fields) > 5 else ""
        skipped = kind == "skipped"
        step = self._steps[name]
        note = "skipped (already done)" if skipped else step.note(last_line)
        result = step.result(last_line) if step.result and not skipped else None
        outcome = Outcome(name, "skipped" if skipped else "ok", note, seconds, result)
        self.done.append(outcome)
        return outcome


def parse(steps, output):
    """([Outcome] of the steps that finished, name of the step that failed or None)
    from a batch's whole output."""
    reader = Reader(steps)
    reader.write(output)
    reader.close()
    return reader.done, reader.failed.step if reader.failed else None


def without_reports(output):
    """`output` without the batch's report lines (what a user reads of a cut batch)."""
    return "\n".join(line for line in output.split("\n") if not line.startswith(REPORT + " "))


def _seconds(stamp):
    """A time the batch printed: bash's EPOCHREALTIME uses the locale's decimal mark."""
    return float(stamp.replace(",", "."))


@dataclasses.dataclass(frozen=True)
class Reporting:
    """A one-line remote command (a fab/remote script and its arguments) that prints
    what it did as one line on stdout, and how that line reads in a note
    (`describe`; "" says nothing)."""

    command: str
    describe: Callable[[str], str]


def reporting_step(name, commands, nothing):
    """Step: run `commands` (Reporting) in order, stopping at the first that fails;
    its note says what each did, joined by "; " (`nothing` if none says anything).

    Their result lines travel on the step's last line, one per command, tab-joined."""
    if not commands:
        return Step(name, shell.command("echo", nothing))
    body = ("fab_results=$(" + " &&\n".join(c.command for c in commands) + ")\n"
            """printf '%s\\n' "${fab_results//$'\\n'/$'\\t'}\"""")

    def note(line):
        said = [c.describe(result) for c, result in zip(commands, line.split("\t"))]
        return "; ".join(text for text in said if text) or nothing

    return Step(name, body, then=note)
