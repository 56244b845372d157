"""fab/remote/venv.sh run here as the virtualenv step runs it on a host (the step
fab.operations.virtualenv.ensure builds, composed and run with the local bash), with
a stub virtualenv and uv: the key it finds is `venv_key`'s, a complete venv is
reused, and its one-line answer becomes the note users see."""
import os
import subprocess
import types

import pytest

from fab import host_values as values
from fab import steps
from fab.operations import virtualenv
from fab.paths import VENV_COMPLETE, Paths

PYTHON = "/usr/bin/python3"


def host_for(tmp_path, tools, requirements=(), pip_args=(), uv=""):
    env = types.SimpleNamespace(requirements=list(requirements), pip_args=list(pip_args), python=PYTHON,
                                virtualenv=tools.virtualenv, uv=uv,
                                app=types.SimpleNamespace(repo="/srv/app.git", fetch="controller"))
    state = types.SimpleNamespace(venvs={}, venv_links_unknown=set())
    return types.SimpleNamespace(env=env, paths=Paths(str(tmp_path / "root")), state=state)


def run_step(step):
    result = subprocess.run(["bash", "-c", steps.compose([step])], capture_output=True, text=True, timeout=60)
    done, failed = steps.parse([step], result.stdout)
    assert result.returncode == 0 and failed is None, result.stderr
    return done[0]


def release(host, name="2026-12-01_00.00.00", files=None):
    directory = os.path.join(host.paths.releases, name)
    os.makedirs(os.path.join(directory, ".release", "steps"), exist_ok=True)
    for file, content in (files or {}).items():
        with open(os.path.join(directory, file), "wb") as handle:
            handle.write(content)
    return name


@pytest.mark.parametrize("files,pip_args", [
    ({"requirements.txt": b"gunicorn==23.0.0\n"}, ["--no-index", "--find-links", "/opt/wheels"]),
    ({"requirements.txt": b"a\n", "dev requirements.txt": b"b\n# it's\n"}, ["--index-url", "https://x/$y z"]),
    ({}, []),
])
def test_the_host_finds_the_key_venv_key_defines_and_reuses_a_complete_venv(tmp_path, tools, files, pip_args):
    host = host_for(tmp_path, tools, list(files), pip_args)
    os.makedirs(host.paths.venvs)
    name = release(host, files=files)
    version = subprocess.run([PYTHON, "-S", "-c", virtualenv.PYTHON_VERSION_CODE], capture_output=True,
                             check=True).stdout
    key = virtualenv.venv_key(list(files.values()), pip_args, version)

    built = run_step(virtualenv.ensure(host, name))
    assert (built.note, built.result) == (f"built venv {key} with virtualenv + pip", key)
    link = os.path.join(host.paths.release(name), "python_env")
    assert os.readlink(link) == os.path.join(host.paths.venvs, key) and os.path.isfile(os.path.join(link, VENV_COMPLETE))
    expected = ["pip install --quiet --no-input --disable-pip-version-check "
                + " ".join(f"-r {f}" for f in files) + "".join(f" {a}" for a in pip_args)] if files else []
    assert (tools.installs.read_text().splitlines() if tools.installs.exists() else []) == expected

    other = release(host, "2026-12-02_00.00.00", files)
    reused = run_step(virtualenv.ensure(host, other))
    assert (reused.note, reused.result) == (f"reused venv {key}", key)
    assert len(tools.installs.read_text().splitlines() if tools.installs.exists() else []) == len(expected)


def test_uv_builds_when_it_is_there_and_virtualenv_when_not(tmp_path, tools):
    files = {"requirements.txt": b"a\n"}
    host = host_for(tmp_path, tools, list(files), ["--no-index"], uv=tools.uv)
    name = release(host, files=files)
    assert run_step(virtualenv.ensure(host, name)).note.endswith(" with uv")
    assert tools.installs.read_text().startswith("uv pip install --quiet --python ")
    absent = host_for(tmp_path / "other", tools, list(files), [], uv=str(tmp_path / "no-uv"))
    assert run_step(virtualenv.ensure(absent, release(absent, files=files))).note.endswith(" with virtualenv + pip")


def test_a_requirements_file_the_release_lacks_fails_the_step(tmp_path, tools):
    host = host_for(tmp_path, tools, ["requirements.txt"])
    step = virtualenv.ensure(host, release(host))
    result = subprocess.run(["bash", "-c", steps.compose([step])], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip() == "requirements file requirements.txt is not in the release"


@pytest.mark.parametrize("line, read", [
    ("reused 0123456789abcdef", ("reused", "0123456789abcdef", None, None)),
    ("built 0123456789abcdef uv", ("built", "0123456789abcdef", "uv", None)),
    ("built 0123456789abcdef virtualenv", ("built", "0123456789abcdef", "virtualenv", None)),
    ("installed 0123456789abcdef uv 12", ("installed", "0123456789abcdef", "uv", 12)),
])
def test_the_answer_reads_into_its_fields(line, read):
    assert virtualenv.read_result(line) == read


@pytest.mark.parametrize("line", ["", "reused", "reused ../../etc", "built 0123 pip", "reused 0123 uv",
                                  "built 0123", "rebuilt 0123", "reused venv 0123",
                                  "installed 0123 uv", "installed 0123 uv -1", "installed 0123 pip 3"])
def test_an_answer_that_is_not_one_leaves_the_venv_unknown(tmp_path, tools, line):
    with pytest.raises(values.Unreadable):
        virtualenv.read_result(line)
    step = virtualenv.ensure(host_for(tmp_path, tools), "r")
    assert step.note(line) == line and step.result(line) is None  # unknown: restart, delete no venv
