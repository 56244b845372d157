"""One task's run folded from its events: what the live view and the JSON summary show.

The fold is the one place that pairs a host's StepStarted with its StepFinished,
so every output agrees on what each host did and how long it took.
"""
import dataclasses
from typing import Optional

from fab import events


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
        """failed if any step failed, ok if it ran steps that all ended well, else none."""
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
        self.finished = None

    @property
    def task(self):
        return self.started.task

    def host(self, name):
        # A host outside the environment's list (not expected) still gets a row.
        return self.hosts.setdefault(name, HostRecord(name))

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
        elif isinstance(event, events.TaskFinished):
            self.finished = event

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
        # A failed step's event carries no duration: it is measured from its start.
        step.seconds = event.seconds or max(0.0, event.at - step.started_at)
