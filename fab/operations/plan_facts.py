"""Reading what a plan needs from one host: the interpreter's version, the complete
virtualenvs, the current release's venv, requirements files and service configs,
and whether a live task holds the deploy lock.

Runs on: all roles, one round trip (fab/remote/plan.sh). Read-only: it writes
nothing on the host and starts nothing but `python -c`, so it is always safe to
rerun. Fetching (`read`) and parsing (`parse`) are separate; `parse` is tested
on captured output.
"""
import base64
import binascii
import dataclasses
from typing import Optional

from fab import host_values as values
from fab import paths as layout
from fab import shell
from fab.operations import ALL_ROLES
from fab.operations.lock import decode_record

ROLES = ALL_ROLES


@dataclasses.dataclass(frozen=True)
class HostFacts:
    #: What `python -S -c PYTHON_VERSION_CODE` printed (bytes), None if not asked or it failed.
    python_version: Optional[bytes] = None
    python_error: Optional[str] = None
    venvs: frozenset = frozenset()  # keys of complete venvs
    current_venv: Optional[str] = None  # the key the current release links to
    #: The current release's requirements files: {file: bytes}; a file it lacks is absent.
    current_requirements: dict = dataclasses.field(default_factory=dict)
    #: The current release's service configs: {"supervisor/<program>.conf": text}.
    current_configs: dict = dataclasses.field(default_factory=dict)
    lock_holder: Optional[dict] = None  # the owner record of a live lock holder


def read(host, with_python=True):
    """The host's facts for a plan (its state must have been read: the current release)."""
    return parse(host.run(command(host, with_python)))


def command(host, with_python=True):
    """The one line that runs fab/remote/plan.sh for `host`."""
    env = host.env
    return shell.script_command("plan", *arguments(
        host.paths, host.state.current, env.python if with_python else None, env.requirements))


def arguments(paths, current=None, python=None, requirements=()):
    """fab/remote/plan.sh's arguments: the host's facts with `current` the current
    release (None: none), `python` the interpreter to ask (None: do not)."""
    return [paths.venvs, layout.VENV_COMPLETE, paths.release(current) if current else "", layout.VENV_LINK,
            layout.SERVICES, paths.lock, paths.lock_owner, python or "", *requirements]


def parse(output):
    """The HostFacts described by the output of fab/remote/plan.sh."""
    facts = dict(venvs=set(), current_requirements={}, current_configs={})
    for line in output.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "python":
            facts["python_version"] = _decoded(rest)
        elif kind == "python-failed":
            facts["python_error"] = rest or "it exited with an error"
        elif kind == "venv":
            facts["venvs"].update(_venv_key(rest))
        elif kind == "current-venv":
            facts["current_venv"] = next(iter(_venv_key(rest)), None)
        elif kind == "requirement":
            name, _, encoded = rest.rpartition(" ")
            facts["current_requirements"][name] = _decoded(encoded)
        elif kind == "config":
            name, _, encoded = rest.rpartition(" ")
            facts["current_configs"][name] = _decoded(encoded).decode(errors="replace")
        elif kind == "lock":
            facts["lock_holder"] = decode_record(rest)
    facts["venvs"] = frozenset(facts["venvs"])
    return HostFacts(**facts)


def _venv_key(text):
    """[the key] if `text` is a venv key (hex) by the strict reader, else []: a name
    the host made up is no virtualenv of ours."""
    try:
        return [values.hex_digest(text, "venv key")]
    except values.Unreadable:
        return []


def _decoded(encoded):
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return b""
