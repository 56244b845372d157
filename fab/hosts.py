"""The SSH transport: one connection to one host of an environment, running scripts.

Hosts are names that an ssh_config resolves (HostName, Port, User, IdentityFile),
as for any SSH user. Host keys are verified against known_hosts by default;
an unknown or changed key is refused, never silently accepted.
"""
import contextlib
import functools
import getpass
import hmac
import io
import os
import socket
import sys
import threading
import time
import zlib

import paramiko
import paramiko.config
import paramiko.util
from paramiko.compress import ZlibDecompressor
from fabric import Config, Connection

from fab import hostkeys, session, shell, steps as batch
from fab.errors import ConfigError, ConnectionLost, RemoteCommandFailed
from fab.paths import Paths
from fab.secrets import MaskedLines


class Host:
    """One SSH connection to one host of an environment.

    `state` is filled when the fleet opens (one read of the host's state), so every
    operation can rely on it and on `paths`.
    """

    def __init__(self, name, env, connection):
        self.name = name
        self.env = env
        self.connection = connection
        self.state = None  # fab.operations.state.HostState, read when the fleet opens
        #: Bounds how many of the fleet's connections open at once (set by Fleet).
        self.opening = contextlib.nullcontext()
        #: When `interrupt` last closed this host's sessions (monotonic), if ever.
        self._interrupted_at = None
        #: The session this host's commands run in, one after another.
        self._shell = session.Shell(connection)

    @property
    def paths(self):
        """The environment's remote paths (fab.paths): absolute once the state is read;
        before that (taking the lock, reading the state) under the code root as
        configured, whose `~/` the remote shell expands."""
        return self.state.paths if self.state else Paths(self.env.code_root)

    @property
    def address(self):
        """The network address ssh_config resolves this host to."""
        return self.connection.host

    def execute(self, script, args=(), timeout=None, stream=False, watch=None):
        """Run a shell script (with `args` as $1...) in one round trip; return its fab.session.Ran
        whatever its exit code.

        Output is captured, or with `stream` shown as it comes; `watch` (a file-like
        object, e.g. fab.steps.Reader) is given stdout as it comes. The script never
        reads stdin, and it stops when its connection closes (a timeout, an
        interrupt, a dead deployer). Raises RemoteCommandFailed on a timeout and
        ConnectionLost if the connection dropped.
        """
        timeout = timeout or self.env.command_timeout
        self.open()  # connection errors (a host key, a refused port) are not a lost connection
        timed_out = f"timed out after {timeout:.0f}s (stopped)"
        started = time.monotonic()
        shown = [MaskedLines(sys.stdout), MaskedLines(sys.stderr)] if stream else [watch, None]
        try:
            result = self._shell.run(script, args, timeout, *shown)
            if result is None:  # the shell runs another command now: this one in a session of its own
                result = session.run(self.connection, shell.step_command(script, args), timeout, *shown)
        except (socket.error, EOFError, paramiko.SSHException) as error:
            raise ConnectionLost(f"connection to {self.name} lost: {error or type(error).__name__}") from None
        if stream:
            for output in shown:
                output.flush()
        if result.timed_out:
            raise RemoteCommandFailed(timed_out, result.stderr.strip(), stdout=result.stdout)
        if result.exited != 0 and self._interrupted_at is not None and self._interrupted_at >= started:
            # Its session closed under it (-1), or its exit status (TERM's) came first.
            raise RemoteCommandFailed("stopped", result.stderr.strip(), stdout=result.stdout)
        if result.exited == -1 or not self._transport_active():
            raise ConnectionLost(f"connection to {self.name} lost during the step",
                                 (result.stderr + result.stdout).strip(), stdout=result.stdout)
        return result

    def run(self, script, args=(), timeout=None, check=True):
        """Run a shell script in one round trip; return its stdout.

        Raises RemoteCommandFailed with the script's last error line when it fails.
        """
        result = self.execute(script, args, timeout)
        if check and result.exited != 0:
            output = (result.stderr + result.stdout).strip()
            last = output.splitlines()[-1] if output else f"exit status {result.exited}"
            raise RemoteCommandFailed(last, output)
        return result.stdout

    def run_steps(self, steps, timeout=None, on_report=None):
        """Run `steps` (fab.steps.Step) in one round trip; return their Outcomes.

        `on_report(report)` is called as each report arrives from the host (a step
        started, a step ended well: fab.steps.Reader), in a thread of Fabric's.
        Raises StepsFailed naming the step that failed, with the outcomes of those
        done before it and, if the host said, its seconds. The batch's time limit
        is its steps' together.
        """
        timeout = timeout or self.env.command_timeout * len(steps)
        reader = batch.Reader(steps, on_report)
        try:
            result = self.execute(*batch.on_host(steps), timeout=timeout, watch=reader)
        except RemoteCommandFailed as error:  # cut short: name the step it cut, not the first
            reader.close()
            raise StepsFailed(str(error), batch.without_reports(str(error.output)),
                              step=self._cut(steps, reader), done=reader.done) from None
        reader.close()
        if result.exited != 0:
            output = result.stderr.strip()
            last = output.splitlines()[-1] if output else f"exit status {result.exited}"
            failed = reader.failed
            raise StepsFailed(last, output, step=failed.step if failed else self._cut(steps, reader),
                              done=reader.done, seconds=failed.seconds if failed else None)
        return reader.done

    @staticmethod
    def _cut(steps, reader):
        """The step a batch that ended early was in: the one begun, else the next one."""
        return reader.running or steps[min(len(reader.done), len(steps) - 1)].name

    def upload(self, content, path):
        """Write `content` (text) into the existing file `path` over SFTP: the bytes
        never appear on a command line, and the file keeps its mode."""
        self.open()
        try:
            self.connection.sftp().putfo(io.BytesIO(content.encode()), path)
        except (socket.error, EOFError, paramiko.SSHException) as error:
            raise ConnectionLost(f"connection to {self.name} lost: {error or type(error).__name__}") from None
        except OSError as error:
            raise RemoteCommandFailed(f"cannot write {path}: {error.strerror or error}") from None

    def _transport_active(self):
        transport = self.connection.transport
        return transport is not None and transport.is_active()

    def open(self):
        """Connect (verifying the host key) unless already connected; at most
        `ssh_concurrency` of the fleet's connections open at once."""
        if not self._transport_active():
            with self.opening:
                if not self._transport_active():
                    self.connection.open()

    def interrupt(self):
        """Stop whatever step runs here: closing its session ends it on the host
        (fab/remote/step.sh). Only the steps' sessions close: the connection stays
        up, and with it anything else it carries, such as the deploy lock."""
        self._interrupted_at = time.monotonic()
        self.connection.close_sessions()

    def close(self):
        """Close the connection and every ProxyJump hop under it (Fabric leaves those open)."""
        connection = self.connection
        while isinstance(connection, Connection):
            connection.close()
            connection = connection.gateway


class StepsFailed(RemoteCommandFailed):
    """A step of a batch failed: `step` names it, `done` holds the Outcomes before it,
    `seconds` what it took on its host (None: the host did not say, it was cut short)."""

    def __init__(self, message, output="", step=None, done=(), seconds=None):
        super().__init__(message, output)
        self.step = step
        self.done = list(done)
        self.seconds = seconds


class StoppableConnection(Connection):
    """A Fabric Connection that knows the sessions its commands run in (SFTP included),
    so the running ones can be closed without closing the connection. (Attributes go
    through `_set`: a Connection's other attributes are its configuration.)"""

    #: A real attribute, as Fabric's Connection declares its others: undeclared, its
    #: __init__ wrote it into the connection's configuration instead, merging the
    #: whole configuration again for each host (a third of its connection object).
    inline_ssh_env = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._set(_sessions=set(), _sessions_lock=threading.Lock())

    def __setattr__(self, key, value):
        # invoke's DataProxy sets a real attribute if `key in dir(self)`, else a config
        # key: a Connection's __init__ sets about 15, and each dir() listed and sorted
        # some 150 names (0.4 ms of each host's connection). dir() of an instance is
        # its own attributes and those of the classes it inherits from.
        if key in self.__dict__ or any(key in vars(klass) for klass in type(self).__mro__):
            object.__setattr__(self, key, value)
        else:
            self[key] = value

    def create_session(self):
        channel = super().create_session()
        with self._sessions_lock:
            self._sessions.difference_update([one for one in self._sessions if one.closed])
            self._sessions.add(channel)
        return channel

    def close_sessions(self):
        with self._sessions_lock:
            sessions = list(self._sessions)
            self._sessions.clear()
        for channel in sessions:
            channel.close()
        if self._sftp is not None:  # Fabric's own SFTP client, opened by sftp()
            self._sftp.close()
            self._set(_sftp=None)


def connect(name, env):
    """A Connection to host `name`; every hop's host key is checked (see fab.hostkeys)."""
    if env.ssh_config and not os.path.isfile(env.ssh_config_path()):
        raise ConfigError(f"{env.name}: ssh_config file {env.ssh_config_path()} does not exist")
    config = fabric_config(env.ssh_config_path() if env.ssh_config else None)
    connection = StoppableConnection(name, config=config, connect_timeout=10, connect_kwargs={
        **config.connect_kwargs, "compress": env.ssh_compression, "transport_factory": SeldomWakingTransport})
    return Host(name, env, hostkeys.secure(connection))


class StreamCompressor:
    """zlib over a connection's packets as RFC 4253 (6.2) has it: one stream, each packet
    flushed whole (Z_SYNC_FLUSH), so a packet refers back to what the ones before it said.
    paramiko's flush (Z_FULL_FLUSH) forgot it after every packet: each command sent its
    scripts (step.sh, batch.sh) compressed as if for the first time, a host's three
    commands about 7.3 KB. In one stream the second and third cost some 100 bytes
    (4.7 KB in all), and the controller less CPU compressing them."""

    def __init__(self):
        self._zlib = zlib.compressobj()

    def __call__(self, data):
        return self._zlib.compress(data) + self._zlib.flush(zlib.Z_SYNC_FLUSH)


class SeldomWakingTransport(paramiko.Transport):
    """paramiko's Transport, whose thread wakes once a second while its connection is
    idle instead of ten times (to see whether it was closed). A fleet's connections are
    idle most of a deploy while their hosts work: 200 of them waking ten times a second
    cost the controller more CPU than the deploy's commands, and the longer a bigger
    fleet takes, the more (hosts x seconds). Data still wakes it at once; a connection
    closed here ends its thread within a second."""

    _active_check_timeout = 1.0

    _compression_info = {**paramiko.Transport._compression_info,
                         "zlib@openssh.com": (StreamCompressor, ZlibDecompressor),
                         "zlib": (StreamCompressor, ZlibDecompressor)}


_fabric_configs = {}
_fabric_configs_lock = threading.Lock()


def fabric_config(path=None):
    """The Fabric Config of the SSHConfig read from `path` (or from the system's and the
    user's files), made once per process while the files are unchanged: a fleet's
    connections share it (a Connection only reads its config), instead of each
    merging Fabric's defaults and parsing the files again."""
    files = [path] if path else ["/etc/ssh/ssh_config", os.path.expanduser("~/.ssh/config")]
    stamp = tuple(_modified(name) for name in files)
    with _fabric_configs_lock:
        cached = _fabric_configs.get(path)
        if cached is None or cached[0] != stamp:
            loaded = Config(runtime_ssh_path=path) if path else Config()
            config = Config(ssh_config=IndexedSSHConfig(loaded.base_ssh_config))
            cached = _fabric_configs[path] = (stamp, config)
        return cached[1]


class _TokensWhereWritten(paramiko.SSHConfig):
    """paramiko's SSHConfig, expanding tokens (%h, %l, ~ ...) only in a value that has
    one. paramiko works out every token's value for each value a token may appear in,
    whether it has one or not, the controller's FQDN among them: a reverse DNS lookup
    on every connection, slow (or hanging until the resolver gives up) where the
    controller's own name does not resolve."""

    def _tokenize(self, config, target_hostname, key, value):
        if isinstance(value, str) and "%" not in value and "~" not in value:
            return value
        return super()._tokenize(config, target_hostname, key, value)


class IndexedSSHConfig(_TokensWhereWritten):
    """paramiko's SSHConfig of the same blocks, whose lookups do not grow with the
    file: a fleet's ssh_config often has a Host block per host, and paramiko matches
    every block's patterns on each lookup (200 hosts: 80,000 matches, 0.35 s). A block
    of plain names (no wildcard, no negation) applies only to those names, so a
    lookup reads those of its name and the others, in the file's order. With Match
    blocks or CanonicalizeHostname (a second pass under another name) every lookup
    reads every block, as paramiko does."""

    def __init__(self, parsed):
        super().__init__()
        self._config = parsed._config
        self._named, self._others = {}, []
        self._whole = False
        for index, block in enumerate(self._config):
            patterns = block.get("host", [])
            if block.get("matches") or "canonicalizehostname" in block.get("config", {}):
                self._whole = True
            if patterns and not any(char in pattern for pattern in patterns for char in "*?[!"):
                for pattern in set(patterns):
                    self._named.setdefault(pattern, []).append(index)
            else:
                self._others.append(index)

    def lookup(self, hostname):
        if self._whole:
            return super().lookup(hostname)
        narrowed = _PlainNamesMatched()
        narrowed._config = [self._config[i] for i in sorted(self._others + self._named.get(hostname, []))]
        return narrowed.lookup(hostname)


class _PlainNamesMatched(_TokensWhereWritten):
    """paramiko's SSHConfig, matching a plain name (no wildcard, no negation) by
    equality, as fnmatch does, without compiling it into a regular expression first
    (each host's own block name would be compiled once per run: a fleet's worth)."""

    def _pattern_matches(self, patterns, target):
        if isinstance(patterns, list) and not any(char in pattern for pattern in patterns for char in "*?[!"):
            return target in patterns
        return super()._pattern_matches(patterns, target)


def _modified(path):
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_mtime_ns, status.st_size


class _LocalUser:
    """paramiko's ssh_config lookup asks for the local user name once per Host
    block, through the password database: with one block per host, a fleet's
    lookups would cost hosts x hosts of those. The name cannot change while we run."""

    getuser = staticmethod(functools.lru_cache(maxsize=1)(getpass.getuser))


paramiko.config.getpass = _LocalUser
#: paramiko compares each packet's MAC byte by byte in Python (a tenth of a command's
#: CPU here); the standard library's comparison is as constant-time, in C.
paramiko.util.constant_time_bytes_eq = hmac.compare_digest


def describe_error(error):
    """One line for an exception raised while working on a host."""
    if isinstance(error, RemoteCommandFailed):
        return str(error)
    if isinstance(error, paramiko.BadHostKeyException):
        return f"host key mismatch for {error.hostname}: refusing to connect"
    if isinstance(error, paramiko.SSHException) and "not found in known_hosts" in str(error):
        return f"unknown host key ({error}); add it to known_hosts first"
    if isinstance(error, paramiko.AuthenticationException):
        return f"SSH authentication failed: {error}"
    if isinstance(error, socket.gaierror):
        return (f"cannot connect: its name does not resolve ({error.strerror}); "
                "is the host in the environment's ssh_config, with a HostName?")
    if isinstance(error, (socket.error, paramiko.SSHException, EOFError)):
        return f"cannot connect: {error or type(error).__name__}"
    return None
