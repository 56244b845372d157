"""Reading what a host has: its home, current release, releases and their metadata.

Runs on: all roles. Read-only, so always safe to rerun. Fetching (`read`) and
parsing (`parse`) are separate; `parse` is tested on captured output.
"""
import dataclasses
import hashlib

from fab import shell
from fab.operations import ALL_ROLES
from fab.paths import Paths, expand_home
from fab.releases import HostRelease, ReleaseMeta

ROLES = ALL_ROLES


@dataclasses.dataclass
class HostState:
    home: str
    paths: Paths
    current: str = None
    releases: dict = dataclasses.field(default_factory=dict)  # name -> HostRelease
    steps: dict = dataclasses.field(default_factory=dict)  # name -> set of done steps
    venvs: dict = dataclasses.field(default_factory=dict)  # name -> key of the venv it links to
    configs: dict = dataclasses.field(default_factory=dict)  # name -> {program: config digest}
    cpus: int = 1

    def release(self, name):
        return self.releases.get(name)


def read(host):
    """Collect the host's state in one round trip and keep it as `host.state`."""
    output = host.run(shell.remote_script("state"), [host.env.code_root])
    host.state = parse(output, host.env.code_root)
    return host.state


def config_digest(text):
    """The digest `conf` lines give of a config file with this text."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse(output, code_root):
    """The HostState described by the output of `read`'s script."""
    home, current, cpus = None, None, 1
    names, metas, steps, venvs, configs = [], {}, {}, {}, {}
    for line in output.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "home":
            home = rest
        elif kind == "cpus":
            cpus = int(rest) if rest.isdigit() else 1
        elif kind == "current":
            current = rest.rstrip("/").split("/")[-1]
        elif kind == "release":
            names.append(rest)
        elif kind == "meta":
            name, _, text = rest.partition(" ")
            try:
                metas[name] = ReleaseMeta.from_json(text)
            except (ValueError, TypeError, KeyError):
                metas[name] = None  # unreadable metadata: treated as a failed release
        elif kind == "conf":
            name, digest, file_name = rest.split(" ", 2)
            configs.setdefault(name, {})[file_name.removesuffix(".conf")] = digest
        elif kind == "venv":
            name, _, key = rest.partition(" ")
            venvs[name] = key
        elif kind == "step":
            name, _, step = rest.partition(" ")
            steps.setdefault(name, set()).add(step)
    if home is None:
        raise ValueError("host state output has no home line")
    return HostState(
        home=home,
        paths=Paths(expand_home(code_root, home)),
        current=current,
        releases={name: HostRelease(name, metas.get(name)) for name in names},
        steps={name: steps.get(name, set()) for name in names},
        venvs={name: venvs[name] for name in names if name in venvs},
        configs={name: configs.get(name, {}) for name in names},
        cpus=cpus,
    )
