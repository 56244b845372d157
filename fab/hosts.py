"""Connections to an environment's hosts, and fanning work out over them.

Hosts are names that an ssh_config resolves (HostName, Port, User, IdentityFile),
as for any SSH user. Host keys are verified against known_hosts by default;
an unknown or changed key is refused, never silently accepted.
"""
import concurrent.futures
import os
import socket
import time

import paramiko
from fabric import Config, Connection
from invoke.exceptions import CommandTimedOut

from fab.errors import ConfigError, StepFailed
from fab import events, hostkeys
from fab.events import stream


class RemoteCommandFailed(Exception):
    """A command exited non-zero on a host; the message is its last output line."""

    def __init__(self, message, output=""):
        super().__init__(message)
        self.output = output


class Host:
    """One open SSH connection to one host of an environment."""

    def __init__(self, name, env, connection):
        self.name = name
        self.env = env
        self.connection = connection
        #: Filled by the preflight step: facts about this host (home, paths, ...).
        self.facts = {}

    @property
    def address(self):
        """The network address ssh_config resolves this host to."""
        return self.connection.host

    def execute(self, script, timeout=None, stream=False):
        """Run a shell script in one round trip; return its Result whatever its exit code.

        Output is captured, or with `stream` shown as it comes. Never reads stdin,
        so nothing can wait for input. A timeout raises RemoteCommandFailed.
        """
        timeout = timeout or self.env.command_timeout
        try:
            return self.connection.run(
                script, hide=not stream, warn=True, in_stream=False, timeout=timeout
            )
        except CommandTimedOut:
            raise RemoteCommandFailed(f"timed out after {timeout:.0f}s") from None

    def run(self, script, timeout=None, check=True):
        """Run a shell script in one round trip; return its stdout.

        Raises RemoteCommandFailed with the script's last error line when it fails.
        """
        result = self.execute(script, timeout)
        if check and result.exited != 0:
            output = (result.stderr + result.stdout).strip()
            last = output.splitlines()[-1] if output else f"exit status {result.exited}"
            raise RemoteCommandFailed(last, output)
        return result.stdout

    def close(self):
        self.connection.close()


def connect(name, env):
    """A Connection to host `name`; every hop's host key is checked (see fab.hostkeys)."""
    if env.ssh_config and not os.path.isfile(env.ssh_config_path()):
        raise ConfigError(f"{env.name}: ssh_config file {env.ssh_config_path()} does not exist")
    config = Config(runtime_ssh_path=env.ssh_config_path()) if env.ssh_config else Config()
    connection = Connection(name, config=config, connect_timeout=10)
    return Host(name, env, hostkeys.secure(connection))


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
    if isinstance(error, (socket.error, paramiko.SSHException, EOFError)):
        return f"cannot connect: {error or type(error).__name__}"
    return None


class Fleet:
    """The hosts of one environment, each with an open connection."""

    def __init__(self, env, hosts):
        self.env = env
        self.hosts = {host.name: host for host in hosts}

    @classmethod
    def open(cls, env, names=None):
        names = list(names or env.hosts)
        return cls(env, [connect(name, env) for name in names])

    def __getitem__(self, name):
        return self.hosts[name]

    @property
    def names(self):
        return list(self.hosts)

    def of_role(self, role):
        return [self.hosts[name] for name in self.env.hosts_of(role) if name in self.hosts]

    def each(self, step, action, hosts=None, quiet=False):
        """Run `action(host)` on every host in parallel; return {host name: result}.

        Every host runs to the end of the step before any failure is raised, and
        then all of them are raised together: a failure is never hidden.
        """
        targets = list(hosts) if hosts is not None else list(self.hosts.values())
        results, failures = {}, {}

        def timed(host):
            stream.publish(events.StepStarted(host.name, step))
            started = time.monotonic()
            value = action(host)
            return value, time.monotonic() - started

        if not targets:
            return results
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(32, len(targets))) as pool:
            futures = {pool.submit(timed, host): host for host in targets}
            for future in concurrent.futures.as_completed(futures):
                host = futures[future]
                try:
                    value, seconds = future.result()
                except Exception as error:  # noqa: BLE001 - reported per host below
                    message = describe_error(error)
                    if message is None:
                        raise
                    failures[host.name] = message
                    stream.publish(events.StepFinished(
                        host.name, step, events.FAILED, note=message,
                        output=getattr(error, "output", "")))
                    continue
                results[host.name] = value
                note = value if isinstance(value, str) and value else "ok"
                outcome = events.SKIPPED if note.startswith("skipped") else events.OK
                stream.publish(events.StepFinished(
                    host.name, step, outcome, note=note, seconds=seconds, quiet=quiet))
        if failures:
            raise StepFailed(step, failures)
        return results

    def close(self):
        for host in self.hosts.values():
            host.close()
