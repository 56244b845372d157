"""The environment's deploy lock as a task holds it: an flock on the environment's
first host (the lock host), held by fab/remote/lock.sh in a session of its own on
that host's connection (the fleet's, or one of its own when the task leaves the
first host out), open as long as the task. When the deployer ends, is killed, or
loses its connection, that process ends and the kernel frees the lock. Stopping a
step closes only the step's session (fab.hosts.StoppableConnection). Of two
deploys started together exactly one gets it; the other is told who holds it,
since when, from where and for what.

Losing the lock while the task runs (`unlock` stopped its holder, its connection
dropped) is noticed before the task's next change on any host (`HeldLock.check`,
called by fab.fleet.Fleet before every step): the task stops there and only puts
back what it swapped. The hosts enforce it too: each holder gets a generation
(fab/remote/fence.sh) that its swaps carry, and a host refuses a swap of a
holder whose lock was broken since. The lock's one-shot remote operations
(break it, raise the generation, read its owner record) are fab.operations.lock.
"""
import base64
import binascii
import contextlib
import math

from fab import freezes, shell
from fab.errors import LockHeld, LockLost, PreflightError
from fab.operations import lock, state
from fab.shown import shown


class HeldLock:
    """The lock, held in a session of its own on `host`'s connection."""

    def __init__(self, host, record):
        self.host = host
        self.record = record
        self._channel = None
        #: The lock host's state (`state.sh`'s output), read under the lock when asked.
        self.state_output = None
        #: Seconds since the previous holder let go: 0.0 if it did not let go cleanly
        #: (so: maybe just now), None if nobody ever held the lock.
        self.released_ago = None
        #: This holder's lock generation (fence.sh): every swap of the task carries it.
        self.generation = ""
        #: The record of the holder before us ({} if none or unreadable).
        self.previous_holder = {}
        #: The environment's freeze as read under the lock (fab.freezes.decode; None: not frozen).
        self.freeze = None
        #: Why the lock is gone while the task still runs (None while we hold it).
        self.lost = None
        self._answers = None
        self._reported = False  # LockLost raised: the task is putting back and recording now
        self._putting_back = 0

    @property
    def acquired(self):
        return self._channel is not None

    def acquire(self, read_state=False, timeout=30):
        """Take the lock (and with `read_state`, read the lock host's state under it, in
        the same round trip); raise LockHeld naming the holder if another task has it."""
        self.host.open()
        channel = self.host.connection.transport.open_session()
        channel.settimeout(timeout)
        paths = self.host.paths
        channel.exec_command(shell.step_command(shell.remote_script("lock"), lock.lock_arguments(
            paths, self.record, state.arguments(paths, state.python_to_identify(self.host)) if read_state else ())))
        answers = channel.makefile("r")
        answer = answers.readline().strip()
        if answer.startswith("acquired"):
            self._channel, self._answers = channel, answers
            fields = answer.split()
            self.released_ago = released_ago(*fields[1:3])
            self.generation = fields[3] if len(fields) > 3 and fields[3].isdigit() else ""
            self.previous_holder = lock.decode_record(fields[4]) if len(fields) > 4 and fields[4] != "-" else {}
            self.freeze = freezes.decode(fields[5]) if len(fields) > 5 else None
            if read_state:
                try:
                    self.state_output = _read_until(answers, "@@state-end")
                except BaseException:
                    self.release()
                    raise
            return "acquired"
        error = channel.makefile_stderr("r").read().decode(errors="replace").strip()
        channel.close()
        if answer.startswith("held"):
            holder = lock.decode_record(answer.partition(" ")[2])
            env = self.host.env.name
            raise LockHeld(
                f"environment {env} is locked by {lock.describe(holder)}; the lock frees itself "
                f"when that task ends or its connection drops (if it hangs: `fab {env} unlock`)",
                holder=lock.describe(holder))
        raise PreflightError(f"cannot take the deploy lock on {self.host.name}: "
                             f"{error.splitlines()[-1] if error else 'no answer'}")

    def check(self):
        """Raise LockLost, once, if the lock has ended under the task; after that the
        task is putting back and recording, and this lets it (swaps only put back)."""
        if self.notice() and not self._reported and not self._putting_back:
            self._reported = True
            raise LockLost(self.lost)

    @contextlib.contextmanager
    def putting_back(self):
        """While the task puts hosts back, losing the lock does not stop it: putting
        back is what a lost lock asks for (its swaps are then put-backs only)."""
        self._putting_back += 1
        try:
            yield
        finally:
            self._putting_back -= 1

    def notice(self):
        """Whether the lock has ended under the task (its holder on the host stopped:
        `unlock`, or the connection dropped); the first time, `lost` says why and by whom."""
        if self.lost is not None:
            return True
        channel = self._channel
        if channel is None:
            return False
        transport = channel.get_transport()
        if not (channel.exit_status_ready() or channel.closed or transport is None or not transport.is_active()):
            return False
        self.lost = self._why_lost()
        return True

    def _why_lost(self):
        """Why the lock ended; who broke it, from the audit line lock.sh says it was stopped with."""
        try:
            channel = self._channel
            channel.settimeout(2)
            rest = self._answers.read() if channel.exit_status_ready() else ""
        except Exception:  # noqa: BLE001 - the connection itself may be gone
            rest = ""
        for line in rest.splitlines() if isinstance(rest, str) else rest.decode(errors="replace").splitlines():
            if line.startswith("broken "):
                try:
                    audit = base64.b64decode(line.partition(" ")[2]).decode(errors="replace")
                except (ValueError, binascii.Error):
                    continue
                breaker = " ".join(shown(audit).split())[:200].rstrip(":")  # a host's words: one clean line
                paths = self.host.paths
                return (f"the deploy lock on {self.host.name} was taken away: {breaker} "
                        f"(fab {self.host.env.name} unlock; see {paths.relative(paths.lock_breaks_log)})")
        return (f"the deploy lock on {self.host.name} was lost: its holder there ended "
                "(the connection dropped, or it was stopped)")

    def release(self):
        """Let go: our end of the stream closes, the holding process ends, the kernel frees
        it. The connection stays open (it may be the host's fleet connection)."""
        if self._channel is not None:
            try:
                if not self.notice():
                    self._channel.shutdown_write()
                    self._channel.recv_exit_status()  # the holder has ended: the lock is free
            finally:
                self._channel.close()
                self._channel = None


def _read_until(answers, marker):
    """The lines before `marker`; an answer that ends first is an error of the host's."""
    lines = []
    for line in answers:
        if line.rstrip("\n") == marker:
            return "".join(lines)
        lines.append(line)
    raise PreflightError(f"reading the state under the lock failed: {(lines or ['no answer'])[-1].strip()}")


def released_ago(released="-", now="-"):
    """Seconds between the previous holder letting go and now, from `lock.sh`'s answer
    (both on the lock host's clock): None if nobody ever held the lock ("fresh"),
    0.0 if it did not let go cleanly or the answer is unreadable (maybe just now)."""
    if released == "fresh":
        return None
    try:
        ago = float(now) - float(released)
    except ValueError:
        return 0.0
    return ago if math.isfinite(ago) and ago > 0 else 0.0  # "inf", "nan": unreadable too




#: Seconds of leeway when deciding whether state read while the lock was being taken
#: may predate the previous holder's last change (two clocks measure the durations).
STATE_LEEWAY = 0.25


def may_predate_release(released_ago, reading_for):
    """Whether state read in the last `reading_for` seconds, while the lock was being
    taken, may predate the previous holder's last change: it let go `released_ago`
    seconds ago (0.0: not cleanly, so maybe just now; None: nobody ever held the lock)."""
    return released_ago is not None and released_ago < reading_for + STATE_LEEWAY
