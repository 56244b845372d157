"""Several steps of one host in one round trip.

A deploy's stages are many small steps per host (create the release, export
the code, link the venv, render service configs, check, swap, restart, probe),
and each SSH round trip costs about as much as the step itself. So steps that
follow each other on a host are composed into one remote script: each still
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
    its last stdout line becomes the step's note, through `then` if given (which
    may also record what the line says). With `marker`, the step runs once per
    release: skipped if the marker exists, which is created when it succeeds.
    """

    name: str
    body: str
    cwd: Optional[str] = None
    marker: Optional[str] = None
    then: Optional[Callable[[str], str]] = None

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


def compose(steps):
    """The remote script running `steps` in order, stopping at the first failure."""
    parts = [_PRELUDE]
    for step in steps:
        if not _NAME.match(step.name):
            raise ValueError(f"step name {step.name!r} must be a lowercase word")
        run = (_RUN.replace("@NAME@", step.name).replace("@CWD@", shell.quote(step.cwd or "~"))
               .replace("@TOUCH@", f": > {shell.quote(step.marker)}" if step.marker else ":")
               .replace("@BODY@", step.body))
        if step.marker:
            run = f"if [ -e {shell.quote(step.marker)} ]; then fab_report skipped {step.name} 0 0 ''\nelse\n{run}\nfi"
        parts.append(run)
    return "\n".join(parts)


_NAME = re.compile(r"^[a-z][a-z_]*$")

# Each step's output goes to files; only its last line travels back, on the
# step's report line (carriage returns dropped, so it stays one line). On a
# failure, the step's own output goes to stderr and the batch exits with the
# step's status. Per step the batch starts one process (the step's subshell):
# on a 50-host fleet every fork costs, so times, notes and markers use builtins.
_PRELUDE = r"""
fab_dir=$(mktemp -d "${TMPDIR:-/tmp}/fab-steps.XXXXXX") || exit 1
trap 'rm -rf "$fab_dir"' EXIT
fab_report() { printf '@@fab-step %s %s %s %s %s\n' "$1" "$2" "$3" "$4" "${5//$'\r'/}"; }
fab_last_line() {
  fab_note=
  local fab_lines
  mapfile -t fab_lines < "$1"
  if [ "${#fab_lines[@]}" -gt 0 ]; then fab_note=${fab_lines[-1]}; fi
}
"""

_RUN = r"""fab_started=${EPOCHREALTIME:-$(date +%s.%N)}
fab_report started @NAME@ "$fab_started" "$fab_started" ''
( set -e; cd @CWD@
@BODY@
) >"$fab_dir/out" 2>"$fab_dir/err" </dev/null
fab_status=$?
fab_ended=${EPOCHREALTIME:-$(date +%s.%N)}
if [ "$fab_status" -ne 0 ]; then
  fab_report failed @NAME@ "$fab_started" "$fab_ended" ''
  cat "$fab_dir/out" "$fab_dir/err" >&2
  exit "$fab_status"
fi
@TOUCH@
fab_last_line "$fab_dir/out"
fab_report ok @NAME@ "$fab_started" "$fab_ended" "$fab_note"
"""


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
        note = "skipped (already done)" if skipped else self._steps[name].note(last_line)
        outcome = Outcome(name, "skipped" if skipped else "ok", note, seconds)
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
