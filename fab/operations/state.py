"""Reading what a host has: its home, current release, releases and their metadata.

Runs on: all roles. Read-only, so always safe to rerun. Fetching (`read`) and
parsing (`parse`) are separate; `parse` is tested on captured output.
"""
import dataclasses
import hashlib

from fab import freezes
from fab import host_values as values
from fab import wheels
from fab import paths as layout
from fab import shell
from fab.errors import RemoteCommandFailed
from fab.events import stream
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
    #: Directories of releases/ whose venv link could not be read (cleanup then deletes no venv).
    venv_links_unknown: set = dataclasses.field(default_factory=set)
    venv_dirs: frozenset = frozenset()  # keys of the directories in venvs/ when read
    configs: dict = dataclasses.field(default_factory=dict)  # name -> {program: config digest}
    cpus: int = 1
    #: The wheel store (wheels.build: once): what `python -S` prints as its version
    #: (the bytes the venv key hashes) and its wheels.Identity (None: not asked, or
    #: it does not run), the complete venvs, the wheels in the store, and
    #: {release: (digest, count)} of the wheel set each release records.
    python_version: bytes = None
    python_identity: wheels.Identity = None
    complete_venvs: frozenset = frozenset()
    stored_wheels: frozenset = frozenset()
    wheel_sets: dict = dataclasses.field(default_factory=dict)
    #: Commits the git cache holds a ref for (fab.app_repo.DEPLOYED): bases of its bundles.
    tips: frozenset = frozenset()
    #: The proxy programs in maintenance there (fab.operations.maintenance).
    maintenance: frozenset = frozenset()
    freeze: dict = None  # the environment's freeze, on the lock host (fab.freezes.decode; None: none)
    problems: list = dataclasses.field(default_factory=list)  # one line each: what the reader refused

    def release(self, name):
        return self.releases.get(name)


def arguments(paths, python=""):
    """fab/remote/state.sh's arguments, each `--name value`: where `current` and the
    releases are, the names inside a release it reads, where the venvs, the wheel
    store and the git cache are, the `python` to identify (none: '') and where its
    identity is kept. An empty value is left out (the script reads it as empty)."""
    named = {
        "current": paths.current, "releases": paths.releases, "meta_file": layout.RELEASE_META,
        "steps_dir": layout.RELEASE_STEPS, "configs_dir": layout.SERVICES, "venv_link": layout.VENV_LINK,
        "venvs": paths.venvs, "complete": layout.VENV_COMPLETE,
        "release_wheels": layout.RELEASE_WHEELS, "store": paths.store,
        "python": python, "identity_code": wheels.IDENTITY_CODE if python else "",
        "identity_cache": paths.python_identity, "git_cache": paths.git_cache, "proxy": paths.proxy,
        "maintenance_suffix": layout.MAINTENANCE_SUFFIX, "freeze": paths.freeze,
    }
    return [word for name, value in named.items() if value for word in (f"--{name}", value)]


def python_to_identify(host):
    """The python whose identity `host`'s state reads: the environment's, where its
    wheels are built once (the venv key is decided on the controller) and the host
    runs app code (else it gets no venv)."""
    env = host.env
    return env.python if env.wheels.build == "once" and env.topology.runs_app(host.name) else ""


def read(host):
    """Collect the host's state in one round trip and keep it as `host.state`."""
    script = shell.printed_at_end(shell.remote_script("state"))
    return adopt(host, host.run(script, arguments(host.paths, python_to_identify(host))))


def adopt(host, output):
    """Keep the state `output` describes as `host.state`, saying once per task what
    of it the strict reader refused; a host whose state is unreadable as a whole
    (no home) is an error of that host's, in one line."""
    try:
        host.state = parse(output, host.env.code_root)
    except values.Unreadable as error:
        raise RemoteCommandFailed(f"unreadable state: {error}") from None
    said = host.__dict__.setdefault("_said_unreadable", set())
    for line in host.state.problems:
        if line not in said:
            said.add(line)
            stream.warning(line, host=host.name)
    return host.state


def config_digest(text):
    """The digest `conf` lines give of a config file with this text."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse(output, code_root):
    """The HostState described by the output of `read`'s script, every value through
    the strict reader (fab.host_values): a release directory whose name is not a
    release name is left out, a release whose metadata fails is kept as unreadable,
    a line that fails is dropped; each says so in `problems`, in one line."""
    home, current, cpus, freeze = None, None, 1, None
    names, metas, unreadable, steps, venvs, configs, problems = [], {}, {}, {}, {}, {}, []
    unknown_links, venv_dirs, tips, maintenance = set(), set(), set(), set()
    store = dict(python_version=None, python_identity=None, complete_venvs=set(), stored_wheels=set(), wheel_sets={})
    for line in output.splitlines():
        kind, _, rest = line.partition(" ")
        try:
            if kind == "home":
                home = values.absolute_path(rest, "home")
            elif kind == "cpus":
                cpus = values.integer(int(rest) if rest.isdigit() else 0, 1, 1 << 16, "cpus")
            elif kind == "current":
                current = _current(rest)
            elif kind == "freeze":
                freeze = freezes.decode(rest.strip()) or {}
            elif kind == "release":
                names.append(values.release_name(rest))
            elif kind == "meta":
                name, _, text = rest.partition(" ")
                try:
                    metas[name] = ReleaseMeta.from_json(text, name)
                except values.Unreadable as error:
                    unreadable[name] = str(error)
            elif kind == "conf":
                name, digest, file_name = rest.split(" ", 2)
                configs.setdefault(name, {})[values.word(file_name.removesuffix(".conf"), "program")] = \
                    values.hex_digest(digest, "config digest")
            elif kind == "venv":
                name, _, key = rest.partition(" ")
                try:
                    venvs[name] = values.hex_digest(key, "venv key")
                except values.Unreadable:
                    unknown_links.add(name)  # its venv may be any one: cleanup then deletes none
                    raise
            elif kind == "tip":
                tips.add(values.commit(rest))
            elif kind == "venvdir":
                venv_dirs.add(values.hex_digest(rest, "venv key"))
            elif kind in _STORE_LINES:
                _STORE_LINES[kind](store, rest)
            elif kind == "maintenance":
                maintenance.add(values.word(rest, "program"))
            elif kind == "step":
                name, _, step = rest.partition(" ")
                steps.setdefault(name, set()).add(values.word(step, "step"))
        except (values.Unreadable, ValueError) as error:
            problems.append(f"ignored {values.quoted(line, 80)} from the host: {error}")
    if home is None:
        raise values.Unreadable("no home line")
    for name, why in unreadable.items():
        if name in names:
            problems.append(f"release {name} is unreadable ({why}): not a rollback, resume or "
                            "prepared release; cleanup leaves it")
    return HostState(
        home=home,
        paths=Paths(expand_home(code_root, home)),
        current=current,
        releases={name: HostRelease(name, metas.get(name), unreadable.get(name)) for name in names},
        steps={name: steps.get(name, set()) for name in names},
        venvs={name: venvs[name] for name in names if name in venvs},
        # A link in a directory that is no release (left out above) is unknown too.
        venv_links_unknown=unknown_links | {name for name in venvs if name not in names},
        venv_dirs=frozenset(venv_dirs),
        configs={name: configs.get(name, {}) for name in names},
        cpus=cpus,
        python_version=store["python_version"],
        python_identity=store["python_identity"],
        complete_venvs=frozenset(store["complete_venvs"]),
        stored_wheels=frozenset(store["stored_wheels"]),
        wheel_sets={name: found for name, found in store["wheel_sets"].items() if name in names},
        tips=frozenset(tips),
        maintenance=frozenset(maintenance),
        freeze=freeze,
        problems=problems,
    )


def _wheel_set(store, rest):
    name, digest, count = rest.split(" ")
    store["wheel_sets"][values.release_name(name)] = (
        values.hex_digest(digest, "wheel set digest"),
        values.integer(int(count) if count.isdigit() else -1, 0, 1 << 20, "wheel count"))


def _wheel(words):
    digest, _, name = words.partition(" ")
    return wheels.wheel(digest, name)


def _python_failed(store, rest):
    raise values.Unreadable("the environment's python does not run")


#: The wheel store's lines (fab/remote/state.sh): kind -> how each goes into `store`.
_STORE_LINES = {
    "pyversion": lambda store, rest: store.update(python_version=wheels.parse_version_line(rest)),
    "pyid": lambda store, rest: store.update(python_identity=wheels.parse_identity_line(rest)),
    "pyfailed": _python_failed,
    "venvok": lambda store, rest: store["complete_venvs"].add(values.hex_digest(rest, "venv key")),
    "stored": lambda store, rest: store["stored_wheels"].add(_wheel(rest)),
    "wheelset": _wheel_set,
}


def _current(link):
    """The release `current` points at (`releases/<name>`, or an absolute path ending so)."""
    name = Paths.release_named_by(link)
    if name is None:
        raise values.Unreadable(f"current points at {values.quoted(link)}, not into {layout.RELEASES}/")
    return values.release_name(name)
