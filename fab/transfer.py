"""Sending artifacts to hosts: files the controller made once (a git bundle,
wheels), each kept on a host in its content-addressed store (Paths.stored).

A host receives only what its store lacks; a transfer cut short leaves a `.part`
file that the next one (`deploy:resume=yes`) goes on from, whoever sends the rest;
every file is checked against its sha256 on the host before it is kept
(fab/remote/receive.sh), so a host never keeps, nor serves, a wrong byte.

`deliver` is the one way in. With `transfer.peers` (the default) the controller
sends each artifact once, to one host, and hosts that have it pass it on, in rounds
(fab.fanout): each serves its store read-only over HTTP for the step (fab/remote/
peer.py: on its address, on a port of `transfer.ports`, under a path random per
delivery, gone when idle and stopped at the end), and its receivers fetch with HTTP
Range into the same parts. A receiver whose source dies goes on from its part with
another peer, else the controller. Without peers the controller sends to every host
over SFTP, a bounded number at a time, uncompressed: bundles and wheels are
compressed already.

A host's SSH round trips: one to see what its store has, one per round it takes part
in (fetch, check, keep, start serving), one to stop its server if it served.
"""
import dataclasses
import hashlib
import json
import os
import secrets
import threading
import time

from fab import events, fanout, shell
from fab import host_values as values
from fab.errors import DeployError, RemoteCommandFailed, StepFailed
from fab.events import stream
from fab.fanout import CONTROLLER
from fab.hosts import describe_error

#: Hosts the controller sends to at once (its upload is shared between them).
DIRECT_SENDS = 8
CHUNK = 1 << 20
#: Artifacts smaller than this go from the controller to each host that lacks them: a
#: round of peer servers (a Python start on each, and a round trip to stop them) costs
#: more than sending a code-only change's bundle of a few KB to every host.
PEER_MIN_BYTES = 64 << 10
#: Other peers a receiver tries, after the one the plan names, before the controller.
ALTERNATES = 2
#: Bytes per second one download from a peer may take (0: no limit): the tests slow
#: it down to cut a transfer in the middle.
PEER_RATE = 0


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
    delivery = _Delivery(fleet, {name: _unique(artifacts) for name, artifacts in wanted.items() if artifacts}, step)
    try:
        delivery.run()
    except BaseException:
        delivery.stopped()
        raise
    finally:
        delivery.stop_serving()
    if delivery.failures:
        raise StepFailed(step, delivery.failures)
    return delivery.received


def _unique(artifacts):
    return list({a.sha256: a for a in artifacts}.values())


class _Delivery:
    """One delivery's state, kept by the controller between rounds. Each round's hosts
    work in parallel, each changing only its own entries (under `lock`)."""

    def __init__(self, fleet, wanted, step):
        self.fleet, self.step, self.settings = fleet, step, fleet.env.transfer
        self.peers = self.settings.peers and len(wanted) > 1
        self.hosts = {name: fleet.hosts[name] for name in wanted}
        self.artifacts = {a.sha256: a for artifacts in wanted.values() for a in artifacts}
        self.direct = {sha for sha, artifact in self.artifacts.items() if artifact.size < PEER_MIN_BYTES}
        self.wanted = {name: [a.sha256 for a in artifacts] for name, artifacts in wanted.items()}
        self.received = {name: Received() for name in wanted}
        self.needs = {}  # host: [sha256] it still lacks
        self.parts = {}  # (host, sha256): bytes its part holds
        self.held = {name: set() for name in wanted}  # host: sha256s of this delivery it holds
        self.servers = {}  # host: (port, pid) of its server
        self.unusable = set()  # hosts not to fetch from: failed, or their server did not answer
        self.token = secrets.token_hex(16)
        self.failures = {}
        self.started = {}
        self.peer_bytes = self.peer_failures = 0  # in the current round
        self.round_holders = {}  # {sha256: [host]} as the current round began
        self.sending = threading.BoundedSemaphore(DIRECT_SENDS)
        self.lock = threading.Lock()

    def run(self):
        for name in self.hosts:
            self.started[name] = time.monotonic()
            stream.publish(events.StepStarted(name, self.step))
        self._each(self.hosts.values(), self._check)
        while self.needs:
            plan = fanout.next_round(self.needs, self._holders(), self.settings.fanout, self.peers, self.direct)
            if not plan:
                raise RuntimeError(f"transfer: no source for {', '.join(self.needs)}")
            sources = {s for assigned in plan.values() for s in assigned.values()} - {CONTROLLER}
            silent = [self.hosts[name] for name in sources if name not in self.servers]
            if silent:  # hosts that held artifacts before this delivery, or that could not serve
                self._each(silent, self._serve)
                if not self.servers.keys() - self.unusable:
                    self._peers_off(f"no host could serve on ports {self.settings.ports}")
                continue  # plan again, with the hosts that serve
            serving = fanout.servers_after(plan, self.needs, self._holders()) if self.peers else set()
            self.peer_bytes = self.peer_failures = 0
            self.round_holders = self._holders()
            self._each([self.hosts[name] for name in plan],
                       lambda host: self._receive(host, plan[host.name], host.name in serving))
            if self.peer_failures and not self.peer_bytes:  # a firewall between them, most likely
                self._peers_off(f"no host could fetch from another on ports {self.settings.ports}")

    def _peers_off(self, why):
        self.peers = False
        stream.warning(f"{why}: the controller sends the rest (`transfer: {{peers: false}}` skips trying)")

    def _holders(self):
        holders = {}
        for name, held in self.held.items():
            if name not in self.unusable:
                for sha in held:
                    holders.setdefault(sha, []).append(name)
        return holders

    def _each(self, hosts, work):
        def guarded(host):
            try:
                work(host)
            except Exception as error:  # noqa: BLE001 - reported per host
                self._fail(host, error)

        self.fleet.fan_out(list(hosts), guarded)

    def _check(self, host):
        """What the host's store has of its artifacts (and how far their parts got)."""
        name = host.name
        pairs = [word for sha in self.wanted[name] for word in (sha, self.artifacts[sha].name)]
        missing, free = [], None
        for line in host.run(shell.remote_script("receive"), ["check", host.paths.store, *pairs]).splitlines():
            what, digest, *size = line.split(" ")
            if what == "free":  # blocks free, block size
                free = _count(digest) * (_count(size[0]) if size else 0)
                continue
            digest = _known(self.wanted[name], digest)
            if what == "have":
                self.held[name].add(digest)
                continue
            missing.append(digest)
            self.parts[(name, digest)] = _count(size[0]) if size else 0
        needed = sum(max(self.artifacts[sha].size - self.parts[(name, sha)], 0) for sha in missing)
        if free is not None and needed > free:  # refused here: SFTP would only say "Failure"
            raise RemoteCommandFailed(f"No space left on device: {host.paths.store} has {human_bytes(free)} free, "
                                      f"{human_bytes(needed)} to receive")
        self.received[name].had = len(self.wanted[name]) - len(missing)
        with self.lock:
            if missing:
                self.needs[name] = missing
        if not missing:
            self._finish(host)

    def _receive(self, host, assigned, serve):
        """One round on one host: the controller's uploads, then one round trip that fetches
        from peers, keeps what is whole, and starts serving if `serve`; what a peer failed
        to send then comes from the controller, going on from its part."""
        name, got = host.name, self.received[host.name]
        from_controller = [sha for sha, source in assigned.items() if source == CONTROLLER]
        if from_controller:
            self._upload(host, from_controller)
        job = [self._fetching(name, sha, source) for sha, source in assigned.items() if source != CONTROLLER]
        report = self._peers_sh(host, job, serve, assigned)
        for source, count in report.sent.items():
            got.sources[source] = got.sources.get(source, 0) + count
        with self.lock:
            self.peer_bytes += sum(report.sent.values())
            self.peer_failures += len(report.failed)
            self.unusable.update(report.failed)
            if report.serving:
                self.servers[name] = report.serving
        for sha, why in report.refused.items():  # a peer sent bytes that are not the file
            source = assigned[sha]
            stream.warning(f"{why}, from {source}: the controller sends it again", host=name)
            with self.lock:
                self.unusable.add(source)
        lacking = [sha for sha in assigned if sha in report.lack or sha in report.refused]
        if lacking:  # its peers failed it: the controller sends the rest
            for sha in lacking:
                self.parts[(name, sha)] = report.lack.get(sha, 0)
            self._upload(host, lacking)
            host.run(shell.remote_script("receive"), ["verify", host.paths.store,
                                                      *[w for sha in lacking for w in (sha, self.artifacts[sha].name)]])
        with self.lock:
            self.held[name].update(assigned)
            left = [sha for sha in self.needs[name] if sha not in assigned]
            if left:
                self.needs[name] = left
            else:
                del self.needs[name]
        if not left:
            self._finish(host)

    def _fetching(self, receiver, sha, source):
        artifact = self.artifacts[sha]
        others = [name for name in self.round_holders.get(sha, ()) if name not in (source, receiver)
                  and name in self.servers][:ALTERNATES]
        return {"sha256": sha, "name": artifact.name, "size": artifact.size,
                "sources": [[peer, self._url(peer, artifact)] for peer in (source, *others)]}

    def _url(self, peer, artifact):
        address = self.hosts[peer].address
        host = f"[{address}]" if ":" in address else address
        return f"http://{host}:{self.servers[peer][0]}/{self.token}/{artifact.sha256}/{artifact.name}"

    def _peers_sh(self, host, job=(), serve=True, assigned=None):
        """Run fab/remote/peers.sh receive on `host` (one round trip): fetch `job` from
        peers, keep what `assigned` ({sha256: source}) brings, serve if `serve`."""
        assigned = assigned or {}
        server = (host.address, self.settings.ports, f"{self.settings.idle_timeout:g}", self.token, str(PEER_RATE))
        args = [self.fleet.env.python, shell.remote_script("peer.py"), shell.remote_script("receive"),
                host.paths.store, json.dumps(job) if job else "", *(server if serve else ("",) * len(server)),
                *[word for sha, source in assigned.items() for word in (
                    sha, self.artifacts[sha].name, self.artifacts[sha].size,
                    "controller" if source == CONTROLLER else "peer")]]
        return _Report(host.run(shell.remote_script("peers"), ["receive", *args]),
                       {source for item in job for source, _ in item["sources"]}, list(assigned))

    def _serve(self, host):
        """Start serving a store that held artifacts already (one round trip)."""
        try:
            serving = self._peers_sh(host).serving
        except Exception as error:  # noqa: BLE001 - it holds its artifacts: it only serves no one
            if describe_error(error) is None:
                raise
            serving = None
        with self.lock:
            if serving:
                self.servers[host.name] = serving
            else:
                self.unusable.add(host.name)

    def _upload(self, host, shas):
        """Send `shas` from the controller over SFTP, each from where its part stopped."""
        sent = 0
        with self.sending:
            sftp = host.connection.sftp()
            for sha in shas:
                artifact = self.artifacts[sha]
                offset = self.parts.get((host.name, sha), 0)
                offset = offset if offset <= artifact.size else 0
                sent += _upload(sftp, artifact, host.paths.stored(sha, artifact.name) + ".part", offset)
        sources = self.received[host.name].sources
        sources[CONTROLLER] = sources.get(CONTROLLER, 0) + sent

    def _finish(self, host):
        got = self.received[host.name]
        if got.sources:
            stream.publish(events.ArtifactsReceived(host.name, dict(got.sources)))
        stream.publish(events.StepFinished(host.name, self.step, events.OK, note=got.note(),
                                           seconds=time.monotonic() - self.started[host.name]))

    def _fail(self, host, error):
        name = host.name
        with self.lock:
            self.needs.pop(name, None)
            self.unusable.add(name)
        if self.received[name].sources:
            stream.publish(events.ArtifactsReceived(name, dict(self.received[name].sources)))
        self.failures[name] = self.fleet.report_failure(host, self.step, error,
                                                        time.monotonic() - self.started[name])

    def stopped(self):
        """Interrupted: the hosts still waiting for a round say so."""
        for name in list(self.needs):
            if name not in self.failures:
                self._fail(self.hosts[name], RemoteCommandFailed("stopped"))

    def stop_serving(self):
        """Stop every server this delivery started, by its pid (its idle timeout is the
        backstop for a host that cannot be reached now)."""
        def stop(host):
            try:
                host.run(shell.remote_script("peers"), ["stop", self.servers[host.name][1], self.token])
            except Exception as error:  # noqa: BLE001 - its idle timeout stops it
                if describe_error(error) is None:
                    raise

        if self.servers:
            try:
                self.fleet.fan_out([self.hosts[name] for name in self.servers], stop)
            except DeployError:  # the lock lost: touch nothing more (the idle timeout ends them)
                pass


def _known(expected, digest):
    if digest not in expected:
        raise RemoteCommandFailed(f"the store reported {values.quoted(digest)}, not an artifact it was asked for")
    return digest


def _count(text):
    if not text.isdigit() or len(text) > 15:
        raise RemoteCommandFailed(f"the store reported {values.quoted(text)} as a byte count")
    return int(text)


class _Report:
    """What peers.sh said on a host, read strictly: bytes per source (only the
    `sources` it was given), sources that failed, what did not arrive whole
    ({sha256: bytes of its part}, of the `expected` ones), what arrived but was refused
    ({sha256: why}) and its server ((port, pid) or None)."""

    def __init__(self, output, sources, expected=()):
        self.sent, self.failed, self.lack, self.refused, self.serving = {}, set(), {}, {}, None
        try:
            self._read(output, set(sources), expected)
        except values.Unreadable as error:
            raise RemoteCommandFailed(f"unreadable transfer report: {error}") from None

    def _read(self, output, known, expected):
        for line in output.splitlines():
            what, *words = line.split(" ")
            if what == "from" and len(words) == 2 and words[0] in known:
                self.sent[words[0]] = self.sent.get(words[0], 0) + _count(words[1])
            elif what == "failed" and words and words[0] in known:
                self.failed.add(words[0])
            elif what == "lack" and len(words) == 2:
                self.lack[_known(expected, words[0])] = _count(words[1])
            elif what == "refused" and len(words) > 1:
                self.refused[_known(expected, words[0])] = values.text(" ".join(words[1:]), "refusal")
            elif what == "serving" and len(words) == 2:
                self.serving = (_port(words[0]), _count(words[1]))


def _port(text):
    port = _count(text)
    if not 1 <= port <= 65535:
        raise RemoteCommandFailed(f"the server reported {values.quoted(text)} as its port")
    return port


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
