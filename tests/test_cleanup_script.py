"""fab/remote/cleanup.sh run here: the cleanup step, decided from the state
fab/remote/state.sh reads of a local code root, deletes exactly the releases it is
told and the venvs no remaining release links to, and nothing else."""
import hashlib
import os
import subprocess
import time
import types

import pytest

from fab import shell, steps
from fab.operations import cleanup, state
from fab.paths import REVISION, VENV_WHEELS, Paths

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


def run_script(tmp_path, *args):
    """cleanup.sh on the code root `tmp_path` (its store and git cache there), told `args`."""
    paths = Paths(str(tmp_path))
    return subprocess.run(["bash", "-c", shell.remote_script("cleanup"), "cleanup", paths.releases, paths.venvs,
                           paths.store, VENV_WHEELS, "1440", paths.git_cache, REVISION, "10", "8", *args],
                          capture_output=True, text=True)


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
        result = run_script(tmp_path, "1", *told)
        assert result.returncode == 1 and "is not a release or venv name" in result.stderr
        assert os.listdir(tmp_path / "releases") == ["x"]


def test_the_script_answers_how_many_it_was_told(tmp_path):
    (tmp_path / "releases" / OLD).mkdir(parents=True)
    (tmp_path / "venvs" / A).mkdir(parents=True)
    result = run_script(tmp_path, "1", OLD, A, B)
    assert result.stdout == "removed 1 2 0 packs 0 0\n"
    assert os.listdir(tmp_path / "releases") == [] and os.listdir(tmp_path / "venvs") == []


def test_a_release_built_without_a_venv_lets_unused_venvs_go_and_an_unknown_one_keeps_them(tmp_path):
    from fab.rollout import NO_VENV, Built

    root = code_root(tmp_path, {OLD: A, LIVE: None})  # LIVE: built on a host that runs no app code
    run_step(cleanup.delete_releases(host_at(root), [OLD], Built(LIVE, None)))  # its venv unknown
    assert left(root) == ([LIVE], [A, B, C, "not-ours"])
    run_step(cleanup.delete_releases(host_at(root), [], Built(LIVE, NO_VENV)))
    assert left(root) == ([LIVE], ["not-ours"])


def test_the_store_keeps_what_a_venv_uses_and_what_is_fresh_and_drops_the_rest(tmp_path):
    """A store entry no remaining venv's manifest names goes once nothing has written it
    for a day: a bundle never fetched (its deploy failed after the transfer), a wheel
    its last venv left, a transfer's part. A used wheel stays however old, and so does
    an unused one delivered within the day (a resume after a failure finds it)."""
    root = code_root(tmp_path, {LIVE: A})
    store = root / "store"
    used, unused, bundle, part, fresh = (hashlib.sha256(name.encode()).hexdigest()
                                         for name in ("used", "unused", "bundle", "part", "fresh"))
    files = {used: "gunicorn-23.0.0-py3-none-any.whl", unused: "packaging-26.4-py3-none-any.whl",
             bundle: f"{'b' * 40}.bundle", part: "six-1.17.0-py2.py3-none-any.whl.part",
             fresh: f"{'f' * 40}.bundle"}
    for digest, name in files.items():
        (store / digest).mkdir(parents=True)
        (store / digest / name).write_bytes(b"bytes")
    (store / "not-ours").mkdir()
    (root / "venvs" / A / VENV_WHEELS).write_text(f"{used} {files[used]}\n")
    two_days_ago = time.time() - 2 * 86400
    for name in (used, unused, bundle, part, "not-ours"):
        os.utime(store / name, (two_days_ago, two_days_ago))
    assert run_step(cleanup.delete_releases(host_at(root), [])) == "3 unused store file(s)"
    assert sorted(os.listdir(store)) == sorted([used, fresh, "not-ours"])
    assert run_step(cleanup.delete_releases(host_at(root), [])) == "nothing to remove"


@pytest.mark.parametrize("releases, output, note", [
    (0, "removed 0 0 0 packs 3 3", "nothing to remove"),
    (2, "removed 2 1 0 packs 0 0", "removed 2 release(s)"),
    (0, "removed 0 0 4 packs 9 1", "4 unused store file(s); git cache repacked (9 packs to 1)"),
    (1, "removed 1 0 0 packs 9 9", "removed 1 release(s)"),  # a repack that failed leaves them
    (1, "something else", "removed 1 release(s)"),
    (0, "removed 0 0 0 packs 2 2; removed stale git locks: packed-refs.lock", "removed stale git locks: packed-refs.lock"),
])
def test_the_note_says_what_went(releases, output, note):
    assert cleanup.cleanup_note(releases, output) == note
