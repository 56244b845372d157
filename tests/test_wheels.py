"""fab.wheels: the wheel store's pure decisions, and the scripts that carry them out
run here on a local code root (state.sh's store lines, venv.sh's store mode,
cleanup.sh's wheels), with stub virtualenv and uv (tests/test_venv_script.py)."""
import base64
import dataclasses
import hashlib
import os
import shutil
import subprocess
import sys
import time
import types

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fab import host_values as values
from fab import shell, steps, wheels
from fab.operations import cleanup, state, virtualenv
from fab.operations import wheels as wheel_ops
from fab.paths import RELEASE_WHEELS, VENV_COMPLETE, VENV_WHEELS, Paths
from test_venv_script import PYTHON, release, run_step

A, B, C = "aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb", "cccccccccccccccc"
LINUX = wheels.Identity("cpython", "3.11", "cpython-311", "linux-x86_64", "glibc-2.36")


def wheel_named(name, content=None):
    return wheels.Wheel(hashlib.sha256((content or name).encode()).hexdigest(), name)


GUNICORN, PACKAGING, NEWER = (wheel_named("gunicorn-23.0.0-py3-none-any.whl"),
                              wheel_named("packaging-26.4-py3-none-any.whl"),
                              wheel_named("packaging-26.5-py3-none-any.whl"))


# --- the python identity -----------------------------------------------------------


def test_the_identity_code_prints_what_the_venv_key_hashes_and_the_identity():
    """The controller and state.sh run IDENTITY_CODE; its version bytes are exactly
    what venv.sh's `python -S -c 'import sys; print(sys.version)'` prints."""
    run = subprocess.run([PYTHON, "-S", "-c", wheels.IDENTITY_CODE], capture_output=True, text=True, check=True)
    version, identity = wheels.read_identity(run.stdout)
    plain = subprocess.run([PYTHON, "-S", "-c", virtualenv.PYTHON_VERSION_CODE], capture_output=True, check=True)
    assert version == plain.stdout
    assert identity.implementation == sys.implementation.name and identity.platform.startswith("linux-")


@pytest.mark.parametrize("line", ["cpython 3.11 cpython-311 linux-x86_64", "cpython 3.11 a b c d",
                                  "cpython 3.11 cpython-311 linux-x86_64 $(reboot)", ""])
def test_an_identity_that_is_not_five_words_is_unreadable(line):
    if len(line.split(" ")) == 5 and "$" not in line:
        assert wheels.parse_identity_line(line).libc == "d"
    else:
        with pytest.raises(values.Unreadable):
            wheels.parse_identity_line(line)


@pytest.mark.parametrize("text", ["not base64!", "AAAA\x00", "G1sxbQ=="])  # the last: an escape sequence
def test_a_version_line_that_is_no_base64_text_is_unreadable(text):
    with pytest.raises(values.Unreadable):
        wheels.parse_version_line(text)


# --- manifests --------------------------------------------------------------------


def test_a_manifest_reads_back_the_set_it_was_written_from_and_its_digest_is_sha256sums():
    text = wheels.manifest_text([PACKAGING, GUNICORN, PACKAGING])
    assert text.splitlines() == [f"{GUNICORN.sha256} {GUNICORN.name}", f"{PACKAGING.sha256} {PACKAGING.name}"]
    assert wheels.parse_manifest(text) == {GUNICORN, PACKAGING}
    assert wheels.set_digest([GUNICORN, PACKAGING]) == hashlib.sha256(text.encode()).hexdigest()[:16]


@pytest.mark.parametrize("line", ["abc gunicorn.whl", f"{'a' * 64} ../../etc/passwd.whl", f"{'a' * 64} x.tar.gz",
                                  f"{'A' * 64} x.whl", f"{'a' * 64}"])
def test_a_manifest_line_that_is_no_wheel_is_unreadable(line):
    with pytest.raises(values.Unreadable):
        wheels.parse_manifest(line + "\n")


# --- who needs what ---------------------------------------------------------------


@pytest.mark.parametrize("keys, complete, wanted", [
    ({"web1": A, "web2": A}, {}, {A: ["web1", "web2"]}),
    ({"web1": A, "web2": A}, {"web1": {A}}, {A: ["web2"]}),  # web1 has the venv: it needs nothing
    ({"web1": A, "web2": B, "p1": A}, {}, {A: ["web1", "p1"], B: ["web2"]}),  # two pythons, two keys
    ({"web1": None, "web2": A}, {}, {A: ["web2"]}),  # web1's venv step is done (a resume)
    ({"web1": A}, {"web1": {A, B}}, {}),
])
def test_hosts_are_grouped_by_the_key_they_lack(keys, complete, wanted):
    assert wheels.hosts_by_key(keys, complete) == wanted


@settings(max_examples=200)
@given(st.dictionaries(st.sampled_from(["h1", "h2", "h3", "h4"]), st.sampled_from([A, B, C, None])),
       st.dictionaries(st.sampled_from(["h1", "h2", "h3", "h4"]), st.sets(st.sampled_from([A, B, C]))))
def test_every_host_lacking_its_venv_is_in_exactly_one_group(keys, complete):
    wanted = wheels.hosts_by_key(keys, complete)
    grouped = [host for hosts in wanted.values() for host in hosts]
    assert sorted(grouped) == sorted(h for h, k in keys.items() if k and k not in complete.get(h, ()))
    assert all(keys[host] == key for key, hosts in wanted.items() for host in hosts)


@pytest.mark.parametrize("setting, matches, ways", [
    ("auto", True, ["controller", "builder"]),
    ("auto", False, ["download", "builder"]),
    ("controller", True, ["controller"]),
    ("controller", False, ["download"]),
    ("builder", True, ["builder"]),
])
def test_where_the_wheels_are_made(setting, matches, ways):
    assert wheels.where_to_build(setting, matches, can_download=True) == ways


def test_the_builder_is_the_setting_else_the_first_host_needing_the_key():
    assert wheels.builder_for(["web2", "web1"], None) == "web2"
    assert wheels.builder_for(["web2", "web1"], "pillow1") == "pillow1"


def test_binary_wheels_for_another_platform_are_asked_for_by_its_tags():
    args = wheels.download_args(LINUX)
    assert args[:5] == ["--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp"]
    assert args[args.index("--abi") + 1] == "cp311" and "abi3" in args
    platforms = [args[i + 1] for i, word in enumerate(args) if word == "--platform"]
    assert platforms[0] == "manylinux_2_36_x86_64" and "manylinux2014_x86_64" in platforms
    assert platforms[-1] == "linux_x86_64" and "manylinux_2_4_x86_64" not in platforms
    musl = wheels.Identity("cpython", "3.12", "cpython-312", "linux-aarch64", "none")
    assert wheels.platform_tags(musl) == ["linux_aarch64"]


# --- identical bits ---------------------------------------------------------------


def test_each_role_says_whether_its_hosts_run_one_wheel_set():
    roles = {"web": ["web1", "web2", "web3"], "pillow": ["p1"], "proxy": ["proxy1"]}
    sets = {"web1": (A, 2), "web2": (A, 2), "web3": (B, 3), "p1": (A, 2), "proxy1": None}
    found = wheels.role_wheel_sets(roles, sets)
    assert found["web"] == {"same": False, "sets": {f"{A} (2 wheels)": ["web1", "web2"], f"{B} (3 wheels)": ["web3"]},
                            "differs": ["web3"]}
    assert found["pillow"]["same"] and found["proxy"] == {"same": True, "sets": {"none": ["proxy1"]}, "differs": []}
    assert wheels.role_wheel_sets({"web": ["web9"]}, sets) == {}  # not read: not shown


# --- the scripts, on a local code root -------------------------------------------------


def stored_host(tmp_path, tools, uv=""):
    env = types.SimpleNamespace(requirements=["requirements.txt"], pip_args=[], python=PYTHON,
                                virtualenv=tools.virtualenv, uv=uv, app=types.SimpleNamespace(repo="/srv/app.git"))
    paths = Paths(str(tmp_path / "root"))
    return types.SimpleNamespace(env=env, paths=paths, state=types.SimpleNamespace(venvs={}, venv_links_unknown=set()))


def put_in_store(paths, *found):
    for wheel in found:
        os.makedirs(os.path.join(paths.store, wheel.sha256), exist_ok=True)
        with open(paths.stored(wheel.sha256, wheel.name), "w") as handle:
            handle.write(wheel.name)


def read_state(paths, python=""):
    output = subprocess.run(["bash", "-c", shell.remote_script("state"), "state",
                             *state.arguments(paths, python)], capture_output=True, text=True, check=True).stdout
    return state.parse(output, paths.code_root)


@pytest.mark.parametrize("uv", [False, True])
def test_the_store_mode_installs_exactly_the_wheels_it_is_given_with_no_index(tmp_path, tools, uv):
    host = stored_host(tmp_path, tools, uv=tools.uv if uv else "")
    put_in_store(host.paths, GUNICORN, PACKAGING)
    name = release(host)
    install = wheel_ops.Install(A, (GUNICORN, PACKAGING))
    done = run_step(virtualenv.ensure(host, name, install))
    assert (done.note, done.result) == (f"installed venv {A} from store (2 wheels)", A)
    files = " ".join(f"./{w.sha256}/{w.name}" for w in (GUNICORN, PACKAGING))  # relative to the store
    logged = tools.installs.read_text().splitlines()
    assert logged == ([f"uv pip install --quiet --python {host.paths.venvs}/{A}/bin/python --no-index --no-deps "
                       f"{files}"] if uv else
                      [f"pip install --quiet --no-input --disable-pip-version-check --no-index --no-deps {files}"])
    manifest = wheels.manifest_text([GUNICORN, PACKAGING])
    venv = os.path.join(host.paths.venvs, A)
    assert open(os.path.join(venv, VENV_WHEELS)).read() == manifest
    assert open(os.path.join(host.paths.release(name), RELEASE_WHEELS)).read() == manifest
    assert os.path.isfile(os.path.join(venv, VENV_COMPLETE))

    # A second release with the key reuses the venv, records the same set, installs nothing.
    other = release(host, "2026-12-02_00.00.00")
    again = run_step(virtualenv.ensure(host, other, wheel_ops.Install(A)))
    assert (again.note, again.result) == (f"reused venv {A}", A)
    assert len(tools.installs.read_text().splitlines()) == 1
    assert open(os.path.join(host.paths.release(other), RELEASE_WHEELS)).read() == manifest

    # What the host's state then says: its store, its complete venv, each release's set.
    found = read_state(host.paths)
    assert found.stored_wheels == {GUNICORN, PACKAGING} and found.complete_venvs == {A}
    assert found.wheel_sets == {name: (wheels.set_digest([GUNICORN, PACKAGING]), 2),
                                other: (wheels.set_digest([GUNICORN, PACKAGING]), 2)}


def test_a_wheel_missing_from_the_store_fails_the_step_naming_it(tmp_path, tools):
    host = stored_host(tmp_path, tools)
    put_in_store(host.paths, GUNICORN)
    step = virtualenv.ensure(host, release(host), wheel_ops.Install(A, (GUNICORN, PACKAGING)))
    result = subprocess.run(["bash", "-c", steps.compose([step])], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and result.stderr.strip() == f"wheel {PACKAGING.name} is not in the store"
    assert not os.path.exists(os.path.join(host.paths.venvs, A))


def test_the_state_reads_the_python_identity_when_asked(tmp_path):
    paths = Paths(str(tmp_path / "root"))
    found = read_state(paths, PYTHON)
    plain = subprocess.run([PYTHON, "-S", "-c", virtualenv.PYTHON_VERSION_CODE], capture_output=True, check=True)
    assert found.python_version == plain.stdout and found.python_identity.version == "%d.%d" % sys.version_info[:2]
    assert read_state(paths).python_identity is None
    assert "does not run" in read_state(paths, "/no/such/python").problems[0]


def test_the_python_identity_is_read_once_per_interpreter_file(tmp_path):
    """A python start costs every host ~10 ms per state read: its identity is kept, and
    read again only for another interpreter file (an upgrade, a reinstall)."""
    paths = Paths(str(tmp_path / "root"))
    os.makedirs(paths.code_root)
    python = tmp_path / "bin" / "python3"
    python.parent.mkdir()
    shutil.copy(os.path.realpath(PYTHON), python)  # a real interpreter, in a file of its own
    expected = read_state(paths, str(python))
    assert expected.python_identity.version == "%d.%d" % sys.version_info[:2]
    kept = open(paths.python_identity).read()
    said = base64.b64encode(expected.python_version).decode()
    with open(paths.python_identity, "w") as handle:  # what a second read says comes from here
        handle.write(kept.replace(said, base64.b64encode(b"9.9.9 (kept)\n").decode()))
    assert read_state(paths, str(python)).python_version == b"9.9.9 (kept)\n"
    python.unlink()
    shutil.copy(os.path.realpath(PYTHON), python)  # another file where it was: read again
    assert read_state(paths, str(python)).python_version == expected.python_version
    python.unlink()
    assert "does not run" in read_state(paths, str(python)).problems[0]


def test_an_interpreter_that_is_a_script_is_read_every_time(tmp_path):
    """A pyenv or asdf shim is a script that picks its python elsewhere: nothing of it
    says when that changes."""
    paths = Paths(str(tmp_path / "root"))
    os.makedirs(paths.code_root)
    starts = tmp_path / "starts"
    shim = tmp_path / "shims" / "python3"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/bash\necho started >> {starts}\nexec {PYTHON} "$@"\n')
    shim.chmod(0o755)
    for _ in range(3):
        assert read_state(paths, str(shim)).python_identity.version == "%d.%d" % sys.version_info[:2]
    assert starts.read_text().splitlines() == ["started"] * 3


@pytest.mark.parametrize("line", [f"stored {'a' * 64} ../x.whl", "venvok zz",
                                  "wheelset 2026-12-01_00.00.00 ab -1", "pyid a b c"])
def test_a_store_line_the_reader_refuses_is_said_and_dropped(line):
    found = state.parse(f"home /h\n{line}\n", "/h/www")
    assert not found.stored_wheels and not found.complete_venvs and found.python_identity is None
    assert len(found.problems) == 1


def test_cleanup_removes_a_stored_wheel_with_the_last_venv_installed_from_it(tmp_path, tools):
    host = stored_host(tmp_path, tools)
    put_in_store(host.paths, GUNICORN, PACKAGING, NEWER)
    for wheel in (GUNICORN, PACKAGING, NEWER):  # stored two days ago: past the age cleanup spares
        day_before_yesterday = time.time() - 2 * 86400
        os.utime(os.path.join(host.paths.store, wheel.sha256), (day_before_yesterday, day_before_yesterday))
    old, new = release(host, "2026-12-01_00.00.00"), release(host, "2026-12-02_00.00.00")
    run_step(virtualenv.ensure(host, old, wheel_ops.Install(A, (GUNICORN, PACKAGING))))
    host.state = read_state(host.paths)  # read before the new venv, which shares gunicorn
    host.paths = host.state.paths
    run_step(virtualenv.ensure(host, new, wheel_ops.Install(B, (GUNICORN, NEWER))))
    # The host keeps those B's manifest (made since the state was read) names. Only
    # packaging 26.4 goes, with A.
    assert run_step(cleanup.delete_releases(host, [old])).note == "removed 1 release(s); 1 unused store file(s)"
    assert sorted(os.listdir(host.paths.store)) == sorted([GUNICORN.sha256, NEWER.sha256])
    assert sorted(os.listdir(host.paths.venvs)) == [B]


# --- the controller's key, the setting, the plan ------------------------------------


def test_the_key_the_controller_decides_is_the_one_the_index_way_finds_on_the_host(tmp_path, tools):
    """From the version line the host's state read (fab/remote/state.sh), the
    controller's venv_key is the key venv.sh's index mode works out on the host."""
    from test_venv_script import host_for

    files = {"requirements.txt": b"gunicorn==23.0.0\n", "more.txt": b"-r requirements.txt\n"}
    pip_args = ["--no-index", "--find-links", "/srv/wheels dir"]
    host = host_for(tmp_path, tools, list(files), pip_args)
    name = release(host, files=files)
    found = read_state(host.paths, PYTHON)
    decided = virtualenv.venv_key(list(files.values()), pip_args, found.python_version)
    assert run_step(virtualenv.ensure(host, name)).result == decided


@pytest.mark.parametrize("text, fragments", [
    ("wheels: {build: sometimes}\n", ["wheels.build"]),
    ("wheels: {where: laptop}\n", ["wheels.where"]),
    ("wheels: {builder: web9}\n", ["wheels.builder names unknown host web9"]),
    ("wheels: {builders: web1}\n", ["wheels.builders: unknown setting"]),
])
def test_a_wheels_setting_that_is_wrong_is_one_line(tmp_path, text, fragments):
    from fab.config import load_environment
    from fab.errors import ConfigError

    (tmp_path / "prod.yml").write_text("app: {repo: /srv/app.git}\ncode_root: ~/www/prod\n"
                                       "roles: {web: [web1, web2]}\n" + text)
    with pytest.raises(ConfigError) as raised:
        load_environment("prod", str(tmp_path))
    assert "\n" not in str(raised.value) and all(f in str(raised.value) for f in fragments)
    (tmp_path / "prod.yml").write_text("app: {repo: /srv/app.git}\ncode_root: ~/www/prod\nroles: {web: [web1]}\n")
    assert load_environment("prod", str(tmp_path)).wheels.model_dump() == {"build": "once", "builder": None,
                                                                           "where": "auto"}


def test_the_plan_names_the_wheels_a_host_lacks_or_says_reused():
    from fab import plan
    from fab.transfer import Artifact

    cached = [(w, Artifact(w.sha256, size, "/c/" + w.name, w.name))
              for w, size in ((GUNICORN, 85029), (PACKAGING, 140049))]
    built = plan.VirtualenvPlan(plan.BUILT, A)
    assert plan.wheels_plan(built, cached, {GUNICORN}) == plan.WheelsPlan(
        plan.RECEIVES, A, 1, 140049, (PACKAGING.name,))
    assert plan.wheels_plan(built, cached, set()).count == 2
    assert plan.wheels_plan(built, None, set()) == plan.WheelsPlan(plan.TO_BUILD, A)
    assert plan.wheels_plan(plan.VirtualenvPlan(plan.REUSED, A), cached, set()) == plan.WheelsPlan(plan.REUSED, A)
    many = [(wheel_named(f"p{i}-1.0-py3-none-any.whl"), Artifact("0" * 64, 10, "/c", "x")) for i in range(9)]
    assert plan.wheels_plan(built, many, set()).names == ()  # too many to name: count and bytes

    from fab.outputs.plan_text import wheels_line
    shown = wheels_line(dataclasses.asdict(plan.wheels_plan(built, cached, {GUNICORN})))
    assert shown == f"venv {A}: receives 1 wheel (140.0 KB): {PACKAGING.name}"
    assert wheels_line({"action": "reused", "key": A, "count": 0, "bytes": 0, "names": []}).startswith("reused")


def test_the_controllers_cache_keeps_a_keys_wheels_per_identity(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "out"
    out.mkdir()
    for name in (GUNICORN.name, "packaging-26.4-py3-none-any.whl"):
        (out / name).write_text(name)
    assert wheel_ops.from_cache(A, LINUX) is None
    kept = wheel_ops.into_cache(A, LINUX, str(out))
    assert [w for w, _ in kept] == [GUNICORN, PACKAGING] and not out.exists()
    assert wheel_ops.from_cache(A, LINUX) == kept and kept[0][1].size == len(GUNICORN.name)
    directory = tmp_path / "cache" / "fab-deploy" / "wheels" / A
    assert (directory / os.listdir(directory)[0] / "manifest").read_text() == wheels.manifest_text([GUNICORN, PACKAGING])
    arm = dataclasses.replace(LINUX, platform="linux-aarch64")
    assert wheel_ops.from_cache(A, arm) is None  # the same key on another machine: not these wheels


def test_the_controller_builds_with_a_python_of_the_hosts_identity_only():
    own = wheels.read_identity(subprocess.run([sys.executable, "-S", "-c", wheels.IDENTITY_CODE],
                                              capture_output=True, text=True, check=True).stdout)[1]
    env = types.SimpleNamespace(python="/no/such/python")
    assert wheel_ops.controller_python(env, own) == sys.executable  # the deployer's own, which has pip
    assert wheel_ops.controller_python(env, dataclasses.replace(own, platform="linux-aarch64")) is None
