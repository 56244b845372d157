"""The history recorder: a subscriber of fab.events.stream that writes each task run
of one environment to the history store as it happens.

Publishing is serialised and must stay cheap, so an event only appends to
memory; a background flusher writes what has gathered every FLUSH_SECONDS in
one transaction (log chunk, step rows, heartbeat), so a follower sees lines
within about a second and a killed deploy leaves all but its last moment. The
operation row heartbeats while the task runs; a reader takes a `running` row
whose heartbeat went stale (or whose process is gone) as interrupted.

The store is opened by the writer thread too, while the task connects to its
hosts (SQLAlchemy's import alone takes a good part of a deploy's start-up). That
thread never publishes: what it has to say waits for the publishing thread, which
may be waiting for it (the task's end joins it from within the stream).

If the store cannot be reached when the task starts, or opens but cannot
record (a table gone, a privilege missing: `unrecordable` says why, and the
claim refuses as for a store out of reach), the run is kept in memory and
written, if the store answers by then, when the task ends. A run whose row is
in the store but whose writes stopped (the store went down mid-task) retries
at its end for up to FINAL_RETRY_SECONDS, so its row does not stay `running`
(read as interrupted) when the task in fact ended otherwise.
"""
import os
import threading
import time

from fab import events
from fab.errors import DeployError
from fab.events import stream
from fab.history import liveness
from fab.history.errors import StoreMisconfigured
from fab.history.urls import mask_secrets, store_url
from fab.history.views import arguments_text
from fab.outputs.plain import PlainLines, host_line
from fab.outputs.record import TaskRecord
from fab.outputs.tables import current_text, outcome_text

FLUSH_SECONDS = 0.5
FINAL_RETRY_SECONDS = 30
FINAL_RETRY_INTERVAL = 1.0
OUTPUT_TAIL_LINES = 40
#: The most characters of a commit's subject kept (fab_operations.commit_subject).
COMMIT_SUBJECT_LIMIT = 300

#: environment name -> the run being recorded (for the claim's operation id).
_recording = {}


def operation_id(environment):
    """The id of the operation being recorded for `environment` in this process, if any
    (once the store is open, or known to be out of reach)."""
    run = _recording.get(environment)
    if run is None:
        return None
    run.opened.wait()
    return run.operation_id


def unrecordable(environment):
    """Why the store, open, cannot record this process's run on `environment` (one
    line), or None: it records, is out of reach (said by opening it), or nothing records."""
    run = _recording.get(environment)
    if run is None:
        return None
    run.opened.wait()
    return run.unrecordable


class Recorder:
    """Records the runs of tasks on one environment (`fab <env> <task>`)."""

    name = "history"

    def __init__(self, env):
        self.env = env
        self._run = None

    def __call__(self, event):
        if isinstance(event, events.TaskStarted):
            if event.environment == self.env.name:
                self._run = _recording[self.env.name] = _Run(self.env, event)
                self._run.begin()
            return
        run = self._run
        if run is None:
            return
        run.take(event)
        if isinstance(event, events.TaskFinished):
            self._run = None
            _recording.pop(self.env.name, None)
            run.finish(event)
        run.publish_warnings()


class _Run:
    """One task run: what is waiting to be written, and the thread that writes it."""

    def __init__(self, env, started):
        self.env = env
        self.started = started
        self._record = TaskRecord(started)  # the run folded, for what each host ended on
        self.store = None
        self.operation_id = None
        self.unrecordable = None  # why the open store refused this run's row, if it did
        self._lock = threading.Lock()
        self._lines = []  # formatted, not yet written
        self._new_steps = []  # (key, values) begun, not yet written
        self._ended_steps = {}  # key -> values of steps ended, not yet written
        self._changes = {}  # operation columns to update
        self._receipts = []  # (host, source, bytes) of artifacts received, not yet written
        self._open_steps = {}  # (host, step) -> key of the step running there
        self._step_started_at = {}  # key -> when it began
        self._next_key = 0
        # Owned by whoever writes (the flusher, then finish):
        self._row_ids = {}  # key -> steps row id
        self._lines_written = 0
        self._heartbeat_at = 0.0
        self._misconfigured = False  # the store's URL cannot work: nothing to retry
        self._complained = False
        self._stop = threading.Event()
        self._flusher = None
        self.opened = threading.Event()  # set once the store is open (or out of reach)
        self._warnings = []  # what the writer has to say, for the publishing thread

    # -- in the publishing thread ----------------------------------------------

    def begin(self):
        self.take(self.started)
        self._flusher = threading.Thread(target=self._open_and_flush, name="history-writer", daemon=True)
        self._flusher.start()

    def publish_warnings(self):
        with self._lock:
            warnings, self._warnings = self._warnings, []
        for text in warnings:
            stream.warning(text)

    # -- writing (the writer thread, then finish) -------------------------------

    def _warn(self, text):
        with self._lock:
            self._warnings.append(text)

    def _open_and_flush(self):
        try:
            opened = self._open()
        finally:
            self.opened.set()
        if opened:
            self._flush_every()

    def _open(self):
        from fab.history import import_store_modules

        import_store_modules()
        from fab.history.engine import describe_database_error
        from fab.history.store import open_store

        url = None
        try:
            url = store_url(self.env.history)
            self.store = open_store(url, self.env.name)
        except StoreMisconfigured as error:  # it will not answer later either: say it once
            self.store = None
            self._misconfigured = True
            self._warn(f"{error}; this {self.started.task} is not recorded in the history")
        except DeployError as error:
            self.store = None
            self._warn(f"{error}; this run is kept in memory and recorded at the end if it answers by then")
        except Exception as error:  # noqa: BLE001 - the database driver's errors
            self.store = None
            self._warn(f"history store {mask_secrets(url or '')} failed: {describe_database_error(error)}; "
                       "this run is kept in memory and recorded at the end if it answers by then")
        if self.store is None:
            return False
        try:
            self._insert_operation()
            return True
        except Exception as error:  # noqa: BLE001 - the database driver's errors
            self.unrecordable = (f"history store {self.store.location} cannot record: "
                                 f"{describe_database_error(error)}")
            self.store = None
            self._warn(f"{self.unrecordable}; this run is kept in memory and recorded at the end "
                       "if it can be by then")
        return False

    def take(self, event):
        self._record.apply(event)
        texts = [mask_secrets(line) for text in lines_for(event, self._record)
                 for line in text.splitlines() or [""]]
        elapsed = max(0.0, event.at - self.started.at)
        with self._lock:
            self._lines.extend(f"[{elapsed:6.1f}s] {text}" for text in texts)
            if isinstance(event, events.StepStarted):
                key = self._new_key()
                self._open_steps[(event.host, event.step)] = key
                self._step_started_at[key] = event.at
                self._new_steps.append((key, dict(host=event.host, step=event.step, started_at=event.at,
                                                  outcome=liveness.RUNNING)))
            elif isinstance(event, events.StepFinished):
                self._end_step(event)
            elif isinstance(event, events.ArtifactsReceived):
                self._receipts.extend((event.host, source, count) for source, count in event.sources.items())
            elif isinstance(event, events.ReleaseChosen):
                self._changes.update(release=event.release, commit=event.commit, ref=event.ref or None,
                                     previous_release=event.previous)
            elif isinstance(event, events.CommitDescribed):
                self._changes.update(commit_time=event.committed_at, commit_subject=commit_subject(event.subject))

    def _end_step(self, event):
        key = self._open_steps.pop((event.host, event.step), None)
        if key is None:  # its start was not seen: record it as it ended
            key = self._new_key()
            self._new_steps.append((key, dict(host=event.host, step=event.step,
                                              started_at=event.at - event.seconds, outcome=liveness.RUNNING)))
        started_at = self._step_started_at.pop(key, event.at - event.seconds)
        # A step cut short carries no duration (its host never said): the time since it began.
        seconds = event.seconds or max(0.0, event.at - started_at)
        self._ended_steps[key] = dict(
            finished_at=event.at, outcome=event.outcome, note=mask_secrets(event.note) or None,
            seconds=seconds,
            output=mask_secrets("\n".join(event.output.splitlines()[-OUTPUT_TAIL_LINES:])) or None)

    def _new_key(self):
        self._next_key += 1
        return self._next_key

    def finish(self, event):
        self._stop.set()
        self._flusher.join()  # an opening still under way included
        final = dict(finished_at=event.at, heartbeat_at=event.at, outcome=event.outcome,
                     exit_code=event.exit_code, seconds=event.seconds,
                     error=mask_secrets(event.error) or None)
        with self._lock:
            self._changes.update(final)
        if self.store is None and (self._misconfigured or not self._open_late()):
            return
        if not self._flush(final=True) and not self._flush_again():
            return
        if self.started.task == "deploy":
            self._prune_in_passing()

    def _insert_operation(self):
        s = self.started
        self.operation_id = self.store.start_operation(
            environment=s.environment, task=s.task, arguments=s.arguments, performer=s.performer,
            controller=s.controller, pid=os.getpid(), hosts=s.hosts, started_at=s.at, message=s.message)
        self._heartbeat_at = s.at

    def _open_late(self):
        """A run that started without the store: try once more to write it all."""
        from fab.history import import_store_modules

        import_store_modules()
        from fab.history.engine import describe_database_error
        from fab.history.store import open_store

        try:
            self.store = open_store(store_url(self.env.history), self.env.name, retry=True)
            self._insert_operation()
            return True
        except Exception as error:  # noqa: BLE001 - DeployError or the driver's errors
            reason = str(error) if isinstance(error, DeployError) else describe_database_error(error)
            self._warn(f"{reason}; this {self.started.task} was not recorded in the history")
            return False

    def _flush_again(self):
        """The run's row is in the store but its end could not be written: try again for
        up to FINAL_RETRY_SECONDS (a store restarting, a dropped connection), so the row
        does not stay `running` and read as interrupted. Called in the publishing thread."""
        self.publish_warnings()  # the failure, and that it retries
        deadline = time.monotonic() + FINAL_RETRY_SECONDS
        while time.monotonic() < deadline:
            time.sleep(FINAL_RETRY_INTERVAL)
            if self._flush(final=True, quiet=True):
                self._warn(f"history store {self.store.location}: the end of this {self.started.task} "
                           "is recorded")
                return True
        self._warn(f"history store {self.store.location}: gave up; the end of this {self.started.task} is "
                   f"not recorded (the next task that locks {self.env.name} completes its record "
                   "from the hosts)")
        return False

    def _flush_every(self):
        while not self._stop.wait(FLUSH_SECONDS):
            self._flush()

    def _flush(self, final=False, quiet=False):
        from fab.history.engine import describe_database_error

        with self._lock:
            lines, self._lines = self._lines, []
            new_steps, self._new_steps = self._new_steps, []
            ended, self._ended_steps = self._ended_steps, {}
            changes, self._changes = self._changes, {}
            receipts, self._receipts = self._receipts, []
        now = time.time()
        # A write that goes anyway carries the heartbeat too: a run killed outright
        # then shows how long it ran until its last words, not until its last beat.
        if not final and (lines or new_steps or ended or now - self._heartbeat_at >= liveness.HEARTBEAT_SECONDS):
            changes["heartbeat_at"] = now
        if not (lines or new_steps or ended or changes or receipts):
            return True
        inserts = []
        for key, values in new_steps:  # a step that also ended since the last write goes in whole
            inserts.append((key, {**values, **ended.pop(key, {})}))
        updates = {self._row_ids[key]: values for key, values in ended.items() if key in self._row_ids}
        try:
            ids = self.store.write_progress(self.operation_id, self._lines_written + 1, lines,
                                            [values for _, values in inserts], updates, changes, receipts)
        except Exception as error:  # noqa: BLE001 - keep it for the next try; the task goes on
            with self._lock:
                self._lines[:0] = lines
                self._new_steps[:0] = new_steps
                self._ended_steps = {**ended, **self._ended_steps}
                self._changes = {**changes, **self._changes}
                self._receipts[:0] = receipts
            if not quiet and (not self._complained or final):
                self._complained = True
                later = (f"retrying for up to {FINAL_RETRY_SECONDS}s to record the end of this "
                         f"{self.started.task} (Ctrl-C gives up)" if final else "will retry")
                self._warn(f"history store {self.store.location}: cannot write "
                           f"({describe_database_error(error)}); {later}")
            return False
        self._row_ids.update(zip((key for key, _ in inserts), ids))
        self._lines_written += len(lines)
        if "heartbeat_at" in changes:
            self._heartbeat_at = changes["heartbeat_at"]
        return True

    def _prune_in_passing(self):
        from fab.history.engine import describe_database_error

        days = self.env.history.retention_days
        try:
            self.store.prune(self.env.name, time.time() - days * 86400)
        except Exception as error:  # noqa: BLE001 - pruning is housekeeping
            self._warn(f"history store {self.store.location}: pruning old logs failed: "
                       f"{describe_database_error(error)}")


def commit_subject(subject):
    """A commit's subject as the store keeps it: one line, masked, at most COMMIT_SUBJECT_LIMIT."""
    line = " ".join(mask_secrets(subject or "").split())
    return line[:COMMIT_SUBJECT_LIMIT] or None


def lines_for(event, record):
    """The log lines of one event (`record`: the run folded up to it, fab.outputs.record):
    what the plain output shows, plus the task's start, its release and its end
    (which the terminal shows by other means), and, for a task that moved a host's
    `current`, the release each host ended on."""
    started = record.started
    if isinstance(event, events.TaskStarted):
        arguments = arguments_text(event.arguments)
        said = f": {event.message}" if event.message else ""
        return [f"fab {event.environment} {event.task}{':' + arguments if arguments else ''} "
                f"by {event.performer} on {event.controller}{said}"]
    if isinstance(event, events.ReleaseChosen):
        ref = f" (ref {event.ref})" if event.ref else ""
        return [f"release {event.release} at {event.commit[:12]}{ref}; "
                f"previous release {event.previous or 'none'}"]
    if isinstance(event, events.TaskFinished):
        error = [f"error: {event.error}"] if event.error else []
        return error + ending_hosts(record) + [
            f"{started.task} {event.outcome} (exit {event.exit_code}) after {event.seconds:.1f}s"]
    return PlainLines.lines(event)


def ending_hosts(record):
    """`<host> <release after the task> <outcome>` lines, if the task moved any host's `current`."""
    if not record.moved:
        return []
    return [host_line(host.name, "ended on", f"{current_text(host)}: {outcome_text(host)}")
            for host in record.hosts.values()]
