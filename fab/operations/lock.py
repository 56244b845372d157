"""The environment's deploy lock: an flock on the environment's first host.

Runs on: the first host of the environment (the lock host), in a session of its
own on that host's connection (the fleet's, or one of its own when the task
leaves the first host out), open as long as the task. The lock is held by the
process in that session (fab/remote/lock.sh): when the deployer ends, is killed,
or loses its connection, the process ends and the kernel frees the lock.
Stopping a step closes only the step's session (fab.hosts.StoppableConnection).
Of two deploys started together exactly one gets it; the other is told who
holds it, since when, from where and for what.

Losing the lock while the task runs (`unlock` stopped its holder, its connection
dropped) is noticed before the task's next change on any host (`HeldLock.check`,
called by fab.hosts.Fleet before every step): the task stops there and only puts
back what it swapped. The hosts enforce it too: each holder gets a generation
(fab/remote/fence.sh) that its swaps carry, and a host refuses a swap of a
holder whose lock was broken since.
"""
import base64
import binascii
import contextlib
import json
import math
import os

from fab import host_values as values
from fab import shell
from fab.shown import shown
from fab.errors import LockHeld, LockLost, PreflightError
from fab.identity import controller_name
from fab.releases import utcnow

ROLES = "first host"


def owner_record(task, performer, claim=None):
    """Who holds the lock, as shown to whoever is refused; `claim`: the token of the
    holder's claim in the history store (whether a claim's holder still holds the lock)."""
    record = {
        "owner": performer,
        "machine": controller_name(),
        "pid": os.getpid(),
        "task": task,
        "since": utcnow().isoformat(),
    }
    return {**record, "claim": claim} if claim else record


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
        channel.exec_command(shell.step_command(
            shell.remote_script("lock"),
            [self.host.env.code_root, json.dumps(self.record),
             shell.remote_script("state") if read_state else "", shell.remote_script("fence")]))
        answers = channel.makefile("r")
        answer = answers.readline().strip()
        if answer.startswith("acquired"):
            self._channel, self._answers = channel, answers
            fields = answer.split()
            self.released_ago = released_ago(*fields[1:3])
            self.generation = fields[3] if len(fields) > 3 and fields[3].isdigit() else ""
            self.previous_holder = decode_record(fields[4]) if len(fields) > 4 and fields[4] != "-" else {}
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
            holder = decode_record(answer.partition(" ")[2])
            env = self.host.env.name
            raise LockHeld(
                f"environment {env} is locked by {describe(holder)}; the lock frees itself "
                f"when that task ends or its connection drops (if it hangs: `fab {env} unlock`)")
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
                return (f"the deploy lock on {self.host.name} was taken away: {breaker} "
                        f"(fab {self.host.env.name} unlock; see log/lock-breaks.log)")
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


def force_release(host, breaker):
    """Break the lock whoever holds it (stopping its holder, and only it), with an
    audit line in log/lock-breaks.log. Returns (the holder's record, the lock's new
    generation), or None if it was free."""
    audit = f"{utcnow().isoformat(timespec='seconds')} lock broken by {breaker}:"
    output = host.run(shell.remote_script("unlock"),
                      [host.env.code_root, audit, shell.remote_script("fence")]).strip()
    if output.startswith("broken"):
        fields = output.split()
        return decode_record(fields[1] if len(fields) > 1 else ""), fields[2] if len(fields) > 2 else ""
    return None


#: The owner record's fields as the strict reader takes them (fab.host_values): a
#: field that fails is left out (shown as "?"), the others still say who holds it.
_RECORD_FIELDS = {
    "owner": lambda value: values.text(value, "owner", 200),
    "machine": lambda value: values.text(value, "machine", 200),
    "task": lambda value: values.text(value, "task", 100),
    "pid": lambda value: values.integer(value, 1, 1 << 31, "pid"),
    "lock_pid": lambda value: values.integer(value, 1, 1 << 31, "lock_pid"),
    "since": lambda value: values.moment(value, "since"),
    "claim": lambda value: values.hex_digest(value, "claim"),
}
#: The most bytes of an owner record read (a real one is under 300).
RECORD_LIMIT = 4096


def raise_generation(host, generation):
    """Make `host` refuse swaps of lock holders before `generation` (a broken lock's)."""
    host.run(shell.remote_script("fence"), [host.env.code_root, "raise", generation])
    return f"swaps of the broken holder refused from generation {generation}"


def decode_record(encoded):
    """The lock owner record a host reported (base64 of JSON): only its known fields
    that pass the strict reader; {} if it is not a record at all."""
    try:
        data = json.loads(base64.b64decode(encoded[:RECORD_LIMIT * 2], validate=True)[:RECORD_LIMIT].decode())
    except (ValueError, binascii.Error, RecursionError):
        return {}
    if not isinstance(data, dict):
        return {}
    record = {}
    for name, check in _RECORD_FIELDS.items():
        try:
            record[name] = check(data[name])
        except (KeyError, values.Unreadable):
            pass
    return record


def describe(holder):
    if not holder.get("owner"):
        return "an unknown task"
    return (
        f"{holder['owner']} ({holder.get('task', '?')}, pid {holder.get('pid', '?')} "
        f"on {holder.get('machine', '?')}, since {holder.get('since', '?')})"
    )
