"""One remote command in its own SSH session on a Fabric connection: its output as
it comes, its exit status, and a time limit.

Fabric's `Connection.run` (invoke's Runner) starts a thread per output stream and a
timer thread for every command, and watches for prompts: about 1.3 ms of the
controller's CPU per command more than the session itself. A deploy runs a few
commands on each of hundreds of hosts and never answers prompts, so here one
thread (the caller's) reads both streams of a session Fabric opened
(`Connection.create_session`, which fab.hosts.StoppableConnection tracks for
interrupts) and nothing else is started.
"""
import codecs
import dataclasses
import socket
import time

#: How long a read of stdout waits before stderr is read too (stderr is read whenever
#: stdout has something, and at its end): how late a streamed error line may show.
#: Unshown, stderr only has to be taken before it fills the session's window (2 MB):
#: a fleet's commands mostly wait for their hosts, and each wake costs the controller.
STDERR_EVERY = 0.1
STDERR_UNSHOWN_EVERY = 1.0
_BLOCK = 1 << 16


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
        every = STDERR_EVERY if err is not None else STDERR_UNSHOWN_EVERY
        while not stdout.ended and time.monotonic() < deadline:
            stdout.read(min(every, deadline - time.monotonic()))
            while channel.recv_stderr_ready():  # all of it: the window frees only as it is read
                stderr.read(0)
        while not stderr.ended and time.monotonic() < deadline:  # the rest of it is here or coming
            stderr.read(deadline - time.monotonic())
        if stderr.ended and channel.status_event.wait(max(deadline - time.monotonic(), 0)):
            return Ran(stdout.text(), stderr.text(), channel.exit_status)
        return Ran(stdout.text(), stderr.text(), -1, timed_out=True)
    finally:
        channel.close()


class _Stream:
    """One output stream of a session, decoded as UTF-8 as it arrives (a character
    split between two reads is whole in the text; bad bytes become U+FFFD)."""

    def __init__(self, channel, receive, target):
        self._channel, self._receive, self._target = channel, receive, target
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._pieces = []
        self.ended = False

    def read(self, wait):
        """Take what has arrived, waiting at most `wait` seconds for something."""
        self._channel.settimeout(max(wait, 0))
        try:
            data = self._receive(_BLOCK)
        except socket.timeout:
            return
        self.ended = not data
        text = self._decoder.decode(data, final=self.ended)
        if text:
            self._pieces.append(text)
            if self._target is not None:
                self._target.write(text)

    def text(self):
        return "".join(self._pieces)
