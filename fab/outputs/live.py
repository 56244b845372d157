"""The live per-host view for a person at a terminal: one subscriber of the stream.

While a task works on hosts, a table redraws in place (rich's Live): one row
per host with the step it is in (as its host reported it), a spinner and the
seconds it has been running, how its last step ended, or the wave it waits for.
When a row per host would not fit the terminal's height, hosts are grouped by
wave and step with their counts instead, and every failing host is still named.
Stage headers, failures (host, step and the step's last output lines) and
warnings are printed above the table and stay on screen. At the end the table
makes way for a summary: host, the release it is on, outcome, seconds.

Publishing must stay cheap: the stream calls subscribers one at a time under
its lock, so `__call__` only folds the event into the record; rich's refresh
thread draws the table a few times a second from that record. Nothing is
printed while this view's own lock is held, so the refresh thread (which takes
rich's locks, then ours) can never deadlock with a publisher.
"""
import dataclasses
import threading
import time
from typing import Optional

from rich.console import Group
from rich.live import Live
from rich.panel import Panel
from rich.rule import Rule
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from fab import events
from fab.outputs import tables
from fab.outputs.plan_text import plan_lines, problem_lines
from fab.outputs.record import TaskRecord
from fab.releases import utcnow

#: Redraws per second: enough for a spinner to look alive, cheap on a deploy.
REFRESH_PER_SECOND = 4
#: How many of a failed step's last output lines are shown.
FAILURE_LINES = 12

SYMBOLS = {events.OK: ("✓", "green"), events.SKIPPED: ("↷", "dim"), events.FAILED: ("✗", "bold red")}
PUT_BACK_SYMBOL = "↩"
#: Lines of the terminal the live table leaves free (the cursor's line, and one to spare).
LIVE_MARGIN = 2
RUNNING, WAITING = "running", "waiting"


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
        """The live table as of now: a row per host, or per group of hosts where
        those rows would not fit the console's height."""
        now = time.time()
        with self._lock:
            record = self._record
            if record is None:
                return Text("")
            heading = f"{record.task} {record.started.environment}"
            if record.release:
                heading += f" · release {record.release.release} ({record.release.commit[:12]})"
            heading += f" · {now - record.started.at:.0f}s"
            hosts = list(record.hosts.values())
            room = self.console.size.height - LIVE_MARGIN
            if len(hosts) + 2 <= room:  # the heading, the table's header, a row per host
                return Group(Text(heading, style="bold"), self._host_rows(hosts, now))
            heading += f" · {len(hosts)} hosts"
            return Group(Text(heading, style="bold"), *self._grouped(hosts, now, room - 1))

    def _host_rows(self, hosts, now):
        table = Table(show_edge=False, pad_edge=False, header_style="bold")
        for column in ("host", "step", "", "time", "note"):
            table.add_column(column, no_wrap=column != "note", overflow="ellipsis",
                             justify="right" if column == "time" else "left")
        for host in hosts:
            table.add_row(*self._row(host, now))
        return table

    def _row(self, host, now):
        name = Text(host.name, style="bold red" if host.failed_step else "")
        running = host.current_step
        if running is not None:
            spinner = self._spinners.setdefault(host.name, Spinner("dots", style="cyan"))
            return name, Text(running.step), spinner, f"{now - running.started_at:.1f}s", ""
        if host.waiting:
            return name, Text(f"waiting: {host.wave}", style="dim"), "", "", ""
        last = host.last_step
        if last is None:
            return name, Text("waiting", style="dim"), "", "", ""
        if host.put_back:
            return (name, Text(last.step), Text(PUT_BACK_SYMBOL, style="yellow"), f"{last.seconds:.1f}s",
                    Text(f"{events.PUT_BACK} on {tables.current_text(host)}", style="yellow"))
        symbol, style = SYMBOLS.get(last.outcome, ("?", ""))
        return (name, Text(last.step), Text(symbol, style=style), f"{last.seconds:.1f}s",
                Text(last.note, style=style if last.outcome == events.FAILED else ""))

    def _grouped(self, hosts, now, room):
        """Renderables taking at most `room` lines (where names allow): a row per group of
        hosts in one wave and one state, with its count; then every failing host by name."""
        width = self.console.size.width
        failing = [Text(f"{SYMBOLS[events.FAILED][0]} failed at {step} ({len(names)}): {', '.join(names)}",
                        style="bold red") for step, names in failing_hosts(hosts).items()]
        failing_lines = sum(len(text.wrap(self.console, width)) for text in failing)
        groups = host_groups(hosts, now)
        rows = max(1, room - failing_lines - 1)  # the table's header
        if len(groups) > rows:  # too many waves to show apart: each state across the waves
            groups = merged_across_waves(groups)
        left_out = groups[rows - 1:] if len(groups) > rows else []
        if left_out:
            groups = groups[:rows - 1]
        table = Table(show_edge=False, pad_edge=False, header_style="bold")
        for column in ("hosts", "wave", "step", "", "time", "which"):
            table.add_column(column, no_wrap=True, overflow="ellipsis",
                             justify="right" if column in ("hosts", "time") else "left")
        for group in groups:
            table.add_row(*self._group_row(group, width))
        if left_out:
            table.add_row(str(sum(len(g.hosts) for g in left_out)), "", Text(f"in {len(left_out)} more groups",
                                                                              style="dim"), "", "", "")
        return [table, *failing]

    def _group_row(self, group, width):
        symbol = ""
        if group.state == RUNNING:
            symbol = self._spinners.setdefault((group.wave, group.step), Spinner("dots", style="cyan"))
        elif group.state in SYMBOLS or group.state == events.PUT_BACK:
            mark, style = SYMBOLS.get(group.state, (PUT_BACK_SYMBOL, "yellow"))
            symbol = Text(mark, style=style)
        step = Text(group.step or "waiting", style="dim" if group.state == WAITING else "")
        seconds = f"{group.seconds:.1f}s" if group.seconds is not None else ""
        return (str(len(group.hosts)), Text(group.wave or ""), step, symbol, seconds,
                Text(names_within(group.hosts, max(10, width // 2)), style="dim"))

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
        if isinstance(event, events.PutBack):
            by_release = {}
            for host, release in event.hosts.items():
                by_release.setdefault(release, []).append(host)
            return [Text(f"{PUT_BACK_SYMBOL} {events.PUT_BACK} on {release or 'no release'}: {', '.join(hosts)}",
                         style="yellow") for release, hosts in by_release.items()]
        if isinstance(event, events.Note):
            prefix = f"{event.host}: " if event.host else ""
            if event.level == "warning":
                return [Text(f"! {prefix}{event.text}", style="yellow")]
            return [Text(f"{prefix}{event.text}")]
        if isinstance(event, events.ReleasesListed):
            return [Group(*tables.releases_tables(event, utcnow()))]
        if isinstance(event, events.PlanMade):
            return [Group(*(Text(text, style=style or "") for text, style in plan_lines(event.plan)))]
        if isinstance(event, events.HostsChecked):
            return [Text(text, style=style or "") for text, style in problem_lines(event.problems, event.hosts)]
        return []


@dataclasses.dataclass
class HostGroup:
    """Hosts of one wave (None: before waves) in one state: RUNNING `step`, done with
    `step` (its outcome's state), WAITING (for their wave, or for any step), or put back."""

    wave: Optional[str]
    state: str
    step: Optional[str]
    hosts: list = dataclasses.field(default_factory=list)
    seconds: Optional[float] = None  # running: the longest any of them has run; done: the longest it took


def host_groups(hosts, now):
    """The HostGroups of the hosts that are not failing, in the order their waves run
    (hosts in no wave first), each wave's running steps first, then those done, then waiting."""
    order = {RUNNING: 0, events.OK: 1, events.SKIPPED: 1, events.PUT_BACK: 2, WAITING: 3}
    waves = list(dict.fromkeys([None, *(host.wave for host in hosts)]))
    groups = {}
    for host in hosts:
        if host.failed_step:
            continue
        running, last = host.current_step, host.last_step
        if running is not None:
            key, seconds = (host.wave, RUNNING, running.step), now - running.started_at
        elif host.waiting or last is None:
            key, seconds = (host.wave, WAITING, None), None
        elif host.put_back:
            key, seconds = (host.wave, events.PUT_BACK, None), None
        else:
            key, seconds = (host.wave, last.outcome, last.step), last.seconds
        group = groups.setdefault(key, HostGroup(*key))
        group.hosts.append(host.name)
        if seconds is not None:
            group.seconds = max(group.seconds or 0.0, seconds)
    return sorted(groups.values(), key=lambda g: (waves.index(g.wave), order.get(g.state, 1), g.step or ""))


def merged_across_waves(groups):
    """`groups` with those of one state and step joined across waves (the wave column
    then says how many waves)."""
    merged, waves = {}, {}
    for group in groups:
        key = (group.state, group.step)
        joined = merged.setdefault(key, HostGroup(group.wave, group.state, group.step))
        waves.setdefault(key, []).append(group.wave)
        joined.hosts.extend(group.hosts)
        if group.seconds is not None:
            joined.seconds = max(joined.seconds or 0.0, group.seconds)
    for key, joined in merged.items():
        if len(waves[key]) > 1:
            joined.wave = f"{len(waves[key])} waves"
    return list(merged.values())


def failing_hosts(hosts):
    """{step: [host, ...]} of the hosts a step failed on, by the step that failed."""
    failing = {}
    for host in hosts:
        if host.failed_step:
            failing.setdefault(host.failed_step.step, []).append(host.name)
    return failing


def names_within(names, width):
    """`web1, web2, … +38`: as many of `names` as fit in `width` characters, and how many more."""
    shown = []
    for index, name in enumerate(names):
        rest = len(names) - index - 1
        candidate = ", ".join([*shown, name]) + (f", … +{rest}" if rest else "")
        if shown and len(candidate) > width:
            return ", ".join(shown) + f", … +{len(names) - len(shown)}"
        shown.append(name)
    return ", ".join(shown)
