"""Wheels built once per venv key, for the hosts that lack that venv (wheels.build: once).

Runs on: the controller, and on a builder host when the controller cannot make
wheels for the hosts' platform. Nothing here changes a host other than the
builder's throwaway directory: it runs in the build stage before any host is
changed, and the wheels reach the hosts' stores through fab.transfer.deliver.

Each host's venv key is decided here, on the controller, by
fab.operations.virtualenv.venv_key (the requirements at the commit, the pip
arguments, the host's `python -S` version line read with its state). For each
key some host lacks, the wheels come, in this order, from the controller's cache
(`<controller cache>/wheels/<key>/<identity>/`, with a manifest), from the controller's own
python when its identity matches the hosts' (`pip wheel`), from a download of
binary wheels for the hosts' platform (`pip download --platform ...`), or from
a builder host (wheels.builder, else the first host that needs the key). Safe
to rerun: a key built once is taken from the cache.
"""
import contextlib
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile

from fab import app_repo, precedence, shell, transfer
from fab import host_values as values
from fab import wheels
from fab.errors import DeployError, RemoteCommandFailed
from fab.events import stream
from fab.operations import credentials, virtualenv

#: Seconds a controller-side pip run may take.
PIP_TIMEOUT = 1800
#: Output lines of a failed build a user is shown.
TAIL = 15
MANIFEST = "manifest"


@dataclasses.dataclass(frozen=True)
class Install:
    """What a host's venv step installs: the venv `key` and the stored wheels (a
    tuple of fab.wheels.Wheel, in manifest order; () when it has the venv)."""
    key: str
    wheels: tuple = ()


@dataclasses.dataclass
class Prepared:
    """The wheels stage's result: {host: Install} for the venv step, {host: [Artifact]}
    for the delivery, and {key: where its wheels came from}."""
    installs: dict = dataclasses.field(default_factory=dict)
    artifacts: dict = dataclasses.field(default_factory=dict)
    sources: dict = dataclasses.field(default_factory=dict)


@contextlib.contextmanager
def app_repository(env, commit):
    """The app's repository on the controller holding `commit` (fab.app_repo.AppRepo):
    the one way this module reads it."""
    with app_repo.holding(env.app.repo, commit) as repo:  # the controller's cache, as for bundles
        yield repo


def requirement_contents(env, repo, commit):
    """[bytes] of the environment's requirements files at `commit`; DeployError naming
    one the commit lacks."""
    contents = []
    for path in env.requirements:
        found = repo.file_at(commit, path)
        if found is None:
            raise DeployError(f"requirements file {path} is not in commit {commit[:12]}")
        contents.append(found)
    return contents


def host_keys(fleet, contents, release_name):
    """{host: its venv key, or None where its virtualenv step is done in this release or
    where it runs no app code (it gets no venv: fab.topology.Topology.runs_app)}."""
    keys = {}
    for name, host in fleet.hosts.items():
        state = host.state
        if "virtualenv" in state.steps.get(release_name, ()) or not host.env.topology.runs_app(name):
            keys[name] = None
        elif state.python_version is None:
            raise DeployError(f"{name}: the environment's python ({host.env.python}) does not run there")
        else:
            keys[name] = virtualenv.venv_key(contents, host.env.pip_args, state.python_version)
    return keys


def prepare(fleet, meta):
    """The wheels each host needs for release `meta` (a Prepared; empty unless
    wheels.build is once): got once per key some host lacks, before any host changes."""
    env = fleet.env
    if env.wheels.build != "once":
        return Prepared()
    prepared = Prepared()
    with app_repository(env, meta.commit) as repo:
        keys = host_keys(fleet, requirement_contents(env, repo, meta.commit), meta.name)
        complete = {name: host.state.complete_venvs for name, host in fleet.hosts.items()}
        got, lacking = {}, set()
        for key, needing in wheels.hosts_by_key(keys, complete).items():
            got[key], prepared.sources[key] = obtain(fleet, repo, meta.commit, key, needing)
            lacking.update(needing)
    for name, key in keys.items():
        if key is None:
            continue
        found = got[key] if name in lacking else ()
        prepared.installs[name] = Install(key, tuple(w for w, _ in found))
        stored = fleet.hosts[name].state.stored_wheels
        prepared.artifacts[name] = [a for w, a in found if w not in stored]
    return prepared


# --- getting one key's wheels --------------------------------------------------


def obtain(fleet, repo, commit, key, needing):
    """([(Wheel, Artifact)] of venv `key`, where they came from) for the hosts
    `needing` it: from the controller's cache, else made once and cached."""
    env = fleet.env
    identity = same_identity(fleet, needing)
    cached = from_cache(key, identity)
    if cached is not None:
        return cached, "cache"
    python = controller_python(env, identity)
    ways = wheels.where_to_build(env.wheels.where, python is not None, can_download=True)
    with tempfile.TemporaryDirectory(prefix="fab-wheels-") as work:
        tree, out = os.path.join(work, "tree"), os.path.join(work, "wheels")
        os.makedirs(out)
        archive = export_tree(repo, commit, work)
        for way in ways:
            try:
                if way == wheels.BUILDER:
                    builder = wheels.builder_for(needing, env.wheels.builder)
                    if builder not in fleet.hosts:
                        raise DeployError(f"wheels.builder {builder} is not among the hosts of this task")
                    fleet.each("wheels", lambda host: build_on(host, archive, out), hosts=[fleet.hosts[builder]])
                    where = f"built on {builder}"
                else:
                    unpack(archive, tree)
                    run_pip(env, python if way == wheels.CONTROLLER else sys.executable, tree, out,
                            ["wheel", "--wheel-dir", out] if way == wheels.CONTROLLER else
                            ["download", "--dest", out, *wheels.download_args(identity)])
                    where = "built on the controller" if way == wheels.CONTROLLER else "downloaded for the hosts"
                break
            except DeployError as error:
                if way != "download" or way == ways[-1]:
                    raise
                stream.warning(f"venv {key}: no binary wheels for {identity.describe()} ({error}); "
                               "building on a builder host")
        stream.stage(f"venv {key}: wheels {where}")
        return into_cache(key, identity, out), where


def same_identity(fleet, needing):
    """The Identity of the hosts `needing` one key; DeployError if they differ (one set
    of wheels cannot serve them)."""
    found = {name: fleet.hosts[name].state.python_identity for name in needing}
    if None in found.values() or len(set(found.values())) > 1:
        described = "; ".join(f"{name}: {i.describe() if i else 'unknown'}" for name, i in found.items())
        raise DeployError(f"hosts sharing a venv key run different pythons ({described})")
    return next(iter(found.values()))


def controller_python(env, identity):
    """A python on the controller with pip whose identity is `identity` (the
    environment's python, found here, or the deployer's own), or None."""
    for candidate in dict.fromkeys(filter(None, [shutil.which(env.python), sys.executable])):
        try:
            result = subprocess.run([candidate, "-S", "-c", wheels.IDENTITY_CODE], capture_output=True,
                                    text=True, timeout=60, stdin=subprocess.DEVNULL)
            if result.returncode == 0 and wheels.read_identity(result.stdout)[1] == identity and subprocess.run(
                    [candidate, "-m", "pip", "--version"], capture_output=True, timeout=60,
                    stdin=subprocess.DEVNULL).returncode == 0:
                return candidate
        except (OSError, subprocess.TimeoutExpired, values.Unreadable):
            continue
    return None


def export_tree(repo, commit, work):
    """The commit's tree as a tar file in `work` (its path): relative paths in the
    requirements (`-r other.txt`, `./vendor/pkg`) resolve in it."""
    path = os.path.join(work, "source.tar")
    with open(path, "wb") as handle:
        handle.write(repo.git("archive", "--format=tar", commit, binary=True))
    return path


def unpack(archive, tree):
    os.makedirs(tree, exist_ok=True)
    subprocess.run(["tar", "-xf", archive, "-C", tree], check=True, capture_output=True)


def run_pip(env, python, tree, out, command):
    """Run `python -m pip <command>` for the requirements in `tree`, with the
    environment's pip arguments (credentials from a netrc file, never argv)."""
    public, logins = credentials.split_pip_args(env.pip_args)
    requirements = [word for path in env.requirements for word in ("-r", path)]
    with tempfile.TemporaryDirectory(prefix="fab-netrc-") as private:
        environ = {**os.environ, "PIP_NO_INPUT": "1"}
        if logins:
            environ["NETRC"] = os.path.join(private, "netrc")
            with open(os.open(environ["NETRC"], os.O_WRONLY | os.O_CREAT, 0o600), "w") as handle:
                handle.write(credentials.netrc_text(logins))
        try:
            result = subprocess.run([python, "-m", "pip", *command, "--quiet", "--disable-pip-version-check",
                                     *requirements, *public], cwd=tree, env=environ, capture_output=True,
                                    text=True, timeout=PIP_TIMEOUT, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise DeployError(f"pip {command[0]} on the controller: {error}") from None
    if result.returncode != 0:
        tail = (result.stderr + result.stdout).strip().splitlines()[-TAIL:]
        raise DeployError(f"pip {command[0]} on the controller failed: " + " | ".join(tail))


def build_on(host, archive, out):
    """Build the wheels on builder `host` (fab/remote/wheels.sh) from the tree in
    `archive`, in a throwaway directory, and fetch them into `out` over SFTP."""
    env = host.env
    builds = host.paths.wheel_builds
    work = host.run(shell.remote_script("wheels"), ["start", builds]).strip()
    if not work.startswith(builds + "/build.") or "/" in work[len(builds) + 1:]:
        raise RemoteCommandFailed(f"unexpected build directory {values.quoted(work)}")
    try:
        sftp = host.connection.sftp()
        sftp.put(archive, f"{work}/source.tar")
        public, logins = credentials.split_pip_args(env.pip_args)
        if logins:
            host.upload(credentials.netrc_text(logins), f"{work}/netrc")
        listed = host.run(shell.remote_script("wheels"), ["build", work, env.python, env.virtualenv,
                                                         len(env.requirements), *env.requirements, *public])
        fetched = []
        for line in listed.splitlines():
            kind, _, rest = line.partition(" ")
            if kind == "wheel":
                found = wheels.wheel(*rest.partition(" ")[::2])
                sftp.get(f"{work}/wheels/{found.name}", os.path.join(out, found.name))
                if transfer.artifact(os.path.join(out, found.name)).sha256 != found.sha256:
                    raise RemoteCommandFailed(f"{found.name} changed on its way from the builder")
                fetched.append(found)
    finally:
        host.run(shell.remote_script("wheels"), ["done", work, builds], check=False)
    return f"built {len(fetched)} wheel(s)"


# --- the controller's cache ------------------------------------------------------


def cache_dir(key, identity):
    """`<controller cache>/wheels/<key>/<identity>/`: the key alone does not name the
    platform (one version line can be two machines'), so the wheels are kept per identity."""
    slug = "-".join((identity.implementation, identity.version, identity.abi, identity.platform, identity.libc))
    return os.path.join(precedence.controller_cache(os.environ), "wheels", values.hex_digest(key, "venv key"), slug)


def from_cache(key, identity):
    """[(Wheel, Artifact)] of `key`'s cached wheels for hosts of `identity`, or None
    if not (wholly) cached."""
    if identity is None:
        return None
    directory = cache_dir(key, identity)
    try:
        with open(os.path.join(directory, MANIFEST)) as handle:
            listed = wheels.parse_manifest(handle.read())
        return [(w, transfer.Artifact(w.sha256, os.path.getsize(os.path.join(directory, w.name)),
                                      os.path.join(directory, w.name), w.name)) for w in sorted_wheels(listed)]
    except (OSError, values.Unreadable):
        return None


def into_cache(key, identity, out):
    """Keep the wheels in `out` as `key`'s cache entry (written whole, then renamed
    into place); its [(Wheel, Artifact)]."""
    directory = cache_dir(key, identity)
    os.makedirs(os.path.dirname(directory), exist_ok=True)
    found = [transfer.artifact(os.path.join(out, name)) for name in sorted(os.listdir(out)) if name.endswith(".whl")]
    with open(os.path.join(out, MANIFEST), "w") as handle:
        handle.write(wheels.manifest_text(wheels.wheel(a.sha256, a.name) for a in found))
    staged = tempfile.mkdtemp(prefix=f".{key}.", dir=os.path.dirname(directory))
    os.rmdir(staged)
    shutil.move(out, staged)
    try:
        os.rename(staged, directory)
    except OSError:  # another deploy cached it meanwhile: theirs is as good
        shutil.rmtree(staged, ignore_errors=True)
    return from_cache(key, identity) or []


def sorted_wheels(found):
    return sorted(found, key=lambda w: (w.name, w.sha256))
