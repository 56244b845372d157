"""The warning when `fab` runs in a clone whose branch has commits the deploy leaves
out (never pushed): on real git repositories, here on this machine."""
import subprocess

import pytest

from fab.local_clone import unpushed_commits, unpushed_warning


def git(directory, *args):
    return subprocess.run(["git", "-C", str(directory), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                          capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def clone(tmp_path):
    """(a bare 'remote', a clone of it with one pushed commit on main)."""
    remote, work = tmp_path / "remote.git", tmp_path / "work"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    git(tmp_path, "clone", "-q", str(remote), str(work))
    git(work, "checkout", "-q", "-b", "main")
    git(work, "commit", "-q", "--allow-empty", "-m", "pushed")
    git(work, "push", "-q", "origin", "main")
    (work / "src").mkdir()
    return remote, work


def test_a_pushed_branch_says_nothing(clone):
    remote, work = clone
    deployed = git(remote, "rev-parse", "main")
    assert unpushed_commits(str(work), "main", deployed) == 0
    assert unpushed_warning(str(work), "main", deployed) is None


def test_local_commits_the_deploy_leaves_out_are_one_line(clone):
    remote, work = clone
    git(work, "commit", "-q", "--allow-empty", "-m", "not pushed 1")
    git(work, "commit", "-q", "--allow-empty", "-m", "not pushed 2")
    deployed = git(remote, "rev-parse", "main")
    for where in (work, work / "src"):  # from a subdirectory too
        line = unpushed_warning(str(where), "main", deployed)
        assert line.startswith("2 commits on main in this clone") and "git push first" in line and "\n" not in line
    git(work, "push", "-q", "origin", "main")
    assert unpushed_warning(str(work), "main", git(remote, "rev-parse", "main")) is None


@pytest.mark.parametrize("case", ["not a clone", "another branch", "deployed commit unknown here"])
def test_what_it_cannot_tell_says_nothing(clone, tmp_path, case):
    remote, work = clone
    git(work, "commit", "-q", "--allow-empty", "-m", "not pushed")
    deployed = git(remote, "rev-parse", "main")
    directory, branch = {"not a clone": (tmp_path, "main"), "another branch": (work, "release"),
                         "deployed commit unknown here": (work, "main")}[case]
    if case == "deployed commit unknown here":
        deployed = "f" * 40
    assert unpushed_commits(str(directory), branch, deployed) is None
    assert unpushed_warning(str(directory), branch, deployed) is None
