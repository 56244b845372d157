"""Reading what the preflight (`fab <env> check`, and `deploy:plan=yes`) needs from
one host: its clock, its python, virtualenv or uv, git,
supervisord and its includes, the disk, the code root, the ports, the proxy's
directory.

Runs on: all roles, one round trip (fab/remote/check.sh). Read-only: it writes
nothing and starts nothing but `--version` runs and `supervisorctl pid`, so it is
always safe to rerun. Fetching (`read`, `command`) and parsing (`parse`) are
separate; the judging is fab.preflight's, pure.
"""
import dataclasses
import shlex
import time
from typing import Optional

from fab import paths as layout
from fab import shell
from fab.operations import ALL_ROLES

ROLES = ALL_ROLES


@dataclasses.dataclass(frozen=True)
class CheckFacts:
    """What fab/remote/check.sh found on a host (None: not asked, or not said)."""

    clock: Optional[float] = None  # the host's time (seconds since the epoch)
    python: Optional[str] = None  # its version
    python_error: Optional[str] = None
    venv_tool: Optional[str] = None  # "uv" or "virtualenv"
    venv_tool_error: Optional[str] = None
    git: Optional[str] = None  # its version; "" when missing
    supervisord_down: Optional[str] = None  # what supervisorctl said, when it is not running
    supervisor_config: Optional[str] = None  # the file read; "" when none was found
    included: Optional[bool] = None  # whether [include] files= matches the code root's configs
    free_kib: Optional[int] = None
    release_kib: int = 0  # the current release, with its virtualenv
    writable: Optional[bool] = None
    writable_dir: str = ""  # the directory tested: the code root or its nearest parent
    proxy_dir_writable: Optional[bool] = None
    proxy_dir: str = ""
    ports: dict = dataclasses.field(default_factory=dict)  # {port: ("free"|"ours"|"other", pid, command)}


@dataclasses.dataclass(frozen=True)
class Read:
    """A host's CheckFacts and the controller's clock around the round trip."""

    facts: CheckFacts
    sent: float
    received: float


def supervisor_config_file(supervisorctl):
    """The config file the environment's supervisorctl command names (-c FILE,
    --configuration FILE), or None: supervisorctl then searches its own places."""
    try:
        words = shlex.split(supervisorctl)
    except ValueError:
        return None
    for index, word in enumerate(words):
        if word in ("-c", "--configuration") and index + 1 < len(words):
            return words[index + 1]
        if word.startswith("--configuration="):
            return word.partition("=")[2]
        if word.startswith("-c") and len(word) > 2 and not word.startswith("--"):
            return word[2:]
    return None


def listening(services, address):
    """["PORT ADDRESS"] of `services` ({name: Service}) with a port on a host at `address`:
    a `bind` setting's address wins ("" for any address; a unix socket has no port)."""
    pairs = []
    for service in services.values():
        if not service.port:
            continue
        where = address
        if service.bind:
            if service.bind.startswith("unix:"):
                continue
            host, _, _ = service.bind.rpartition(":")
            where = "" if host in ("", "0.0.0.0", "[::]", "::") else host.strip("[]")
        pairs.append(f"{service.port} {where}")
    return pairs


def arguments(host):
    """fab/remote/check.sh's arguments for `host`."""
    env, paths, topology = host.env, host.paths, host.env.topology
    supervised = bool(topology.supervised_on(host.name))
    named = supervisor_config_file(env.supervisorctl)
    configs = ":".join([named] if named else layout.SUPERVISORD_CONFIGS) if supervised else ""
    proxies = any(service.balances for service in topology.services_on(host.name).values())
    return [paths.code_root, env.python, env.virtualenv, env.uv or "",
            env.supervisorctl if supervised else "", configs,
            paths.current_service_config("supervisor", "*"), paths.proxy if proxies else "",
            paths.current, paths.current_venv, paths.venvs, *listening(topology.services_on(host.name), host.address)]


def command(host):
    """The one line that runs fab/remote/check.sh for `host` (to add to another round trip)."""
    return shell.script_command("check", *arguments(host))


def read(host):
    """The host's Read: its facts and the controller's clock before and after."""
    return read_after(host, None)[1]


#: The line between another read's output and the preflight's (`read_after`).
_AFTER = "--- preflight"


def read_after(host, first):
    """(the output of the command `first`, the host's Read) in one round trip: the
    preflight folded into another read (a plan's). `first` None: none."""
    sent = time.time()
    output = host.run(shell.script(first, shell.command("echo", _AFTER), command(host)))
    received = time.time()
    before, _, after = output.rpartition(_AFTER + "\n")
    return before, Read(parse(after), sent, received)


#: Lines whose rest is a fact as it is: {kind: (field, what an empty rest means)}.
_TEXT = {
    "python": ("python", ""), "python-failed": ("python_error", "it exited with an error"),
    "venv-tool": ("venv_tool", ""), "venv-tool-failed": ("venv_tool_error", "it exited with an error"),
    "git": ("git", ""), "git-missing": ("git", ""),
    "supervisord-down": ("supervisord_down", "supervisorctl said nothing"),
    "supervisor-config": ("supervisor_config", ""), "supervisor-config-missing": ("supervisor_config", ""),
}
#: Lines `<kind> yes|no <directory>`: {kind: (the answer's field, the directory's field)}.
_WRITABLE = {"writable": ("writable", "writable_dir"), "proxy-dir": ("proxy_dir_writable", "proxy_dir")}


def parse(output):
    """The CheckFacts described by fab/remote/check.sh's lines (others are ignored)."""
    facts = {"ports": {}}
    for line in output.splitlines():
        kind, _, rest = line.partition(" ")
        if kind in _TEXT:
            field, empty = _TEXT[kind]
            facts[field] = "" if kind.endswith("-missing") else rest or empty
        elif kind in _WRITABLE:
            answer, _, directory = rest.partition(" ")
            facts[_WRITABLE[kind][0]], facts[_WRITABLE[kind][1]] = answer == "yes", directory
        elif kind == "clock":
            facts["clock"] = _number(rest)
        elif kind == "include":
            facts["included"] = rest == "yes"
        elif kind == "disk":
            free, _, size = rest.partition(" ")
            facts["free_kib"], facts["release_kib"] = _whole(free), _whole(size) or 0
        elif kind == "port":
            port, _, rest = rest.partition(" ")
            state, _, rest = rest.partition(" ")
            pid, _, said = rest.partition(" ")
            if _whole(port) is not None and state in ("free", "ours", "other"):
                facts["ports"][int(port)] = (state, pid if pid not in ("", "-") else None, said)
    return CheckFacts(**facts)


def _number(text):
    try:
        return float(text)
    except ValueError:
        return None


def _whole(text):
    return int(text) if text.isdigit() else None
