"""The live per-host view for a person at a terminal: one subscriber of the stream.

While a task works on hosts, a table redraws in place (rich's Live): one row
per host with the step it is in, a spinner and the seconds it has been running,
or how its last step ended. Stage headers, failures (host, step and the step's
last output lines) and warnings are printed above the table and stay on screen.
At the end the table makes way for a summary: host, release, commit, outcome,
seconds.

Publishing must stay cheap: the stream calls subscribers one at a time under
its lock, so `__call__` only folds the event into the record; rich's refresh
thread draws the table a few times a second from that record. Nothing is
printed while this view's own lock is held, so the refresh thread (which takes
rich's locks, then ours) can never deadlock with a publisher.
"""
import threading
import time

from rich.console import Group
from rich.live import Live
from rich.panel import Panel
from rich.rule import Rule
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from fab import events
from fab.outputs import tables
from fab.outputs.plan_text import plan_lines
from fab.outputs.record import TaskRecord
from fab.releases import utcnow

#: Redraws per second: enough for a spinner to look alive, cheap on a deploy.
REFRESH_PER_SECOND = 4
#: How many of a failed step's last output lines are shown.
FAILURE_LINES = 12

SYMBOLS = {events.OK: ("✓", "green"), events.SKIPPED: ("↷", "dim"), events.FAILED: ("✗", "bold red")}


class LiveView:
    """Live per-host progress on a rich Console, and the summary table at the end."""

    name = "live view"

    def __init__(self, console, refresh_per_second=REFRESH_PER_SECOND):
        self.console = console
        self.refresh_per_second = refresh_per_second
        self._lock = threading.Lock()
        self._record = None
        self._live = None
        self._spinners = {}

    def __call__(self, event):
        with self._lock:
            if isinstance(event, events.TaskStarted):
                self._record = TaskRecord(event)
                self._spinners = {}
            elif self._record is None:
                return  # an event outside any task (not expected): nothing to show it in
            self._record.apply(event)
            record = self._record
        # Printing and starting or stopping Live happen outside our lock (see the module doc).
        if isinstance(event, events.StepStarted) and self._live is None:
            self._start()
        for renderable in self.printed(event):
            self.console.print(renderable)
        if isinstance(event, events.TaskFinished):
            self.close()
            if record.worked:
                self.console.print(tables.summary_table(record))

    def close(self):
        """Take the live table off the screen (it is transient)."""
        live, self._live = self._live, None
        if live is not None:
            live.stop()

    def _start(self):
        self._live = Live(console=self.console, get_renderable=self.table, transient=True,
                          refresh_per_second=self.refresh_per_second)
        self._live.start()

    # -- what is drawn -----------------------------------------------------------

    def table(self):
        """The live table: one row per host, as of now."""
        now = time.time()
        with self._lock:
            record = self._record
            if record is None:
                return Text("")
            heading = f"{record.task} {record.started.environment}"
            if record.release:
                heading += f" · release {record.release.release} ({record.release.commit[:12]})"
            heading += f" · {now - record.started.at:.0f}s"
            table = Table(show_edge=False, pad_edge=False, header_style="bold")
            for column in ("host", "step", "", "time", "note"):
                table.add_column(column, no_wrap=column != "note", overflow="ellipsis",
                                 justify="right" if column == "time" else "left")
            for host in record.hosts.values():
                table.add_row(*self._row(host, now))
        return Group(Text(heading, style="bold"), table)

    def _row(self, host, now):
        name = Text(host.name, style="bold red" if host.failed_step else "")
        running = host.current_step
        if running is not None:
            spinner = self._spinners.setdefault(host.name, Spinner("dots", style="cyan"))
            return name, Text(running.step), spinner, f"{now - running.started_at:.1f}s", ""
        last = host.last_step
        if last is None:
            return name, Text("waiting", style="dim"), "", "", ""
        symbol, style = SYMBOLS.get(last.outcome, ("?", ""))
        return (name, Text(last.step), Text(symbol, style=style), f"{last.seconds:.1f}s",
                Text(last.note, style=style if last.outcome == events.FAILED else ""))

    @staticmethod
    def printed(event):
        """What stays on screen above the live table for this event."""
        if isinstance(event, events.Stage):
            return [Rule(Text(event.text, style="bold"), align="left", style="blue")]
        if isinstance(event, events.StepFinished) and event.outcome == events.FAILED:
            heading = Text(f"✗ {event.host}  {event.step} failed: {event.note}", style="bold red")
            lines = event.output.splitlines()[-FAILURE_LINES:]
            if not lines:
                return [heading]
            return [Panel(Text("\n".join(lines)), title=heading, title_align="left",
                          border_style="red")]
        if isinstance(event, events.Note):
            prefix = f"{event.host}: " if event.host else ""
            if event.level == "warning":
                return [Text(f"! {prefix}{event.text}", style="yellow")]
            return [Text(f"{prefix}{event.text}")]
        if isinstance(event, events.ReleasesListed):
            return [Group(*tables.releases_tables(event, utcnow()))]
        if isinstance(event, events.PlanMade):
            return [Group(*(Text(text, style=style or "") for text, style in plan_lines(event.plan)))]
        return []
