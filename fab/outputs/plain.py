"""Plain progress lines for CI logs, pipes and anyone who asks: one subscriber of the stream.

Lines are written as they happen (so a log shows a live deploy) and are never
rewritten in place, so a CI log keeps exactly what a terminal showed. Colour
only when the console says so (a terminal, FORCE_COLOR, FAB_COLOR=always).
"""
import re
import time

from rich.console import Console
from rich.control import strip_control_codes

from fab import events
from fab.outputs import tables
from fab.outputs.plan_text import plan_lines, problem_lines
from fab.releases import utcnow


PLAIN_WIDTH = 200


class PlainLines:
    """Turns events into timestamped lines: stages, host steps, failures, notes."""

    name = "plain lines"

    def __init__(self, console=None):
        self.console = console or plain_console()
        self._started = time.monotonic()

    def __call__(self, event):
        texts = self.lines(event)
        if not texts and not isinstance(event, _SHOWN_WHOLE):
            return  # most events (a step started, a routine read): nothing to write or flush
        style = self.style(event)
        for text in texts:
            line = f"[{time.monotonic() - self._started:6.1f}s] {text}"
            if self.console.color_system:
                self.console.print(line, style=style)
            else:  # what rich would write, without its rendering: a line per step per host adds up
                self.console.file.write(strip_control_codes(line).expandtabs(8) + "\n")
        if isinstance(event, events.ReleasesListed):
            # A listing is data, not progress: no timestamps, columns aligned.
            for table in tables.releases_tables(event, utcnow(), styled=False):
                self.console.print(table)
        if isinstance(event, events.PlanMade):
            # So is a plan.
            for text, line_style in plan_lines(event.plan):
                self.console.print(text, style=line_style)
        if isinstance(event, events.HostsChecked):
            for text, line_style in problem_lines(event.problems, event.hosts):
                self.console.print(text, style=line_style)
        self.console.file.flush()

    def close(self):
        pass

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
        if isinstance(event, events.PutBack):
            return [host_line(host, "", f"{events.PUT_BACK} on {release or 'no release'}")
                    for host, release in event.hosts.items()]
        return []

    @staticmethod
    def style(event):
        if isinstance(event, events.Stage):
            return "bold"
        if isinstance(event, events.StepFinished) and event.outcome == events.FAILED:
            return "red"
        if isinstance(event, events.Note) and event.level == "warning":
            return "yellow"
        return None


#: Events shown as data (a listing, a plan, a check's problems), not as progress lines.
_SHOWN_WHOLE = (events.ReleasesListed, events.PlanMade, events.HostsChecked)


def plain_console(file=None, color=None):
    """A console that writes text as given: no wrapping, markup, highlighting or emoji.

    `color`: True forces colour codes, False forbids them, None lets rich decide
    (only at a terminal, or with FORCE_COLOR; never with NO_COLOR). Wide, so a
    table is never squeezed to a pipe's default 80 columns.
    """
    return Console(file=file, force_terminal=True if color else None, no_color=color is False,
                   width=PLAIN_WIDTH, soft_wrap=True, markup=False, highlight=False, emoji=False)


def host_line(host, step, text):
    return f"{host:<10} {step:<12} {text}"


def step_notes(output, step):
    """{host: note} of `step`'s finished lines in plain output (each host's last), the
    way `PlainLines` wrote them: "[   0.9s] web1       virtualenv   reused venv ... (0.2s)"."""
    line = re.compile(rf"^\[[^]]*\] (\S+) +{re.escape(step)} +(.*?)(?: \([\d.]+s\))?$", re.M)
    return dict(line.findall(output))
