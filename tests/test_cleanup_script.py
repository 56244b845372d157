"""fab/remote/cleanup.sh run here: the cleanup step, decided from the state
fab/remote/state.sh reads of a local code root, deletes exactly the releases it is
told and the venvs no remaining release links to, and nothing else."""
import os
import subprocess
import types

import pytest

from fab import shell, steps
from fab.operations import cleanup, state
from fab.paths import Paths

OLD, MID, LIVE = "2026-12-01_00.00.00", "2026-12-02_00.00.00", "2026-12-03_00.00.00"
A, B, C = "aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb", "cccccccccccccccc"


def code_root(tmp_path, links):
    """A code root whose releases link to venvs as `links` says ({release: key or None})."""
    root = tmp_path / "www"
    for key in (A, B, C):
        (root / "venvs" / key / "bin").mkdir(parents=True)
    (root / "venvs" / "not-ours").mkdir()
    (root / "shared").mkdir()
    for name, key in links.items():
        (root / "releases" / name / ".release").mkdir(parents=True)
        if key:
            (root / "releases" / name / "python_env").symlink_to(root / "venvs" / key)
    (root / "current").symlink_to(f"releases/{max(links)}")
    return root


def host_at(root):
    output = subprocess.run(["bash", "-c", shell.remote_script("state"), "state", *state.arguments(Paths(str(root)))],
                            capture_output=True, text=True, check=True).stdout
    found = state.parse(output, str(root))
    return types.SimpleNamespace(state=found, paths=found.paths)


def run_step(step):
    result = subprocess.run(["bash", "-c", steps.compose([step])], capture_output=True, text=True, timeout=30)
    done, failed = steps.parse([step], result.stdout)
    assert result.returncode == 0 and failed is None, result.stderr
    return done[0].note


def left(root):
    return sorted(os.listdir(root / "releases")), sorted(os.listdir(root / "venvs"))


def test_it_deletes_the_releases_it_is_told_and_the_venvs_nothing_left_uses(tmp_path):
    root = code_root(tmp_path, {OLD: A, MID: B, LIVE: B})
    host = host_at(root)
    assert run_step(cleanup.delete_releases(host, [OLD])) == "removed 1 release(s)"
    assert left(root) == ([MID, LIVE], [B, "not-ours"])
    assert run_step(cleanup.delete_releases(host_at(root), [])) == "nothing to remove"
    assert left(root) == ([MID, LIVE], [B, "not-ours"])


def test_a_venv_built_after_the_state_was_read_is_kept(tmp_path):
    root = code_root(tmp_path, {OLD: A, LIVE: A})
    host = host_at(root)
    (root / "venvs" / "dddddddddddddddd").mkdir()  # this task's new venv
    run_step(cleanup.delete_releases(host, [OLD]))
    assert left(root) == ([LIVE], [A, "dddddddddddddddd", "not-ours"])


def test_a_release_whose_venv_is_unknown_keeps_every_venv(tmp_path):
    root = code_root(tmp_path, {OLD: A, MID: None, LIVE: B})
    os.symlink(f"{root}/venvs/{C}/", root / "releases" / MID / "python_env")  # no key in its last part
    host = host_at(root)
    assert host.state.venv_links_unknown == {MID}
    run_step(cleanup.delete_releases(host, [OLD]))
    assert left(root) == ([MID, LIVE], [A, B, C, "not-ours"])
    run_step(cleanup.delete_releases(host_at(root), [MID]))  # once it is gone, so are unused venvs
    assert left(root) == ([LIVE], [B, "not-ours"])


def test_a_release_without_a_venv_link_uses_none(tmp_path):
    root = code_root(tmp_path, {OLD: A, MID: None, LIVE: B})  # MID failed before its venv
    run_step(cleanup.delete_releases(host_at(root), []))
    assert left(root) == ([OLD, MID, LIVE], [A, B, "not-ours"])


@pytest.mark.parametrize("name", ["..", ".", "", "../www", "a/../../b", "-rf"])
def test_the_script_refuses_a_name_that_is_no_name(tmp_path, name):
    (tmp_path / "releases" / "x").mkdir(parents=True)
    for told in ([name], ["x", name]):
        result = subprocess.run(["bash", "-c", shell.remote_script("cleanup"), "cleanup", str(tmp_path / "releases"),
                                 str(tmp_path / "venvs"), "1", *told], capture_output=True, text=True)
        assert result.returncode == 1 and "is not a release or venv name" in result.stderr
        assert os.listdir(tmp_path / "releases") == ["x"]


def test_the_script_answers_how_many_it_was_told(tmp_path):
    (tmp_path / "releases" / OLD).mkdir(parents=True)
    (tmp_path / "venvs" / A).mkdir(parents=True)
    result = subprocess.run(["bash", "-c", shell.remote_script("cleanup"), "cleanup", str(tmp_path / "releases"),
                             str(tmp_path / "venvs"), "1", OLD, A, B], capture_output=True, text=True, check=True)
    assert result.stdout == "removed 1 2\n"
    assert os.listdir(tmp_path / "releases") == [] and os.listdir(tmp_path / "venvs") == []


def test_a_release_built_without_a_venv_lets_unused_venvs_go_and_an_unknown_one_keeps_them(tmp_path):
    from fab.rollout import NO_VENV, Built

    root = code_root(tmp_path, {OLD: A, LIVE: None})  # LIVE: built on a host that runs no app code
    run_step(cleanup.delete_releases(host_at(root), [OLD], Built(LIVE, None)))  # its venv unknown
    assert left(root) == ([LIVE], [A, B, C, "not-ours"])
    run_step(cleanup.delete_releases(host_at(root), [], Built(LIVE, NO_VENV)))
    assert left(root) == ([LIVE], ["not-ours"])
