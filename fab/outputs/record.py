"""One task's run folded from its events: what the live view and the JSON summary show.

The fold is the one place that pairs a host's StepStarted with its StepFinished,
so every output agrees on what each host did and how long it took.
"""
import dataclasses
from typing import Optional

from fab import events

#: The step that points `current` elsewhere (fab.operations.current.swap_step).
SWAP = "swap"


@dataclasses.dataclass
class StepRecord:
    step: str
    started_at: float
    finished_at: Optional[float] = None
    outcome: Optional[str] = None  # None while the step runs
    note: str = ""
    seconds: float = 0.0
    output: str = ""
    quiet: bool = False

    @property
    def running(self):
        return self.outcome is None


@dataclasses.dataclass
class HostRecord:
    name: str
    steps: list = dataclasses.field(default_factory=list)
    #: What `current` points to as far as the task knows (None: no release), once
    #: `release_known`: read when the task opened the fleet, then as swaps said.
    release: Optional[str] = None
    release_known: bool = False
    put_back: bool = False  # a failure put it back on the release it ran before
    wave: Optional[str] = None  # the wave it goes live or restarts in, once planned
    waiting: bool = False  # for its wave to start
    #: Bytes of artifacts it received (fab.transfer), per source: "controller" or a peer.
    received: dict = dataclasses.field(default_factory=dict)

    @property
    def current_step(self):
        """The step running now, or None."""
        running = [step for step in self.steps if step.running]
        return running[-1] if running else None

    @property
    def last_step(self):
        return self.steps[-1] if self.steps else None

    @property
    def failed_step(self):
        failed = [step for step in self.steps if step.outcome == events.FAILED]
        return failed[0] if failed else None

    @property
    def outcome(self):
        """put back if a failure put it back on its release before the task; otherwise
        failed if any step failed, ok if it ran steps that all ended well, else none."""
        if self.put_back:
            return events.PUT_BACK
        if self.failed_step:
            return events.FAILED
        return events.OK if any(step.outcome for step in self.steps) else "none"

    @property
    def seconds(self):
        """The time this host spent in steps (its steps run one after another)."""
        return sum(step.seconds for step in self.steps)


class TaskRecord:
    """Everything one task published, kept in order; `apply` each event as it comes."""

    def __init__(self, started):
        self.started = started
        self.hosts = {name: HostRecord(name) for name in started.hosts}
        self.release = None  # the ReleaseChosen event, if any
        self.stages = []
        self.notes = []
        self.listing = None  # the ReleasesListed event, if any
        self.plan = None  # the PlanMade event, if any
        self.checked = None  # the HostsChecked event, if any
        self.finished = None
        self.moved = False  # True once the task pointed a host's `current` elsewhere

    @classmethod
    def folded(cls, record, event):
        """`record` with `event` applied: a new record at TaskStarted; None before one.
        For a subscriber that folds each task's events (`self.record = folded(...)`)."""
        if isinstance(event, events.TaskStarted):
            record = cls(event)
        if record is not None:
            record.apply(event)
        return record

    @property
    def task(self):
        return self.started.task

    def host(self, name):
        # A host outside the environment's list (not expected) still gets a row.
        host = self.hosts.get(name)
        return host if host is not None else self.hosts.setdefault(name, HostRecord(name))

    @property
    def worked(self):
        """True once any host ran a step the plain lines would show (not a routine read)."""
        return any(not step.quiet for host in self.hosts.values() for step in host.steps
                   if not step.running)

    def apply(self, event):
        if isinstance(event, events.StepStarted):
            self.host(event.host).steps.append(StepRecord(event.step, event.at))
        elif isinstance(event, events.StepFinished):
            self._finish_step(event)
        elif isinstance(event, events.ReleaseChosen):
            self.release = event
        elif isinstance(event, events.Stage):
            self.stages.append(event)
        elif isinstance(event, events.Note):
            self.notes.append(event)
        elif isinstance(event, events.ReleasesListed):
            self.listing = event
        elif isinstance(event, events.PlanMade):
            self.plan = event
        elif isinstance(event, events.HostsChecked):
            self.checked = event
        elif isinstance(event, events.TaskFinished):
            self.finished = event
        elif isinstance(event, events.ArtifactsReceived):
            received = self.host(event.host).received
            for source, count in event.sources.items():
                received[source] = received.get(source, 0) + count
        elif isinstance(event, events.ReleasesRead):
            for name, release in event.current.items():
                self._placed(name, release)
        elif isinstance(event, events.ReleaseChanged):
            self._placed(event.host, event.release)
            self.moved = True
        elif isinstance(event, events.PutBack):
            self.moved = True
            for name, release in event.hosts.items():
                self._placed(name, release).put_back = True
            for host in self.hosts.values():
                host.waiting = False  # the waves after it will not start
        elif isinstance(event, events.WaveStarted):
            names = [name for name, _ in event.waves]
            for index, (name, hosts) in enumerate(event.waves):
                for host in hosts:
                    self.host(host).wave = name
                    self.host(host).waiting = index > names.index(event.wave)

    def _placed(self, name, release):
        host = self.host(name)
        host.release, host.release_known = release, True
        return host

    def _finish_step(self, event):
        host = self.host(event.host)
        started = [s for s in host.steps if s.running and s.step == event.step]
        step = started[-1] if started else None
        if step is None:
            step = StepRecord(event.step, event.at - event.seconds)
            host.steps.append(step)
        step.finished_at = event.at
        step.outcome = event.outcome
        step.note = event.note
        step.output = event.output
        step.quiet = event.quiet
        # A step cut short carries no duration (its host never said): it is measured from its start.
        step.seconds = event.seconds or max(0.0, event.at - step.started_at)
        if event.step == SWAP and event.outcome == events.FAILED:
            host.release_known = False  # a swap cut short may have happened or not
