"""The wheel store on the test fleet (wheels.build: once, the default): wheels made
once per venv key on the controller (or a builder host), sent to each host's
store, installed there with no index.

The wheelhouse pip_args names is readable ONLY by root (the controller): a host
that tried to install from it itself would fail. Each test has its own
controller cache (XDG_CACHE_HOME), so what it sees was built in it.
"""
import base64
import hashlib
import json
import os
import shutil
import zipfile

import pytest

from conftest import DeployEnv, assert_ok
from fab import sandbox
from fab.outputs.plain import step_notes
from fab.transfer import human_bytes


def make_wheel(directory, name, version):
    """A pure-python wheel of a module `name` whose VERSION is `version` (its RECORD
    with each file's hash, as pip expects); its file name."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": f"VERSION = {version!r}\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: fab-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = ""
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record += f"{path},sha256={digest},{len(text.encode())}\n"
    files[f"{dist}/RECORD"] = record + f"{dist}/RECORD,,\n"
    file_name = f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(directory, file_name), "w") as archive:
        for path, text in files.items():
            info = zipfile.ZipInfo(path, date_time=(2026, 1, 1, 0, 0, 0))  # the same bytes every time
            archive.writestr(info, text)
    return file_name


def sha256_of(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


@pytest.fixture
def wheels_env(fleet, tmp_path):
    """An environment whose pip_args name a wheelhouse only root can read: the sample
    app's wheels and fabtestpkg 1.0 and 1.1."""
    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir(mode=0o700)
    for name in os.listdir(sandbox.tools.WHEELHOUSE):
        if name.endswith(".whl"):
            shutil.copy(os.path.join(sandbox.tools.WHEELHOUSE, name), wheelhouse)
    for version in ("1.0", "1.1"):
        make_wheel(str(wheelhouse), "fabtestpkg", version)
    os.chmod(tmp_path, 0o700)
    directory = tmp_path / "environments"
    directory.mkdir()
    env = DeployEnv(fleet, str(directory), "fabwheels", 8180)
    env.wheelhouse = str(wheelhouse)
    env.cache = str(tmp_path / "controller-cache")
    env.write_config(pip_args=["--no-index", "--find-links", env.wheelhouse])
    requirements = os.path.join(env.spec.app_workdir, "requirements.txt")
    with open(requirements) as handle:
        env.requirements = handle.read()
    try:
        yield env
    finally:
        env.commit("requirements.txt", env.requirements, "requirements as they were")
        env.remove_from_hosts()
        for host in fleet.hosts:
            shutil.rmtree(env.code_root(host), ignore_errors=True)


def fab(env, *args, summary=None):
    environ = {"XDG_CACHE_HOME": env.cache}
    if summary:
        environ["FAB_JSON"] = str(summary)
    return env.fab(*args, environ=environ)


def release_wheels(env, host):
    """The "<sha256> <file>" lines the host's current release records."""
    path = os.path.join(env.code_root(host), "current", ".release", "wheels")
    with open(path) as handle:
        return handle.read().splitlines()


def stored(env, host):
    """{sha256: file name} of the wheels in the host's store."""
    store = os.path.join(env.code_root(host), "store")
    return {digest: name for digest in os.listdir(store) for name in os.listdir(os.path.join(store, digest))}


def test_hosts_install_the_controllers_wheels_with_no_index_and_a_bump_sends_only_the_new_wheel(wheels_env, tmp_path):
    env = wheels_env
    for host in env.hosts:  # the hosts cannot read the wheelhouse: only the store serves them
        assert env.remote(host, f"ls {env.wheelhouse} >/dev/null 2>&1 && echo readable || echo refused") == "refused"
    env.commit("requirements.txt", env.requirements + "fabtestpkg==1.0\n", "fabtestpkg 1.0")
    first = assert_ok(fab(env, "deploy"))
    notes = step_notes(first.stdout, "virtualenv")
    for host in env.hosts:
        assert notes[host].startswith("installed venv ") and notes[host].endswith(" from store (3 wheels)"), notes
    assert "wheels built on the controller" in first.stdout
    sets = {host: release_wheels(env, host) for host in env.hosts}
    assert len({tuple(lines) for lines in sets.values()}) == 1, sets  # identical bits everywhere
    wheelset = sets["web1"]
    assert sorted(line.split(" ")[1] for line in wheelset) == sorted(
        ["fabtestpkg-1.0-py3-none-any.whl", "gunicorn-23.0.0-py3-none-any.whl", "packaging-26.4-py3-none-any.whl"])
    for line in wheelset:
        digest, name = line.split(" ")
        assert sha256_of(os.path.join(env.wheelhouse, name)) == digest
    assert env.remote("web1", f"~/www/{env.name}/current/python_env/bin/python -c "
                              "'import fabtestpkg; print(fabtestpkg.VERSION)'") == "1.0"
    for host in env.hosts:  # no index credentials, no pip configuration needed or left
        assert not os.path.exists(os.path.join(env.code_root(host), ".deploy-netrc"))

    listed = tmp_path / "releases.json"
    assert_ok(fab(env, "releases", summary=listed))
    roles = json.loads(listed.read_text())["wheel_sets"]
    assert set(roles) == {"webworkers", "pillowtop"} and all(r["same"] and "none" not in r["sets"]
                                                            for r in roles.values()), roles

    # A bump of one package: the plan says the new venv's wheels are made once; each
    # host then receives exactly that wheel (its store has the other two).
    env.commit("requirements.txt", env.requirements + "fabtestpkg==1.1\n", "fabtestpkg 1.1")
    planned = assert_ok(fab(env, "deploy:plan=yes"))
    assert planned.stdout.count("built once when the deploy runs") == len(env.hosts), planned.stdout
    bumped = assert_ok(fab(env, "deploy"))
    size = os.path.getsize(os.path.join(env.wheelhouse, "fabtestpkg-1.1-py3-none-any.whl"))
    received = step_notes(bumped.stdout, "transfer")
    for host in env.hosts:
        assert received[host] == f"received {human_bytes(size)} from controller", received
        assert len(stored(env, host)) == 4  # 1.0 stays with the previous release's venv
    assert len({tuple(release_wheels(env, host)) for host in env.hosts}) == 1
    assert env.remote("web1", f"~/www/{env.name}/current/python_env/bin/python -c "
                              "'import fabtestpkg; print(fabtestpkg.VERSION)'") == "1.1"

    # Deployed again as it is: nothing is made or sent, the venv is reused.
    again = assert_ok(fab(env, "deploy"))
    assert step_notes(again.stdout, "transfer") == {} and "wheels built" not in again.stdout
    assert all(note.startswith("reused venv") for note in step_notes(again.stdout, "virtualenv").values())


def test_a_builder_host_builds_hashed_requirements_once_and_a_failed_build_changes_no_host(wheels_env):
    env = wheels_env
    public = sandbox.tools.WHEELHOUSE  # the builder host installs from it itself
    # The hosts install from their stores with uv (the builder's throwaway venv is virtualenv's).
    env.write_config(pip_args=["--no-index", "--find-links", public], wheels={"where": "builder", "builder": "web2"},
                     uv=os.path.join(sandbox.tools.TOOLS, "bin", "uv"))
    hashed = "".join(f"{name.split('-')[0]}=={name.split('-')[1]} --hash=sha256:{sha256_of(os.path.join(public, name))}\n"
                     for name in sorted(os.listdir(public)) if name.endswith(".whl"))
    env.commit("requirements.txt", hashed, "hashed requirements")
    result = assert_ok(fab(env, "deploy"))
    assert "wheels built on web2" in result.stdout, result.stdout
    assert env.version("web1")["commit"] == env.head()  # the app runs from the uv-made venv
    for host in env.hosts:
        assert {line.split(" ")[0] for line in release_wheels(env, host)} == {
            sha256_of(os.path.join(public, name)) for name in os.listdir(public) if name.endswith(".whl")}
    assert os.listdir(os.path.join(env.code_root("web2"), ".wheel-builds")) == []  # its throwaway build is gone

    # A builder that cannot build: the build stage fails with its output, before any host changes.
    before = {host: env.releases(host) for host in env.hosts}
    env.commit("requirements.txt", hashed + "nosuchpackage==1.0 --hash=sha256:" + "0" * 64 + "\n", "unbuildable")
    failed = fab(env, "deploy")
    assert failed.returncode != 0 and "Traceback" not in failed.stderr
    assert "web2" in failed.stderr and "wheels" in failed.stderr, failed.stderr
    assert "nosuchpackage" in failed.stdout + failed.stderr
    assert {host: env.releases(host) for host in env.hosts} == before
