"""A small artifact carried in a host's build batch, instead of delivered (fab.transfer).

A code-only change's git bundle is a few hundred bytes to a few KB. Delivering it
costs each host a round trip to see what its store has, an SFTP session and a round
trip to keep it, plus the release made before them: on a large fleet most of a
code-only deploy. A bundle of at most INLINE_MAX_BYTES to a host that receives
nothing else travels instead, base64 in one quoted argument, in the `transfer` step
of the host's first build batch, before `code`: fab/remote/receive.sh (`inline`)
writes it as its `.part` and keeps it as a delivery does, checked against its
sha256 (a wrong byte fails the host, naming the file). Runs on: all roles. Safe to
rerun: a kept file is not written again.
"""
import base64
import functools

from fab import events, shell, steps
from fab.fanout import CONTROLLER
from fab.operations import ALL_ROLES
from fab.transfer import Received

ROLES = ALL_ROLES
#: The largest artifact carried in a command (its base64 is 4/3 of it): a code-only
#: change's bundle is far smaller, and what is larger is worth a delivery's peers.
INLINE_MAX_BYTES = 32 << 10
#: sshd hands the whole command to the login shell as ONE argument, which Linux
#: refuses over MAX_ARG_STRLEN (128 KiB): a batch whose command would pass this
#: (its services' configs, its build commands, the bundle) gets the bundle delivered.
COMMAND_MAX_CHARS = 96 << 10


def carried(artifact):
    """Whether `artifact` (a transfer.Artifact) is small enough to ride in a command."""
    return artifact.size <= INLINE_MAX_BYTES


def fits(batch):
    """Whether the command running `batch` (fab.steps.Step) stays under COMMAND_MAX_CHARS."""
    return command_chars(batch) <= COMMAND_MAX_CHARS


def command_chars(batch):
    """The length of the command that runs `batch` on a host, as sshd receives it."""
    return len(shell.step_command(*steps.on_host(batch)))


def receive(host, artifact):
    """Step `transfer`: write `artifact` (read here) into the host's store and keep it
    once its sha256 matches. Its result is the events.ArtifactsReceived the host's
    outputs record (published as the step ends), None where the store had it."""
    said = f"received {artifact.sha256} {artifact.size}"

    def received(line):
        return events.ArtifactsReceived(host.name, {CONTROLLER: artifact.size}) if line == said else None

    def note(line):
        return (Received({CONTROLLER: artifact.size}) if line == said else Received(had=1)).note()

    body = shell.step_script("receive", "inline", host.paths.store, _encoded(artifact), artifact.sha256, artifact.name)
    return steps.Step("transfer", body, then=note, result=received)


@functools.lru_cache(maxsize=16)
def _encoded(artifact):
    """The artifact's bytes in base64, read once: hosts with the same bases share a bundle."""
    with open(artifact.local, "rb") as handle:
        return base64.b64encode(handle.read()).decode("ascii")
