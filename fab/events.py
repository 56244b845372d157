"""One stream of events for everything a task does; every output subscribes to it.

Operations and the runner publish what happened once (a stage began, a host's
step finished, a warning); the plain lines, the live view, the JSON summary and
the history store are subscribers that each turn the same events into their
own form. No subscriber knows about SSH, and nothing that publishes knows who
listens.

Events are small frozen dataclasses with a `kind` and `to_dict()`, so a
subscriber can store or serialise them without knowing each type. Secrets are
masked, and terminal control sequences dropped (`fab.shown`), as an event is
published, so no subscriber ever sees them.
"""
import dataclasses
import functools
import threading
import time
from typing import Optional

from fab.secrets import safe_to_show
from fab.shown import shown_data


@dataclasses.dataclass(frozen=True)
class Event:
    #: Wall-clock time (epoch seconds) the event happened.
    at: float = dataclasses.field(default_factory=time.time, kw_only=True)

    kind = "event"

    def to_dict(self):
        return {"kind": self.kind, **dataclasses.asdict(self)}


@dataclasses.dataclass(frozen=True)
class TaskStarted(Event):
    """A task began: `fab <environment> <task>` with its arguments."""

    task: str
    environment: str
    arguments: dict
    performer: str  # user@machine of the person or CI job
    controller: str  # the machine the deployer runs on
    hosts: tuple = ()
    message: str = ""  # why, as the performer said it (message=, FAB_DEPLOY_MESSAGE)

    kind = "task_started"


@dataclasses.dataclass(frozen=True)
class ReleaseChosen(Event):
    """The release (and commit, and the ref it came from) this task works on."""

    release: str
    commit: str
    ref: str = ""
    previous: Optional[str] = None  # the release live before, if any

    kind = "release_chosen"


@dataclasses.dataclass(frozen=True)
class CommitDescribed(Event):
    """What the controller's copy of the repository says of the task's commit: its
    committer time (epoch seconds) and its subject (first line)."""

    commit: str
    committed_at: float
    subject: str = ""

    kind = "commit_described"


@dataclasses.dataclass(frozen=True)
class TaskContext(Event):
    """What the task's hooks and notifications are told about it: a
    fab.hooks.HookContext as a dict (release, commit, message, ...)."""

    context: dict

    kind = "task_context"


@dataclasses.dataclass(frozen=True)
class Stage(Event):
    """A headline: what the task is doing now (or has done)."""

    text: str

    kind = "stage"


@dataclasses.dataclass(frozen=True)
class StepStarted(Event):
    host: str
    step: str

    kind = "step_started"


@dataclasses.dataclass(frozen=True)
class StepFinished(Event):
    """One host's step ended. `outcome` is ok, skipped or failed; a failure's
    `output` holds the last lines the step printed."""

    host: str
    step: str
    outcome: str
    note: str = ""
    seconds: float = 0.0
    output: str = ""
    quiet: bool = False  # routine reads the plain lines leave out

    kind = "step_finished"


@dataclasses.dataclass(frozen=True)
class ArtifactsReceived(Event):
    """`host` received artifacts (fab.transfer): {source: bytes}, a source being
    "controller" or the peer host it came from."""

    host: str
    sources: dict

    kind = "artifacts_received"


@dataclasses.dataclass(frozen=True)
class ReleasesRead(Event):
    """What `current` points to on each host as the task read it, under its lock
    if it takes one: {host: release, or None for none}."""

    current: dict

    kind = "releases_read"


@dataclasses.dataclass(frozen=True)
class ReleaseChanged(Event):
    """`current` on `host` now points to `release` (None: removed), as its swap said."""

    host: str
    release: Optional[str]

    kind = "release_changed"


@dataclasses.dataclass(frozen=True)
class PutBack(Event):
    """After a failure, these hosts are back on the release they ran before the task:
    {host: release, or None for none}."""

    hosts: dict

    kind = "put_back"


@dataclasses.dataclass(frozen=True)
class WaveStarted(Event):
    """Wave `wave` of `waves` (((name, (host, ...)), ...), in order) starts going live or
    restarting: the hosts of the waves after it wait."""

    wave: str
    waves: tuple

    kind = "wave_started"


@dataclasses.dataclass(frozen=True)
class Note(Event):
    """A free line: a warning, a hint, what a refusal means (`host` if about one)."""

    text: str
    host: Optional[str] = None
    level: str = "info"  # info or warning

    kind = "note"


@dataclasses.dataclass(frozen=True)
class ReleasesListed(Event):
    """Every host's releases, as `fab <env> releases` found them.

    `hosts` maps host -> `fab.releases.host_listing(...)` (its current release,
    its rollback target and each release's metadata); `drift` says how the hosts
    disagree on their current release, or is None; `unreachable` maps each host
    that could not be read to why; `freeze` is the environment's freeze, if frozen;
    `rotation` maps each proxy host to what its proxies send traffic to
    (fab.rotation.rotation_listing).
    """

    hosts: dict
    drift: Optional[str] = None
    unreachable: dict = dataclasses.field(default_factory=dict)
    #: role -> whether its hosts' current releases run one wheel set
    #: (fab.wheels.role_wheel_sets); {} where no host records one.
    wheel_sets: dict = dataclasses.field(default_factory=dict)
    freeze: Optional[dict] = None  # the environment's freeze (fab.freezes), None: not frozen
    rotation: dict = dataclasses.field(default_factory=dict)

    kind = "releases_listed"


@dataclasses.dataclass(frozen=True)
class FreezeChanged(Event):
    """The environment was frozen (`freeze`: its record, fab.freezes: by, machine, pid,
    since, reason) or unfrozen (`freeze` None); `replaced`: the freeze there was before."""

    freeze: Optional[dict] = None
    replaced: Optional[dict] = None

    kind = "freeze_changed"


@dataclasses.dataclass(frozen=True)
class PlanMade(Event):
    """What a task would do (`plan=yes`), found without changing anything.

    `plan` is `fab.plan.Plan.to_dict()`: the release and commit, the commits
    between the live one and it, the waves, and per host the virtualenv, the
    service config changes and the releases cleanup would delete.
    """

    plan: dict

    kind = "plan_made"


@dataclasses.dataclass(frozen=True)
class HostsChecked(Event):
    """The preflight's verdict (`fab <env> check`): `problems` are
    `fab.preflight.Problem.to_dict()`s (host, check, problem, fix), in host order;
    `hosts` every host checked."""

    hosts: tuple
    problems: tuple = ()

    kind = "hosts_checked"


@dataclasses.dataclass(frozen=True)
class TaskFinished(Event):
    """The task ended. `outcome`: succeeded, failed, interrupted, refused or paused."""

    outcome: str
    exit_code: int
    error: str = ""
    seconds: float = 0.0

    kind = "task_finished"


OK, SKIPPED, FAILED = "ok", "skipped", "failed"
#: A host's outcome when a failure put it back on the release it ran before.
PUT_BACK = "put back"
SUCCEEDED, INTERRUPTED, REFUSED = "succeeded", "interrupted", "refused"
#: A deploy that stopped after its canary, as asked (rollout.pause).
PAUSED = "paused"


class Stream:
    """Delivers each published event to every subscriber, in order, one at a time.

    A subscriber is a callable taking an event. Publishing is serialised, so a
    subscriber sees events in one order even when hosts report from threads. A
    subscriber that raises is dropped with a warning to the others: an output
    that breaks (a full disk, a lost database) must not stop a deploy half-way.
    """

    def __init__(self):
        self._subscribers = []
        self._lock = threading.RLock()

    def subscribe(self, subscriber):
        with self._lock:
            self._subscribers.append(subscriber)
        return subscriber

    def unsubscribe(self, subscriber):
        with self._lock:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

    def publish(self, event):
        event = masked(event)
        with self._lock:
            broken = []
            for subscriber in list(self._subscribers):
                try:
                    subscriber(event)
                except Exception as error:  # noqa: BLE001 - one broken output must not stop the task
                    broken.append((subscriber, error))
            for subscriber, error in broken:
                self._subscribers.remove(subscriber)
                name = getattr(subscriber, "name", type(subscriber).__name__)
                self.publish(Note(f"output {name} stopped: {error}", level="warning"))
        return event

    # Shorthands for the events published most.

    def stage(self, text):
        return self.publish(Stage(text))

    def note(self, text, host=None, level="info"):
        return self.publish(Note(text, host=host, level=level))

    def warning(self, text, host=None):
        return self.publish(Note(text, host=host, level="warning"))


def masked(event):
    """`event` as any output may show it: its text (strings, inside dicts and lists too:
    a plan's diffs and commit lines) without terminal control sequences (commit
    messages, host and hook output reach every output through here) and with secrets
    masked (fab.secrets.safe_to_show)."""
    changes = {}
    for name in _field_names(type(event)):
        value = getattr(event, name)
        if isinstance(value, str):
            safe = safe_to_show(value)
        elif isinstance(value, (dict, list, tuple)):
            safe = shown_data(value, safe_to_show)
        else:
            continue
        if safe != value:
            changes[name] = safe
    return dataclasses.replace(event, **changes) if changes else event


@functools.lru_cache(maxsize=None)
def _field_names(event_type):
    return tuple(field.name for field in dataclasses.fields(event_type))


#: The one stream a process publishes to.
stream = Stream()
