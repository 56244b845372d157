"""Build once, ship everywhere (issue 19), on the real fleet, where the hosts can
reach neither the package index nor the app's repository.

The index is a loopback PEP 503 server (tests/package_index.py) of a wheelhouse in a
root-only folder; an iptables owner-match rule refuses every host user's connection
to its port; the app's repository is a root-only copy. The controller (root here)
reads both: with `app.fetch: controller` and `wheels.build: once` it sends each host
the git objects and the wheels it lacks, and every host installs with no index.
Nothing points the hosts at any other wheels (their pip and uv caches are emptied
first). Today's way (each host fetching and installing itself) cannot deploy here:
`test_the_hosts_can_reach_neither_the_index_nor_the_repository` proves the fixture.
"""
import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import time

import pytest

from conftest import FAB, assert_ok
from fab import PROJECT_ROOT, paths, sandbox
from fab import settings as schema
from package_index import PackageIndex, make_wheel, serving, sha256_of
from test_deploy import live_release

pytestmark = pytest.mark.fleet

#: The settings of the build-once way and of today's way (design of issue 19).
BUILD_ONCE = {"fetch": "controller", "wheels": {"build": "once"}}
TODAYS_WAY = {"fetch": "hosts", "wheels": {"build": "each_host"}}
#: The manifest of the wheels a venv was installed from: "<sha256> <file name>" lines.
VENV_WHEELS = getattr(paths, "VENV_WHEELS", ".wheels")
BIG = 24 << 20  # the payload of a wheel big enough to cut its transfer half way


def way_settings(way):
    """({app settings}, {environment settings}) of `way`; today's way leaves out what the
    deployer does not know yet (a deployer without the setting works that way)."""
    app = {"fetch": way["fetch"]} if way is BUILD_ONCE or "fetch" in schema.AppConfig.model_fields else {}
    rest = {"wheels": way["wheels"]} if way is BUILD_ONCE or "wheels" in schema.Environment.model_fields else {}
    return app, rest


@contextlib.contextmanager
def refused(port, uids):
    """iptables rules refusing the users `uids` any TCP connection to 127.0.0.1:`port`,
    removed afterwards whatever happens."""
    if shutil.which("iptables") is None:
        pytest.skip("iptables is not installed (scripts/bootstrap.sh installs it)")
    rules = [["OUTPUT", "-p", "tcp", "-d", "127.0.0.1", "--dport", str(port), "-m", "owner",
              "--uid-owner", str(uid), "-j", "REJECT", "--reject-with", "tcp-reset"] for uid in uids]
    added = []
    try:
        for rule in rules:
            result = subprocess.run(["iptables", "-A", *rule], capture_output=True, text=True)
            if result.returncode != 0:
                if not added:
                    pytest.skip(f"iptables cannot add an owner-match rule here: {result.stderr.strip()}")
                raise AssertionError(result.stderr)
            added.append(rule)
        yield
    finally:
        for rule in added:
            subprocess.run(["iptables", "-D", *rule], capture_output=True)


class Offline:
    """The deploy environment `env` with its private repository and index."""

    def __init__(self, env, private, index):
        self.env, self.private, self.index = env, private, index
        self.repo = os.path.join(private, "app.git")
        self.work = os.path.join(private, "work")
        self.wheelhouse = index.wheelhouse

    def write_config(self, way=None, **overrides):
        """The environment file: the private repository and the index; `way`: the build
        settings (BUILD_ONCE or TODAYS_WAY; TODAYS_WAY on a deployer that has no such
        settings is the deployer as it is)."""
        app, rest = way_settings(way or BUILD_ONCE)
        return self.env.write_config(app={"repo": self.repo, "branch": "main", **app},
                                     pip_args=["--index-url", self.index.url], **rest, **overrides)

    def commit(self, path, content, message="change"):
        with open(os.path.join(self.work, path), "w") as handle:
            handle.write(content)
        sandbox.tools.git("add", path, cwd=self.work)
        sandbox.tools.git("commit", "-q", "-m", message, cwd=self.work)
        sandbox.tools.git("push", "-q", "origin", "main", cwd=self.work)
        return sandbox.tools.git("rev-parse", "HEAD", cwd=self.work)

    def requirements(self, *lines):
        return self.commit("requirements.txt", "".join(f"{line}\n" for line in ("gunicorn==23.0.0", *lines)),
                           "requirements")

    def fab(self, *args, **kwargs):
        # The controller's own PIP_FIND_LINKS (this machine's) would be a second source.
        return self.env.fab(*args, environ={"PIP_FIND_LINKS": None, **kwargs.pop("environ", {})}, **kwargs)

    def popen_fab(self, *args):
        environ = {**os.environ, "CI": "true", "DEPLOY_ENVIRONMENTS": self.env.directory}
        environ.pop("PIP_FIND_LINKS", None)
        return subprocess.Popen([FAB, self.env.name, *args], cwd=PROJECT_ROOT, env=environ, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)


@pytest.fixture
def offline(deploy_env, tmp_path):
    """The fleet with no way to the index or the repository for the hosts' users."""
    env = deploy_env
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    os.chmod(private, 0o700)
    os.chmod(tmp_path, 0o700)
    wheelhouse = private / "wheelhouse"
    wheelhouse.mkdir()
    for wheel in glob.glob(os.path.join(sandbox.tools.WHEELHOUSE, "*.whl")):
        shutil.copy(wheel, wheelhouse)
    for version in ("1.0", "1.1"):
        make_wheel(str(wheelhouse), "fabdemo-b", version)
    make_wheel(str(wheelhouse), "fabdemo-big", "1.0", payload=os.urandom(BIG))
    subprocess.run(["git", "clone", "-q", "--bare", env.spec.app_repo, str(private / "app.git")], check=True)
    subprocess.run(["git", "clone", "-q", str(private / "app.git"), str(private / "work")], check=True)
    for host in env.spec.hosts:  # what an earlier test's pip or uv kept
        for cache in ("pip", "uv"):
            shutil.rmtree(os.path.join(env.spec.home(host), ".cache", cache), ignore_errors=True)
    uids = [pwd.getpwnam(env.spec.user(host)).pw_uid for host in env.spec.hosts]
    with serving(PackageIndex(str(wheelhouse))) as index, refused(index.port, uids):
        found = Offline(env, str(private), index)
        found.write_config()
        yield found


# --- what the hosts have ---------------------------------------------------------------


def venv_dir(env, host, release=None):
    link = os.path.join(env.code_root(host), "releases", release or env.current(host), paths.VENV_LINK)
    return os.path.realpath(link)


def manifest(env, host, release=None):
    """{file name: sha256} of the wheels the release's venv on `host` was installed from."""
    with open(os.path.join(venv_dir(env, host, release), VENV_WHEELS)) as handle:
        return {name: sha for sha, name in (line.split(" ", 1) for line in handle.read().splitlines() if line)}


def installed(env, host, release=None):
    """The distributions in the release's venv on `host`: {"name-version.dist-info"}."""
    return {os.path.basename(found) for found in glob.glob(
        os.path.join(venv_dir(env, host, release), "lib", "python3*", "site-packages", "*.dist-info"))}


def parts_left(env):
    """{host: [the .part files in its store]}: what a cut transfer leaves."""
    found = {}
    for host in env.hosts:
        parts = glob.glob(os.path.join(env.code_root(host), "store", "*", "*.part"))
        if parts:
            found[host] = parts
    return found


def assert_one_wheel_set(offline, wanted=()):
    """Every host's live venv was installed from the same wheels, all from the index's
    wheelhouse, and runs the same distributions; `wanted` file names are among them."""
    env = offline.env
    served = {sha256_of(path) for path in glob.glob(os.path.join(offline.wheelhouse, "*.whl"))}
    manifests = {host: manifest(env, host) for host in env.hosts}
    first = manifests[env.hosts[0]]
    assert all(found == first for found in manifests.values()), manifests
    assert set(first.values()) <= served
    assert set(wanted) <= set(first), (wanted, first)
    dists = {host: installed(env, host) for host in env.hosts}
    assert len({frozenset(found) for found in dists.values()}) == 1, dists
    return first


def cut_in_transfer(offline):
    """A deploy interrupted (SIGINT, as Ctrl-C) as soon as a host holds part of an
    artifact; (its process, {host: parts seen})."""
    process = offline.popen_fab("deploy")
    seen, deadline = {}, time.monotonic() + 600
    try:
        while process.poll() is None and time.monotonic() < deadline and not seen:
            seen = parts_left(offline.env)
            if seen:
                process.send_signal(signal.SIGINT)
            else:
                time.sleep(0.005)
        process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return process, seen


# --- the tests --------------------------------------------------------------------------


def test_the_hosts_can_reach_neither_the_index_nor_the_repository(offline):
    """The fixture holds: each host's user is refused the index and cannot read the
    repository or the wheelhouse, so today's way (each host fetching and installing
    from the index itself) fails to deploy, in one clear line, and changes nothing."""
    env = offline.env
    for host in env.hosts:
        probe = env.remote(host, f"python3 -c \"import urllib.request; urllib.request.urlopen('{offline.index.url}/gunicorn/')\""
                                 f" 2>&1; git ls-remote {offline.repo} 2>&1; ls {offline.wheelhouse} 2>&1; true")
        assert "Connection refused" in probe or "Connection reset" in probe, probe
        assert "does not appear to be a git repository" in probe or "ermission denied" in probe, probe
        assert f"cannot access '{offline.wheelhouse}'" in probe, probe
    offline.write_config(TODAYS_WAY)
    assert_ok(offline.fab("deploy:plan=yes"))  # the controller reads both
    result = offline.fab("deploy")
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in output, output
    assert all(env.current(host) is None for host in env.hosts)
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and all(host in last for host in env.hosts), output


def test_cold_deploy_requirements_change_cut_transfer_resume_and_rollback_without_network(offline):
    env = offline.env
    offline.requirements("fabdemo-b==1.0")
    assert_ok(offline.fab("deploy"))
    cold = assert_one_wheel_set(offline, ["fabdemo_b-1.0-py3-none-any.whl"])
    for host in ("web1", "web2"):
        assert env.version(host)["commit"] == sandbox.tools.git("rev-parse", "HEAD", cwd=offline.work)

    bumped_commit = offline.requirements("fabdemo-b==1.1")  # one package bumped
    assert_ok(offline.fab("deploy"))
    bumped = assert_one_wheel_set(offline, ["fabdemo_b-1.1-py3-none-any.whl"])
    assert set(bumped) ^ set(cold) == {"fabdemo_b-1.0-py3-none-any.whl", "fabdemo_b-1.1-py3-none-any.whl"}
    bumped_release = live_release(env)

    offline.requirements("fabdemo-b==1.1", "fabdemo-big==1.0")
    process, seen = cut_in_transfer(offline)
    assert seen, "no host ever held part of an artifact: nothing was cut"
    assert process.returncode != 0
    assert live_release(env) == bumped_release  # the cut deploy changed no current
    assert parts_left(env), "the cut left no part to go on from"
    assert_ok(offline.fab("deploy:resume=yes"))
    assert parts_left(env) == {}
    assert_one_wheel_set(offline, ["fabdemo_big-1.0-py3-none-any.whl"])
    assert live_release(env) != bumped_release

    assert_ok(offline.fab("rollback"))
    assert live_release(env) == bumped_release
    assert assert_one_wheel_set(offline) == bumped
    for host in ("web1", "web2"):
        assert env.version(host)["commit"] == bumped_commit


def test_an_unpinned_dependency_is_one_version_on_every_host(offline):
    """fabdemo-a needs fabdemo-b, unpinned; the index serves b 1.0 and, from the moment
    anyone first asks for it, 1.1 too: one resolution, one version everywhere."""
    env = offline.env
    make_wheel(offline.wheelhouse, "fabdemo-a", "1.0", requires=["fabdemo-b"])
    newer = os.path.join(offline.wheelhouse, "fabdemo_b-1.1-py3-none-any.whl")
    held = os.path.join(offline.private, "fabdemo_b-1.1-py3-none-any.whl")
    shutil.move(newer, held)

    def publish_newer(project):
        if project == "fabdemo-b" and os.path.exists(held):
            shutil.move(held, newer)  # served to every later request

    offline.index.on_listing = publish_newer
    offline.requirements("fabdemo-a==1.0")
    assert_ok(offline.fab("deploy"))
    wheels = assert_one_wheel_set(offline, ["fabdemo_a-1.0-py3-none-any.whl"])
    versions = [name for name in wheels if name.startswith("fabdemo_b-")]
    assert len(versions) == 1, wheels
    for host in env.hosts:
        assert versions[0].replace("-py3-none-any.whl", ".dist-info") in installed(env, host)
