"""Sending artifacts to hosts: files the controller made once (a git bundle,
wheels), each kept on a host in its content-addressed store (Paths.stored).

A host receives only what its store lacks; a transfer cut short leaves a `.part`
file that the next one (`deploy:resume=yes`) goes on from; every file is checked
against its sha256 on the host before it is kept (fab/remote/receive.sh).

`deliver` is the one way in. Today the controller sends to each host itself, over
the connection the task already has, a bounded number at a time.
"""
import dataclasses
import hashlib
import os
import threading

from fab import shell
from fab import host_values as values
from fab.errors import RemoteCommandFailed

#: Hosts the controller sends to at once (its upload is shared between them).
DIRECT_SENDS = 8
CHUNK = 1 << 20
CONTROLLER = "controller"


@dataclasses.dataclass(frozen=True)
class Artifact:
    """A file to send: its content's sha256, its size, where it is on the
    controller, and the file name it keeps on hosts (a wheel's must stay its own)."""
    sha256: str
    size: int
    local: str
    name: str


def artifact(path, name=None):
    """The Artifact of the file at `path` (hashed here)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return Artifact(digest.hexdigest(), os.path.getsize(path), path, name or os.path.basename(path))


@dataclasses.dataclass
class Received:
    """What one host received in one delivery: bytes per source (CONTROLLER or
    the name of the peer it came from), and the artifacts it already had."""
    sources: dict = dataclasses.field(default_factory=dict)
    had: int = 0

    @property
    def bytes(self):
        return sum(self.sources.values())

    def note(self):
        """The step's note: "received 1.2 MB from controller", or "had all 12"."""
        if not self.sources:
            return f"had all {self.had}" if self.had else "nothing to receive"
        sent = ", ".join(f"{human_bytes(n)} from {source}" for source, n in sorted(self.sources.items()))
        return f"received {sent}" + (f"; had {self.had}" if self.had else "")


def human_bytes(count):
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000


def deliver(fleet, wanted, step="transfer"):
    """Make every host's store hold the artifacts `wanted[host name]` names (a list
    of Artifact); return {host name: Received}. One step on the fleet: a host that
    cannot receive fails it (fab.errors.StepFailed), the others still finish."""
    sending = threading.BoundedSemaphore(DIRECT_SENDS)
    hosts = [fleet.hosts[name] for name, artifacts in wanted.items() if artifacts]
    received = {}

    def receive(host):
        received[host.name] = send_direct(host, _unique(wanted[host.name]), sending)
        return received[host.name].note()

    fleet.each(step, receive, hosts=hosts)
    return received


def _unique(artifacts):
    return list({a.sha256: a for a in artifacts}.values())


def send_direct(host, artifacts, sending):
    """Send `host` what its store lacks of `artifacts` from the controller, going on
    from a part received before; check and keep each. Two round trips and one SFTP
    upload per host."""
    pairs = [word for a in artifacts for word in (a.sha256, a.name)]
    store = host.paths.store
    missing, free = {}, None
    for line in host.run(shell.remote_script("receive"), ["check", store, *pairs]).splitlines():
        what, digest, *size = line.split(" ")
        if what == "free":
            free = _whole(digest) * _whole(size[0] if size else "")
        elif what != "have":
            missing[values.hex_digest(digest, "artifact digest")] = int(size[0]) if size else 0
    outcome = Received(had=len(artifacts) - len(missing))
    if not missing:
        return outcome
    needed = sum(a.size - min(missing[a.sha256], a.size) for a in artifacts if a.sha256 in missing)
    if free is not None and needed > free:  # refused here: SFTP would only say "Failure"
        raise RemoteCommandFailed(f"No space left on device: {store} has {human_bytes(free)} free, "
                                  f"{human_bytes(needed)} to receive")
    sent = 0
    with sending:
        sftp = host.connection.sftp()
        for a in artifacts:
            if a.sha256 not in missing:
                continue
            offset = missing[a.sha256] if missing[a.sha256] <= a.size else 0
            sent += _upload(sftp, a, host.paths.stored(a.sha256, a.name) + ".part", offset)
    host.run(shell.remote_script("receive"),
             ["verify", store, *[w for a in artifacts if a.sha256 in missing for w in (a.sha256, a.name)]])
    outcome.sources[CONTROLLER] = sent
    return outcome


def _whole(text):
    return int(text) if text.isdigit() else 0


def _upload(sftp, artifact, remote, offset):
    """Write the artifact's bytes from `offset` on to `remote` over SFTP; the bytes sent."""
    try:
        with open(artifact.local, "rb") as source, sftp.open(remote, "ab" if offset else "wb") as target:
            target.set_pipelined(True)
            source.seek(offset)
            sent = 0
            for block in iter(lambda: source.read(CHUNK), b""):
                target.write(block)
                sent += len(block)
            target.flush()  # written before the close, which then raises what a write met
            return sent
    except OSError as error:
        raise RemoteCommandFailed(f"cannot write {remote}: {error.strerror or error}") from None
