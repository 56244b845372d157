"""fab/remote/lock.sh run here, through step.sh as on a host (bash and flock, no SSH):
what it answers, and that letting go is recorded so the next holder knows when."""
import json
import subprocess
import time

import pytest

from fab import shell
from fab.held_lock import released_ago
from fab.held_lock import STATE_LEEWAY, may_predate_release
from fab.operations import lock, state
from fab.paths import Paths


def hold(root, read_state=False):
    """Start a holder as the deployer does (step.sh, our pipe as its stdin); return it
    and its first answer line."""
    paths = Paths(str(root))
    holder = subprocess.Popen(
        ["bash", "-c", shell.step_command(shell.remote_script("lock"), lock.lock_arguments(
            paths, {"owner": "tester"}, state.arguments(paths) if read_state else ()))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return holder, holder.stdout.readline().split()


def let_go(holder):
    holder.stdin.close()  # as the deployer's connection closing
    assert holder.wait(timeout=10) == 0


def test_the_answer_says_when_the_last_holder_let_go(tmp_path):
    first, answer = hold(tmp_path)
    try:
        assert answer[:2] == ["acquired", "fresh"]
        assert released_ago(*answer[1:3]) is None
        second, refused = hold(tmp_path)
        assert refused[0] == "held" and second.wait(timeout=10) == 3
    finally:
        let_go(first)
    time.sleep(0.2)
    again, answer = hold(tmp_path)
    try:
        assert answer[0] == "acquired"
        ago = released_ago(*answer[1:3])
        assert 0.2 <= ago < 10
        # Emptied while held (the holder writes it when it lets go): a holder killed
        # outright leaves it empty, read as "-" (the next test).
        assert (tmp_path / ".deploy.lock.released").read_text() == ""
    finally:
        let_go(again)


def test_a_holder_stopped_without_a_trace_reads_as_just_now(tmp_path):
    holder, _ = hold(tmp_path)
    owner = json.loads((tmp_path / ".deploy.lock.owner").read_text())
    subprocess.run(["kill", "-KILL", "--", f"-{owner['lock_pid']}"], check=True)
    holder.wait(timeout=10)
    again, answer = hold(tmp_path)
    try:
        assert answer[:2] == ["acquired", "-"]
        assert released_ago(*answer[1:3]) == 0.0
    finally:
        let_go(again)


def test_the_lock_host_state_comes_in_the_same_answer(tmp_path):
    (tmp_path / "releases" / "2026-01-01_00.00.00").mkdir(parents=True)
    holder, answer = hold(tmp_path, read_state=True)
    try:
        assert answer[0] == "acquired"
        lines = []
        for line in holder.stdout:
            if line.strip() == "@@state-end":
                break
            lines.append(line.strip())
        assert "release 2026-01-01_00.00.00" in lines
    finally:
        let_go(holder)
    assert (tmp_path / ".deploy.lock.released").exists()


@pytest.mark.parametrize("ago, reading_for, predates", [
    (None, 0.3, False),  # nobody ever held the lock
    (0.0, 0.3, True),  # the last holder did not let go cleanly
    (0.5, 0.3, True),  # it let go while we were reading
    (0.3 + STATE_LEEWAY - 0.01, 0.3, True),
    (30.0, 0.3, False),  # long before
])
def test_state_read_while_locking_is_read_again_unless_the_last_holder_let_go_before(ago, reading_for, predates):
    assert may_predate_release(ago, reading_for) == predates
