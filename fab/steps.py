"""Several steps of one host in one round trip.

A deploy's stages are many small steps per host (create the release, export
the code, link the venv, render service configs, check, swap, restart, probe),
and each SSH round trip costs about as much as the step itself. So steps that
follow each other on a host are composed into one remote script: each still
runs in its own subshell under `set -e`, in its own directory, once per release
where it has a marker, and reports its own outcome, duration and note (its last
output line) on a line of its own. The first failure stops the script with that
step's own output, so the deployer reports exactly which step failed and why,
as it would for a step run alone.
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
class Outcome:
    """What one step of a batch did: ok or skipped, its note and its seconds."""

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


def parse(steps, output):
    """([Outcome] of the steps that finished, name of the step that failed or None)."""
    by_name = {step.name: step for step in steps}
    done, failed = [], None
    for line in output.split("\n"):  # only newlines: a note may hold any other byte
        if not line.startswith(REPORT + " "):
            continue
        fields = line.split(" ", 5)
        # Host output: a report line that is not one of ours (too short, another step's
        # name, no times) is not believed, and breaks nothing.
        if len(fields) < 5 or fields[2] not in by_name:
            continue
        outcome, name = fields[1], fields[2]
        try:
            seconds = max(0.0, _seconds(fields[4]) - _seconds(fields[3]))
        except ValueError:
            seconds = 0.0
        last_line = fields[5].strip() if len(fields) > 5 else ""
        if outcome == "failed":
            failed = name
            continue
        step = by_name[name]
        note = "skipped (already done)" if outcome == "skipped" else step.note(last_line)
        done.append(Outcome(name, outcome, note, seconds))
    return done, failed


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
