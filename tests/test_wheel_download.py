"""Wheels for hosts of another platform: `pip download` with wheels.download_args, run
as the deployer runs it (fab.operations.wheels.run_pip), against a loopback index. Real
pip decides which files fit the hosts' Python and platform; nothing here needs SSH."""
import os
import shutil
import sys

import pytest

from fab import wheels
from fab.errors import DeployError
from fab.operations import wheels as wheel_ops
from fab.settings import Environment
from package_index import PackageIndex, make_wheel, serving

ARM = wheels.Identity("cpython", "3.11", "cpython-311", "linux-aarch64", "glibc-2.36")
X86 = wheels.Identity("cpython", "3.11", "cpython-311", "linux-x86_64", "glibc-2.36")
OLD_X86 = wheels.Identity("cpython", "3.11", "cpython-311", "linux-x86_64", "glibc-2.12")
COMPILED = "fabdemo_c-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"  # as a C extension's wheel is named


@pytest.fixture
def index(tmp_path, monkeypatch):
    """The index of a wheelhouse: fabdemo-a (needs fabdemo-b), fabdemo-b, both pure, and
    fabdemo-c built for x86_64 with glibc 2.17 or newer only; pip sees no other source."""
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    house = tmp_path / "house"
    house.mkdir()
    make_wheel(str(house), "fabdemo-a", "1.0", requires=["fabdemo-b>=1"])
    make_wheel(str(house), "fabdemo-b", "1.2")
    shutil.move(make_wheel(str(house), "fabdemo-c", "1.0"), house / COMPILED)
    with serving(PackageIndex(str(house))) as served:
        yield served


def download(tmp_path, index, identity, requirements):
    tree, out = tmp_path / "tree", tmp_path / f"out-{identity.platform}-{identity.libc}"
    tree.mkdir(exist_ok=True)
    out.mkdir()
    (tree / "requirements.txt").write_text(requirements)
    env = Environment.model_validate({"name": "dl", "app": {"repo": "/nowhere.git"}, "code_root": "~/www/dl",
                                      "roles": {"app": ["h1"]}, "pip_args": ["--index-url", index.url]})
    wheel_ops.run_pip(env, sys.executable, str(tree), str(out),
                      ["download", "--dest", str(out), *wheels.download_args(identity)])
    return sorted(os.listdir(out))


def test_pure_wheels_and_their_dependencies_are_downloaded_for_another_platform(tmp_path, index):
    assert download(tmp_path, index, ARM, "fabdemo-a==1.0\n") == [
        "fabdemo_a-1.0-py3-none-any.whl", "fabdemo_b-1.2-py3-none-any.whl"]


def test_a_compiled_wheel_is_taken_only_where_its_platform_and_glibc_fit(tmp_path, index):
    assert download(tmp_path, index, X86, "fabdemo-c==1.0\n") == [COMPILED]
    for other in (ARM, OLD_X86):  # another machine; a glibc older than the wheel's 2.17
        with pytest.raises(DeployError, match=r"^pip download on the controller failed: .*fabdemo-c"):
            download(tmp_path, index, other, "fabdemo-c==1.0\n")
