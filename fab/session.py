"""Remote commands on a Fabric connection: their output as it comes, their exit
status, and a time limit.

Fabric's `Connection.run` (invoke's Runner) starts a thread per output stream and a
timer thread for every command, and watches for prompts: about 1.3 ms of the
controller's CPU per command more than the session itself. A deploy runs a few
commands on each of hundreds of hosts and never answers prompts, so here one
thread (the caller's) reads both streams of a session Fabric opened
(`Connection.create_session`, which fab.hosts.StoppableConnection tracks for
interrupts) and nothing else is started.

`run` runs one command in a session of its own. A `Shell` runs a host's commands
one after another in one session (fab/remote/serve.sh): a session costs a host
about 3 ms of CPU (sshd's process for it, a login shell, ours) and the
controller a round trip to open it, and a deploy runs three or more commands on
every host.
"""
import codecs
import dataclasses
import secrets
import socket
import threading
import time

from fab import shell

#: How long a read of stdout waits before stderr is read too (stderr is read whenever
#: stdout has something, and at its end): how late a streamed error line may show.
#: Unshown, stderr only has to be taken before it fills the session's window (2 MB):
#: a fleet's commands mostly wait for their hosts, and each wake costs the controller.
STDERR_EVERY = 0.1
STDERR_UNSHOWN_EVERY = 1.0
_BLOCK = 1 << 16
#: What fab/remote/serve.sh prints on both streams once a command ended, right after
#: its output: "<this> <token> <exit status>\n".
DONE = b"@@fab-done"


@dataclasses.dataclass
class Ran:
    """What a command did: its output (text), its exit status (-1: none came, as when
    the session or the connection closed first) and whether it ran out of time."""

    stdout: str
    stderr: str
    exited: int
    timed_out: bool = False


def run(connection, command, timeout, out=None, err=None):
    """Run `command` in a new session of `connection` and wait at most `timeout`
    seconds for it to end (then its session is closed, which stops it: fab/remote/
    step.sh); return a Ran. `out` and `err` (file-like, optional) are given the text
    of stdout and stderr as it comes. Stdin is left open and never written (step.sh
    watches it to learn that the controller is gone)."""
    deadline = time.monotonic() + timeout
    channel = connection.create_session()
    try:
        channel.exec_command(command)
        stdout, stderr = _Stream(channel, channel.recv, out), _Stream(channel, channel.recv_stderr, err)
        _collect(channel, stdout, stderr, deadline)
        if stderr.ended and channel.status_event.wait(max(deadline - time.monotonic(), 0)):
            return Ran(stdout.text(), stderr.text(), channel.exit_status)
        return Ran(stdout.text(), stderr.text(), -1, timed_out=True)
    finally:
        channel.close()


class Shell:
    """One session of `connection` that runs the commands given it one after another
    (fab/remote/serve.sh), each as `run` would: a command that runs out of time, or
    is interrupted (its sessions closed), stops with the session, and the next
    command opens another."""

    def __init__(self, connection):
        self._connection = connection
        self._channel = None
        self._busy = threading.Lock()

    def run(self, script, args, timeout, out=None, err=None):
        """Run `script` with `args` as $1... as `run` does; None if this shell is
        running another command now (the caller runs this one in a session of its own)."""
        if not self._busy.acquire(blocking=False):
            return None
        try:
            return self._run(script, args, timeout, out, err)
        finally:
            self._busy.release()

    def _run(self, script, args, timeout, out, err):
        deadline = time.monotonic() + timeout
        channel = self._channel
        if channel is None or channel.closed or channel.eof_received or channel.exit_status_ready():
            channel = self._channel = self._connection.create_session()
            channel.exec_command(shell.command("bash", "-c", shell.remote_script("serve"), "fab"))
        token = secrets.token_hex(8).encode()
        command = shell.with_arguments(script, args).encode()
        done = DONE + b" " + token + b" "
        try:
            channel.sendall(b"%s %d\n%s" % (token, len(command), command))
            stdout, stderr = _Stream(channel, channel.recv, out, done), _Stream(channel, channel.recv_stderr, err, done)
            _collect(channel, stdout, stderr, deadline)
        except BaseException:
            self.close()
            raise
        if stdout.status is not None and stderr.status is not None:
            return Ran(stdout.text(), stderr.text(), stdout.status)
        self.close()  # ended with its session, or cut short: the next command opens another
        return Ran(stdout.text(), stderr.text(), -1, timed_out=time.monotonic() >= deadline)

    def close(self):
        channel, self._channel = self._channel, None
        if channel is not None:
            channel.close()


def _collect(channel, stdout, stderr, deadline):
    """Read both streams until each has ended or `deadline` (monotonic) passed."""
    every = STDERR_EVERY if stderr.shown else STDERR_UNSHOWN_EVERY
    while not stdout.ended and time.monotonic() < deadline:
        stdout.read(min(every, deadline - time.monotonic()))
        while channel.recv_stderr_ready() and not stderr.ended:  # all of it: the window frees only as it is read
            stderr.read(0)
    while not stderr.ended and time.monotonic() < deadline:  # the rest of it is here or coming
        stderr.read(deadline - time.monotonic())


class _Stream:
    """One output stream of a session, decoded as UTF-8 as it arrives (a character
    split between two reads is whole in the text; bad bytes become U+FFFD). With
    `done` (a Shell's command), it ends where serve.sh printed `done` when the command
    ended, then its exit status (`status`) and a newline; none of it is text. What may
    be the start of `done` at the end of what came is held until more comes (only
    that: a line is handed on whole as soon as it is here)."""

    def __init__(self, channel, receive, target, done=None):
        self._channel, self._receive, self._target = channel, receive, target
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._pieces = []
        self._done = done
        self._held = b""  # what may be the start of `done`, until more comes
        self.ended = False
        self.status = None

    def read(self, wait):
        """Take what has arrived, waiting at most `wait` seconds for something."""
        self._channel.settimeout(max(wait, 0))
        try:
            data = self._receive(_BLOCK)
        except socket.timeout:
            return
        if not data:
            self.ended = True
            self._take(self._held, final=True)
            return
        if self._done is None:
            self._take(data)
            return
        data = self._held + data
        at = data.find(self._done)
        if at < 0:
            keep = _started(data, self._done)
            self._held = data[len(data) - keep:]
            self._take(data[:len(data) - keep])
            return
        status, newline, _ = data[at + len(self._done):].partition(b"\n")
        if not newline:  # the status line is not whole yet
            self._held = data[at:]
            self._take(data[:at])
            return
        self._take(data[:at], final=True)
        self._held = b""
        self.status = int(status) if status.isdigit() else -1
        self.ended = True

    def _take(self, data, final=False):
        text = self._decoder.decode(data, final=final)
        if text:
            self._pieces.append(text)
            if self._target is not None:
                self._target.write(text)

    @property
    def shown(self):
        """Whether its text is given to someone as it comes."""
        return self._target is not None

    def text(self):
        return "".join(self._pieces)


def _started(data, marker):
    """How many bytes at the end of `data` are the start of `marker` (0: none)."""
    at = data.find(marker[:1], max(len(data) - len(marker) + 1, 0))
    while at >= 0 and not marker.startswith(data[at:]):
        at = data.find(marker[:1], at + 1)
    return len(data) - at if at >= 0 else 0
