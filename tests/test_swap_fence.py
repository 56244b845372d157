"""fab/remote/swap.sh on a local directory: atomic swaps, fenced against a late stale one
and against a holder whose deploy lock was broken (fence.sh, unlock.sh, lock.sh)."""
import json
import os
import subprocess
import time

import pytest

from fab import shell
from fab.operations import lock
from fab.operations.current import swap_arguments
from fab.paths import Paths


def swap(root, release, task, counter, generation=None, putback=False, read=None):
    arguments = swap_arguments(Paths(str(root)), release or None, task, counter,
                               str(generation) if generation else None, putback, read)
    # The step body the deployer sends (swap.sh in the step's own shell).
    return subprocess.run(["bash", "-c", shell.step_script("swap", *map(str, arguments))],
                          capture_output=True, text=True)


def fence(root, *args):
    return subprocess.run(["bash", "-c", shell.remote_script("fence"), "fence", *lock.fence_files(Paths(str(root))),
                           *args], capture_output=True, text=True)


def hold(root):
    """A lock holder as a deployer starts one (step.sh); its generation from its answer."""
    holder = subprocess.Popen(
        ["bash", "-c", shell.step_command(shell.remote_script("lock"), lock.lock_arguments(
            Paths(str(root)), {"owner": "tester"}))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    answer = holder.stdout.readline().split()
    assert answer[0] == "acquired", answer
    return holder, answer[3]


def unlock(root):
    return subprocess.run(["bash", "-c", shell.remote_script("unlock"), "unlock", *lock.unlock_arguments(
        Paths(str(root)), "2026-12-07T04:00:00+00:00 lock broken by bob@desk:")], capture_output=True, text=True)


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


def test_the_previous_target_is_the_one_read_where_the_link_still_leads_there(tmp_path):
    """The deployer passes the target it read: where `current` still leads to that
    release, however its link is spelled, it is not read again; elsewhere it is."""
    for name in ("r1", "r2", "r3"):
        (tmp_path / "releases" / name).mkdir(parents=True)
    os.symlink(tmp_path / "releases" / "r1", tmp_path / "current")  # absolute, as an old tool wrote it
    assert swap(tmp_path, "r2", "t", 1, read="r1").stdout == "previous=releases/r1\n"
    assert swap(tmp_path, "r3", "t", 2, read="r1").stdout == "previous=releases/r2\n"  # read again
    assert os.readlink(tmp_path / "current") == "releases/r3"


def releases(root, *names):
    for name in names:
        (root / "releases" / name).mkdir(parents=True)


def test_a_holder_whose_lock_was_broken_cannot_swap_even_once(tmp_path):
    releases(tmp_path, "old", "new")
    assert swap(tmp_path, "old", "first-deploy", 1).returncode == 0
    holder, generation = hold(tmp_path)  # a deploy holds the lock, then hangs (SIGSTOP)
    broken = unlock(tmp_path)
    assert broken.returncode == 0 and broken.stdout.startswith("broken "), broken.stderr
    assert holder.wait(timeout=10) == 0
    # It said who stopped it, on its way out (its deployer reads that line).
    assert "broken " in holder.stdout.read()
    later = swap(tmp_path, "new", "hung-deploy", 1, generation)  # it wakes up
    assert later.returncode == 1 and "deploy lock of this task was broken" in later.stderr
    assert os.readlink(tmp_path / "current") == "releases/old"
    # The next holder swaps; the old one's put-back cannot undo that either.
    holder, newer = hold(tmp_path)
    try:
        assert int(newer) > int(generation)
        assert swap(tmp_path, "new", "next-deploy", 1, newer).returncode == 0
        assert swap(tmp_path, "old", "hung-deploy", 2, generation, putback=True).returncode == 1
        assert os.readlink(tmp_path / "current") == "releases/new"
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)


def test_a_broken_holder_may_only_put_back_its_own_swap(tmp_path):
    releases(tmp_path, "old", "new", "newer")
    assert swap(tmp_path, "old", "first-deploy", 1).returncode == 0
    holder, generation = hold(tmp_path)
    assert swap(tmp_path, "new", "deploy", 1, generation).returncode == 0  # its canary swapped
    assert unlock(tmp_path).returncode == 0
    holder.wait(timeout=10)
    # Going on is refused; putting its own swap back is not (nobody swapped since).
    assert swap(tmp_path, "newer", "deploy", 2, generation).returncode == 1
    back = swap(tmp_path, "old", "deploy", 3, generation, putback=True)
    assert back.returncode == 0, back.stderr
    assert os.readlink(tmp_path / "current") == "releases/old"
    # Where nothing would change, nothing is refused (a host its swap never reached).
    assert swap(tmp_path, "old", "deploy", 4, generation, putback=True).returncode == 0


def test_an_unlock_raises_the_generation_on_the_other_hosts_too(tmp_path):
    releases(tmp_path, "old", "new")
    assert fence(tmp_path, "raise", "5000").returncode == 0
    assert swap(tmp_path, "new", "deploy", 1, 4999).returncode == 1
    assert swap(tmp_path, "new", "deploy", 2, 5000).returncode == 0
    # A generation only grows; a value the host garbled counts from zero, a given one must be a number.
    assert fence(tmp_path, "raise", "12").returncode == 0
    assert (tmp_path / ".deploy.lock.generation").read_text().strip() == "5000"
    (tmp_path / ".deploy.lock.generation").write_text("$(touch pwned) 99999999999999999999999\n")
    assert swap(tmp_path, "old", "deploy", 3, 1).returncode == 0
    assert fence(tmp_path, "raise", "1;touch pwned").returncode == 1
    assert not (tmp_path / "pwned").exists()


@pytest.fixture
def forged_owner(tmp_path):
    """A held lock whose owner record the app rewrote to name another process of ours."""
    holder, _ = hold(tmp_path)
    bystander = subprocess.Popen(["sleep", "300"], start_new_session=True)
    record = json.loads((tmp_path / ".deploy.lock.owner").read_text())
    (tmp_path / ".deploy.lock.owner").write_text(json.dumps({**record, "lock_pid": bystander.pid}))
    try:
        yield bystander
    finally:
        bystander.kill()
        bystander.wait()
        holder.stdin.close()
        holder.wait(timeout=10)


def test_unlock_stops_only_a_process_that_holds_the_lock(tmp_path, forged_owner):
    refused = unlock(tmp_path)
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.strip() == (f"the lock owner record names pid {forged_owner.pid}, which does not "
                                      "hold the lock: nothing was stopped")
    assert forged_owner.poll() is None  # alive
    assert subprocess.run(["flock", "-n", str(tmp_path / ".deploy.lock"), "true"]).returncode == 1  # still held
    assert not (tmp_path / "log" / "lock-breaks.log").exists()


def test_a_check_that_changes_nothing_takes_no_flock_and_one_that_raises_does(tmp_path):
    """A swap's usual check (the host has the holder's generation) reads the file as
    it is, a process less on every host: it goes through while another process holds
    the fence's flock; a check that raises the generation waits its turn."""
    assert fence(tmp_path, "raise", "5").returncode == 0
    fence_lock = lock.fence_files(Paths(str(tmp_path)))[1]
    holder = subprocess.Popen(["flock", fence_lock, "sleep", "30"])
    try:
        time.sleep(0.3)  # it holds the flock
        same, behind = fence(tmp_path, "check", "5"), fence(tmp_path, "check", "4")
        assert (same.returncode, behind.returncode, behind.stdout) == (0, 2, "5\n")
        with pytest.raises(subprocess.TimeoutExpired):
            subprocess.run(["bash", "-c", shell.remote_script("fence"), "fence",
                            *lock.fence_files(Paths(str(tmp_path))), "check", "6"], timeout=1)
    finally:
        holder.kill()
        holder.wait()
    assert fence(tmp_path, "check", "6").returncode == 0 and fence(tmp_path, "check", "5").returncode == 2
