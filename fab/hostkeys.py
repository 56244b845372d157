"""Host keys checked as OpenSSH checks them, on every hop of a connection.

`secure(connection)` gives a Fabric Connection (and, recursively, each ProxyJump
gateway Fabric built for it) the known_hosts files and the StrictHostKeyChecking
policy that the ssh_config gives that hop's own host name, as `ssh -J` does:

- `yes` (the default; `ask` too, since nobody can answer): unknown and changed
  keys are refused.
- `accept-new`: an unknown key is accepted and appended to the first
  UserKnownHostsFile (hashed if HashKnownHosts says so), so the next run
  verifies it; a changed key is refused.
- `no` / `off`: the connection goes ahead; one warning per host per run says
  its key was not verified (or differs from known_hosts).

Without this, Fabric's gateway connections accept any key (AutoAddPolicy).
"""
import fcntl
import os
import threading

import paramiko
from fabric import Connection

from fab.errors import ConfigError
from fab.events import stream

DEFAULT_USER_KNOWN_HOSTS = ("~/.ssh/known_hosts",)
DEFAULT_GLOBAL_KNOWN_HOSTS = ("/etc/ssh/ssh_known_hosts",)

YES, ACCEPT_NEW, NO = "yes", "accept-new", "no"
_STRICTNESS = {"yes": YES, "ask": YES, "accept-new": ACCEPT_NEW, "no": NO, "off": NO}

#: Serialises known_hosts appends between this process's threads (flock covers
#: other processes); hosts of a fleet connect from parallel threads.
_write_lock = threading.Lock()
#: server key names ("[host]:port") already warned about under `no` in this run.
_warned = set()
_warned_lock = threading.Lock()


class UnknownHostKey(paramiko.SSHException):
    """A host's key is in no known_hosts file and StrictHostKeyChecking is yes."""


def strictness(ssh_config, host=""):
    """YES, ACCEPT_NEW or NO from the ssh_config's StrictHostKeyChecking (default YES)."""
    value = str(ssh_config.get("stricthostkeychecking", "yes")).lower()
    if value not in _STRICTNESS:
        raise ConfigError(
            f"StrictHostKeyChecking {value!r}{f' for {host}' if host else ''}: "
            "expected yes, accept-new or no"
        )
    return _STRICTNESS[value]


def _files(ssh_config, key, default):
    """The files an ssh_config setting names (several, space separated), `none` for none."""
    value = ssh_config.get(key)
    if not value:
        words = list(default)
    elif isinstance(value, list):
        words = value
    else:
        words = value.split()
    if [word.lower() for word in words] == ["none"]:
        return []
    return [os.path.expanduser(word) for word in words]


def user_known_hosts_files(ssh_config):
    """UserKnownHostsFile's files (the first is where accept-new records keys)."""
    return _files(ssh_config, "userknownhostsfile", DEFAULT_USER_KNOWN_HOSTS)


def known_hosts_files(ssh_config):
    """Every known_hosts file a host's key is looked up in: user files, then global ones."""
    return user_known_hosts_files(ssh_config) + _files(
        ssh_config, "globalknownhostsfile", DEFAULT_GLOBAL_KNOWN_HOSTS)


def known_keys(files, server_key_name, fresh=False):
    """{key type: key} recorded for `server_key_name` ("host" or "[host]:port") in `files`,
    as parsed once per process while a file is unchanged (`fresh`: read them now)."""
    found = {}
    for path in files:
        if os.path.isfile(path):
            entry = (read_known_hosts(path) if fresh else parsed_known_hosts(path)).lookup(server_key_name)
            for key_type in entry or ():
                found.setdefault(key_type, entry[key_type])
    return found


_parsed = {}
_parsed_lock = threading.Lock()


def parsed_known_hosts(path):
    """paramiko's HostKeys of known_hosts file `path`, parsed again only when the file
    changed: each of a fleet's connections looks its host up, none re-reads the file."""
    status = os.stat(path)
    stamp = (status.st_mtime_ns, status.st_size, status.st_ino)
    with _parsed_lock:
        cached = _parsed.get(path)
        if cached is None or cached[0] != stamp:
            cached = _parsed[path] = (stamp, IndexedHostKeys(read_known_hosts(path)))
        return cached[1]


class IndexedHostKeys:
    """paramiko's HostKeys of a known_hosts file, looked up without reading every entry:
    paramiko compares each entry's names with the one asked for, so a fleet's
    connections each read the whole file (200 hosts: 60,000 comparisons). An entry
    names its hosts plainly or hashed (|1|...): a lookup reads those naming it plainly
    and the hashed ones, in the file's order, through paramiko's own lookup."""

    def __init__(self, host_keys):
        self._entries = host_keys._entries
        self._plain, self._hashed = {}, []
        for index, entry in enumerate(self._entries):
            for name in set(entry.hostnames):
                if name.startswith("|1|"):
                    self._hashed.append(index)
                else:
                    self._plain.setdefault(name, []).append(index)

    def lookup(self, hostname):
        narrowed = paramiko.HostKeys()
        narrowed._entries = [self._entries[i] for i in sorted({*self._plain.get(hostname, ()), *self._hashed})]
        return narrowed.lookup(hostname)


def read_known_hosts(path):
    """paramiko's HostKeys of known_hosts file `path`; a line it cannot read is a
    ConfigError naming the file and the line (paramiko raises with neither)."""
    try:
        return paramiko.HostKeys(path)
    except Exception as error:  # noqa: BLE001 - whatever the parser raises, it is this file's
        raise ConfigError(f"known_hosts file {path}: {_unreadable_line(path) or error}") from None


def _unreadable_line(path):
    """'line N: why' for the first line of `path` paramiko cannot read, or None."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            try:
                line = raw.decode()
                if line.strip() and not line.lstrip().startswith("#"):
                    paramiko.hostkeys.HostKeyEntry.from_line(line, number)
            except Exception as error:  # noqa: BLE001 - see read_known_hosts
                why = "not UTF-8 text" if isinstance(error, UnicodeDecodeError) else "not a host key line"
                return f"line {number}: {why} (fix or delete that line)"
    return None


def recorded_name(hostname, port):
    """The name a host's key is recorded under, as paramiko and OpenSSH look it up."""
    return hostname if port == 22 else f"[{hostname}]:{port}"


def known_hosts_line(server_key_name, key, hashed=False):
    """One known_hosts line as OpenSSH writes it (`[host]:port` when the port is not 22)."""
    name = paramiko.HostKeys.hash_host(server_key_name) if hashed else server_key_name
    return f"{name} {key.get_name()} {key.get_base64()}\n"


def record_new_key(path, server_key_name, key, hashed=False, other_files=()):
    """Append `key` for `server_key_name` to known_hosts file `path`, as accept-new does.

    Creates the file (0600) and its directory (0700) when missing. Under a lock
    (threads) and flock (processes), the files are read again first: if another
    connection recorded this host meanwhile, its key must match, or the key
    changed and BadHostKeyException is raised. Returns True if a line was written.
    """
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    with _write_lock:
        descriptor = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(descriptor, "r+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            recorded = known_keys([path, *other_files], server_key_name, fresh=True)
            if recorded:
                if recorded.get(key.get_name()) == key:
                    return False
                expected = recorded.get(key.get_name()) or next(iter(recorded.values()))
                raise paramiko.BadHostKeyException(server_key_name, key, expected)
            handle.seek(0, os.SEEK_END)
            needs_newline = False
            if handle.tell() > 0:
                handle.seek(-1, os.SEEK_END)
                needs_newline = handle.read(1) != b"\n"
            line = known_hosts_line(server_key_name, key, hashed)
            handle.write((("\n" if needs_newline else "") + line).encode())
            handle.flush()
            os.fsync(handle.fileno())
            return True


class _Policy(paramiko.MissingHostKeyPolicy):
    """What to do with a key that no loaded known_hosts file names (paramiko refuses a
    changed key itself before asking; under `no` nothing is loaded, so every key comes here)."""

    def __init__(self, alias, setting, ssh_config):
        self.alias = alias
        self.setting = setting
        self.user_files = user_known_hosts_files(ssh_config)
        self.files = known_hosts_files(ssh_config)
        self.hashed = str(ssh_config.get("hashknownhosts", "no")).lower() == "yes"

    def missing_host_key(self, client, hostname, key):
        if self.setting == YES:
            where = ", ".join(self.files) or "none (UserKnownHostsFile none)"
            raise UnknownHostKey(
                f"{self.alias} at {hostname} not found in known_hosts: {where}")
        if self.setting == ACCEPT_NEW:
            self._accept_new(hostname, key)
        else:
            self._accept_unverified(hostname, key)

    def _accept_new(self, hostname, key):
        if not self.user_files:
            stream.warning(f"host key of {self.alias} ({key.fingerprint}) accepted but not "
                           "recorded: UserKnownHostsFile is none", host=self.alias)
            return
        record_new_key(self.user_files[0], hostname, key, self.hashed, self.files[1:])

    def _accept_unverified(self, hostname, key):
        recorded = known_keys(self.files, hostname)
        if recorded.get(key.get_name()) == key:
            return
        with _warned_lock:
            if hostname in _warned:
                return
            _warned.add(hostname)
        # Without known keys loaded, paramiko cannot prefer a recorded key type, so a
        # key of another type than the recorded one is new, not changed.
        what = "DIFFERS from known_hosts" if key.get_name() in recorded else "is not in known_hosts"
        stream.warning(f"host key of {self.alias} ({key.fingerprint}) {what}; connecting "
                       "anyway because StrictHostKeyChecking is no", host=self.alias)


def secure(connection):
    """Check host keys on `connection` and on every ProxyJump hop before it.

    Each hop gets the known_hosts files and StrictHostKeyChecking that the
    ssh_config gives its own host name, as OpenSSH does for `ssh -J`. A hop
    without a connect timeout gets the target's, so a dead jump host cannot
    hang a deploy. Returns `connection`.
    """
    alias = connection.original_host
    setting = strictness(connection.ssh_config, alias)
    client = connection.client
    client.set_missing_host_key_policy(_Policy(alias, setting, connection.ssh_config))
    if setting != NO:
        # Only this host's recorded keys: what paramiko would find in the whole files.
        name = recorded_name(connection.host, connection.port)
        host_keys = client.get_host_keys()
        for key_type, key in known_keys(known_hosts_files(connection.ssh_config), name).items():
            host_keys.add(name, key_type, key)
    gateway = connection.gateway
    if isinstance(gateway, Connection):
        if gateway.connect_timeout is None:
            gateway.connect_timeout = connection.connect_timeout
        secure(gateway)
    return connection
