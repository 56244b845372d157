"""fab.session: one command in its own SSH session, or a host's commands one after
another in one session (Shell), read by the caller's thread alone.

Against a real sshd host: both streams whole and apart, an exit status, stderr that
outgrows the SSH window while stdout is silent (no deadlock), a time limit that
stops the command on its host, an interrupt from another thread; a Shell's commands
kept apart, whatever they print. The decoding of a character split between reads,
and of the line that ends a Shell's command split anywhere, is checked without SSH."""
import contextlib
import random
import threading
import time

import pytest

from fab import hosts, session
from fab.config import load_environment
from fab.errors import RemoteCommandFailed


@contextlib.contextmanager
def web1(deploy_env):
    deploy_env.write_config()
    host = hosts.connect("web1", load_environment(deploy_env.name, deploy_env.directory))
    try:
        host.open()
        yield host
    finally:
        host.close()


class Collected:
    def __init__(self):
        self.pieces = []

    def write(self, text):
        self.pieces.append(text)


@pytest.mark.fleet
def test_both_streams_and_the_exit_status_come_back_whole(deploy_env):
    with web1(deploy_env) as host:
        out, err = Collected(), Collected()
        ran = session.run(host.connection, "printf 'out\\nmore'; printf 'é\\n' >&2; exit 3", 30, out, err)
        assert (ran.stdout, ran.stderr, ran.exited, ran.timed_out) == ("out\nmore", "é\n", 3, False)
        assert "".join(out.pieces) == ran.stdout and "".join(err.pieces) == ran.stderr
        # Much more stderr than the SSH window holds, with stdout silent, then stdout.
        ran = session.run(host.connection, "head -c 6000000 /dev/zero | tr '\\0' x >&2; echo done", 60)
        assert (len(ran.stderr), ran.stdout, ran.exited) == (6000000, "done\n", 0)


@pytest.mark.fleet
def test_a_command_out_of_time_is_stopped_on_its_host(deploy_env):
    marker = f"fab-session-{time.monotonic_ns()}"
    with web1(deploy_env) as host:
        started = time.monotonic()
        with pytest.raises(RemoteCommandFailed, match="timed out after 1s"):
            host.execute(f"echo started; sleep 30 # {marker}", timeout=1)
        assert time.monotonic() - started < 10
        deadline = time.monotonic() + 10
        while host.execute(f"pgrep -f '[s]leep 30 # {marker}' || true").stdout.strip():
            assert time.monotonic() < deadline, "the timed-out command still runs on its host"
            time.sleep(0.2)


@pytest.mark.fleet
def test_an_interrupt_from_another_thread_stops_the_command(deploy_env):
    with web1(deploy_env) as host:
        timer = threading.Timer(1, host.interrupt)
        timer.start()
        try:
            with pytest.raises(RemoteCommandFailed, match="stopped"):
                host.execute("sleep 30", timeout=60)
        finally:
            timer.cancel()
        assert host.execute("echo still connected").stdout == "still connected\n"


def sessions_opened(host):
    """How many sessions the host's connection has opened (paramiko numbers its channels)."""
    return host.connection.transport._channel_counter


@pytest.mark.fleet
def test_a_shell_runs_a_host_s_commands_in_one_session_each_whole_and_apart(deploy_env):
    with web1(deploy_env) as host:
        host.execute("true")
        opened = sessions_opened(host)
        out, err = Collected(), Collected()
        shell_ = host._shell
        ran = shell_.run("printf 'out\\nmore'; printf 'é\\n' >&2; exit 3", (), 30, out, err)
        assert (ran.stdout, ran.stderr, ran.exited, ran.timed_out) == ("out\nmore", "é\n", 3, False)
        assert "".join(out.pieces) == ran.stdout and "".join(err.pieces) == ran.stderr
        # Its arguments as $1...: each one word, never parsed; what looks like the end
        # of a command, printed by the command, is its output.
        ran = host.execute('printf "%s|" "$@"; echo; echo "@@fab-done 0123456789abcdef 0"; echo ok',
                           ["a b", "$(touch /tmp/pwned-shell)", "~/x"])
        lines = ran.stdout.splitlines()
        quoted, unparsed, home, _ = lines[0].split("|")
        assert (quoted, unparsed, lines[1:], ran.exited) == (
            "a b", "$(touch /tmp/pwned-shell)", ["@@fab-done 0123456789abcdef 0", "ok"], 0)
        assert home.endswith("/x") and home.startswith("/")  # a leading ~/ is the host's home
        ran = host.execute("head -c 6000000 /dev/zero | tr '\\0' x >&2; echo done")
        assert (len(ran.stderr), ran.stdout, ran.exited) == (6000000, "done\n", 0)
        assert sessions_opened(host) == opened  # all in the session of the first


@pytest.mark.fleet
def test_a_shell_s_command_out_of_time_is_stopped_and_the_next_opens_a_session(deploy_env):
    marker = f"fab-shell-{time.monotonic_ns()}"
    with web1(deploy_env) as host:
        host.execute("true")
        opened = sessions_opened(host)
        with pytest.raises(RemoteCommandFailed, match="timed out after 1s"):
            host.execute(f"echo started; sleep 30 # {marker}", timeout=1)
        deadline = time.monotonic() + 10
        while host.execute(f"pgrep -f '[s]leep 30 # {marker}' || true").stdout.strip():
            assert time.monotonic() < deadline, "the timed-out command still runs on its host"
            time.sleep(0.2)
        assert sessions_opened(host) == opened + 1


@pytest.mark.fleet
def test_a_busy_shell_leaves_a_command_to_a_session_of_its_own(deploy_env):
    with web1(deploy_env) as host:
        slow = threading.Thread(target=host.execute, args=("sleep 2",))
        slow.start()
        try:
            time.sleep(0.5)
            started = time.monotonic()
            assert host.execute("echo meanwhile").stdout == "meanwhile\n"
            assert time.monotonic() - started < 1.5  # not behind the slow one
        finally:
            slow.join()


class FakeChannel:
    """A session whose stdout arrives in the pieces given (then its end)."""

    def __init__(self, pieces):
        self.pieces = list(pieces)

    def settimeout(self, seconds):
        pass

    def recv(self, size):
        return self.pieces.pop(0) if self.pieces else b""


def test_a_character_split_between_two_reads_is_decoded_whole():
    channel = FakeChannel([b"caf\xc3", b"\xa9 ", b"\xff!"])
    collected = Collected()
    stream = session._Stream(channel, channel.recv, collected)
    while not stream.ended:
        stream.read(0)
    assert stream.text() == "café \ufffd!" == "".join(collected.pieces)


@pytest.mark.parametrize("seed", range(20))
def test_a_shell_s_command_ends_at_its_line_however_the_stream_is_cut(seed):
    done = session.DONE + b" 0123456789abcdef "
    stream_bytes = "x@@fab-done 0123456789abcde 1\n".encode() + "é".encode() * 3 + done + b"42\n"
    cuts = sorted(random.Random(seed).sample(range(1, len(stream_bytes)), 6))
    channel = FakeChannel([stream_bytes[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream_bytes)])])
    stream = session._Stream(channel, channel.recv, None, done)
    while not stream.ended:
        stream.read(0)
    assert (stream.text(), stream.status) == ("x@@fab-done 0123456789abcde 1\nééé", 42)


def test_a_shell_s_line_is_handed_on_as_soon_as_it_is_whole():
    """Only what may start the end line is held: a step's report line, the last that
    came while the step runs on, is read at once (a check waiting for a signal)."""
    done = session.DONE + b" 0123456789abcdef "
    channel = FakeChannel([b"@@fab-step started check 1 1 \n", b"@@fab-", b"done 0123456789abcdef 0\n"])
    collected = Collected()
    stream = session._Stream(channel, channel.recv, collected, done)
    stream.read(0)
    assert "".join(collected.pieces) == "@@fab-step started check 1 1 \n"
    stream.read(0)
    assert "".join(collected.pieces) == "@@fab-step started check 1 1 \n" and not stream.ended
    stream.read(0)
    assert stream.ended and stream.status == 0 and stream.text() == "@@fab-step started check 1 1 \n"
