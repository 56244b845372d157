"""fab/remote/meta.sh and fab/remote/shared.sh run here as a host runs them (the
steps and commands fab.operations.release and fab.operations.shared build, with the
local bash): metadata written whole, a mark that finds its release gone changes
nothing, private files of mode 0600 with their content never on a command line, and
the linked files shared/ lacks."""
import dataclasses
import os
import stat
import subprocess
import types

import pytest

from fab import shell, steps
from fab.operations import release, shared
from fab.operations.state import HostState
from fab.paths import Paths
from fab.releases import GOOD, HostRelease, ReleaseMeta

META = ReleaseMeta("2026-12-01_00.00.00", "a" * 40, "main", "it's me", "2026-12-01T00:00:00+00:00", "building")


def run_step(step):
    result = subprocess.run(["bash", "-c", steps.compose([step])], capture_output=True, text=True, timeout=30)
    done, failed = steps.parse([step], result.stdout)
    assert result.returncode == 0 and failed is None, result.stderr
    return done[0].note


class LocalHost:
    """What fab.operations.shared asks of a host, done here: run a script with its
    arguments as a host's step.sh does, and upload by writing the file."""

    def __init__(self, tmp_path, linked_files=()):
        self.paths = Paths(str(tmp_path / "root"))
        self.env = types.SimpleNamespace(linked_files=list(linked_files))
        self.commands = []

    def run(self, script, args=()):
        self.commands.append(shell.step_command(script, args))  # the command line a host would see
        return subprocess.run(["bash", "-c", script, "fab-step", *args], capture_output=True, text=True,
                              check=True).stdout

    def upload(self, content, path):
        with open(path, "a") as handle:  # into the file prepared for it, as SFTP does
            handle.write(content)


def host_running(tmp_path, runs_app=True):
    env = types.SimpleNamespace(topology=types.SimpleNamespace(runs_app=lambda name: runs_app))
    return types.SimpleNamespace(name="web1", env=env, paths=Paths(str(tmp_path / "root")), state=None)


def test_a_release_is_created_with_its_metadata_then_marked(tmp_path):
    host = host_running(tmp_path)
    assert run_step(release.create(host, META)) == "created"
    for path in (host.paths.shared, host.paths.log, host.paths.venvs, host.paths.release_steps(META.name)):
        assert os.path.isdir(path)
    with open(host.paths.release_meta(META.name)) as handle:
        assert ReleaseMeta.from_json(handle.read(), META.name) == META
    assert run_step(release.create(host, META)) == "created"  # safe to rerun

    assert run_step(release.write_meta(host, META.with_status(GOOD))) == GOOD
    with open(host.paths.release_meta(META.name)) as handle:
        assert ReleaseMeta.from_json(handle.read(), META.name).status == GOOD
    assert sorted(os.listdir(os.path.dirname(host.paths.release_meta(META.name)))) == ["meta.json", "steps"]


def test_a_release_on_a_host_that_runs_no_app_code_makes_no_venvs_directory(tmp_path):
    host = host_running(tmp_path, runs_app=False)
    assert run_step(release.create(host, META)) == "created"
    assert os.path.isdir(host.paths.release_steps(META.name)) and os.path.isdir(host.paths.log)
    assert not os.path.exists(host.paths.venvs)


def test_a_mark_of_a_release_cleanup_removed_creates_nothing(tmp_path):
    host = types.SimpleNamespace(paths=Paths(str(tmp_path / "root")), state=None)
    assert run_step(release.write_meta(host, META.with_status(GOOD))) == GOOD
    assert not os.path.exists(host.paths.release(META.name))


def test_a_mark_keeps_the_keep_until_the_host_has_for_the_release(tmp_path):
    """The task's record of a release comes from one host; a setup_release that reached
    only some hosts left a keep_until on those: a mark (a resumed deploy's) keeps it."""
    host = host_running(tmp_path)
    kept = dataclasses.replace(META, keep_until="2026-12-31T00:00:00+00:00")
    assert run_step(release.create(host, kept)) == "created"
    host.state = HostState(home=str(tmp_path), paths=host.paths,
                           releases={META.name: HostRelease(META.name, kept)})
    assert run_step(release.write_meta(host, META.with_status(GOOD))) == GOOD
    with open(host.paths.release_meta(META.name)) as handle:
        assert ReleaseMeta.from_json(handle.read(), META.name) == kept.with_status(GOOD)


def test_a_private_file_has_mode_0600_and_its_content_is_never_on_a_command_line(tmp_path):
    host = LocalHost(tmp_path)
    path = os.path.join(host.paths.shared, "deep", "secrets.env")
    shared.write_private(host, path, "TOKEN='s3cret'\n")
    shared.write_private(host, path, "TOKEN='n3w'\n")  # over the old one, whole
    with open(path) as handle:
        assert handle.read() == "TOKEN='n3w'\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert os.listdir(os.path.dirname(path)) == ["secrets.env"]
    assert not any("s3cret" in command or "n3w" in command for command in host.commands)


@pytest.mark.parametrize("present", [[], ["config/local.py"], ["config/local.py", "it's here.txt"]])
def test_the_linked_files_shared_lacks_are_named(tmp_path, present):
    host = LocalHost(tmp_path, ["config/local.py", "it's here.txt", "-n"])
    for name in present:
        os.makedirs(os.path.dirname(host.paths.shared_path(name)), exist_ok=True)
        open(host.paths.shared_path(name), "w").close()
    assert shared.missing_linked_files(host) == [n for n in host.env.linked_files if n not in present]


@pytest.mark.parametrize("script", ["meta", "shared"])
def test_an_unknown_mode_is_refused(script):
    result = subprocess.run(["bash", "-c", shell.remote_script(script), script, "nope", "/tmp/x", "y"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "unknown mode" in result.stderr
