"""fab/remote/swap.sh on a local directory: atomic swaps, fenced against a late stale one."""
import os
import subprocess

from fab import shell


def swap(root, release, task, counter):
    return subprocess.run(["bash", "-c", shell.remote_script("swap"), "swap", str(root), release, task, str(counter)],
                          capture_output=True, text=True)


def test_a_stale_swap_of_the_same_task_cannot_undo_a_later_one(tmp_path):
    for name in ("old", "new"):
        (tmp_path / "releases" / name).mkdir(parents=True)
    assert swap(tmp_path, "new", "task-a", 1).returncode == 0
    assert swap(tmp_path, "old", "task-a", 3).returncode == 0  # the put-back
    late = swap(tmp_path, "new", "task-a", 2)  # the interrupted swap, landing late
    assert late.returncode == 1 and "stale" in late.stderr
    assert os.readlink(tmp_path / "current") == "releases/old"
    # Another task (a later deploy, any controller's clock) is never fenced out.
    assert swap(tmp_path, "new", "task-b", 1).returncode == 0
    assert os.readlink(tmp_path / "current") == "releases/new"


def test_missing_release_and_removal(tmp_path):
    (tmp_path / "releases" / "r1").mkdir(parents=True)
    missing = swap(tmp_path, "r2", "t", 1)
    assert missing.returncode == 1 and "release r2 does not exist" in missing.stderr
    assert swap(tmp_path, "r1", "t", 2).stdout.strip() == "previous="
    assert swap(tmp_path, "", "t", 3).stdout.strip() == "previous=releases/r1"
    assert not os.path.lexists(tmp_path / "current")
