"""The freeze (fab.freezes) and how every refusal names a holder (fab.holders): pure
decisions and formats, the record as the hosts' scripts carry it (freeze.sh, lock.sh,
state.sh run here, no SSH), and what the strict reader keeps of a hostile record."""
import base64
import datetime as dt
import json
import subprocess

import pytest

from fab import freezes, holders, shell
from fab.held_lock import HeldLock
from fab.operations import freeze as freeze_ops
from fab.operations import lock, state
from fab.paths import Paths

SINCE = dt.datetime(2026, 11, 23, 5, 59, 1, tzinfo=dt.timezone.utc)
RECORD = freezes.record("payments incident", "alice@laptop", "laptop", 4242, SINCE)


def encoded(value):
    return base64.b64encode(json.dumps(value).encode()).decode()


@pytest.mark.parametrize("owner, task, pid, machine, since, expected", [
    ("alice@laptop", "deploy", 4242, "laptop", 1795413541.0,
     "alice@laptop (deploy, pid 4242 on laptop, since 2026-11-23 05:59:01 UTC)"),
    ("bob@ci", "rollback", 7, "ci", "2026-11-23T06:59:01+01:00",
     "bob@ci (rollback, pid 7 on ci, since 2026-11-23 05:59:01 UTC)"),
    ("bob@ci", None, None, None, None, "bob@ci (?, pid ? on ?, since ?)"),
    ("", "deploy", 1, "x", 0.0, "an unknown task"),
])
def test_every_guard_names_its_holder_the_same_way(owner, task, pid, machine, since, expected):
    assert holders.describe(owner, task, pid, machine, since) == expected


def test_the_claim_and_the_host_lock_describe_one_holder_identically():
    claim = {"holder": "alice@laptop", "task": "deploy", "pid": 4242, "controller": "laptop",
             "claimed_at": SINCE.timestamp()}
    record = {"owner": "alice@laptop", "task": "deploy", "pid": 4242, "machine": "laptop",
              "since": SINCE.isoformat()}
    from fab.history import claims
    assert claims.describe(claim) == lock.describe(record) == \
        "alice@laptop (deploy, pid 4242 on laptop, since 2026-11-23 05:59:01 UTC)"


@pytest.mark.parametrize("task", sorted(freezes.STOPPED))
def test_a_freeze_stops_deploys_hotfixes_and_restarts_unless_forced(task):
    line = freezes.refusal("prod", task, RECORD, force=False)
    assert line == ("environment prod is frozen by alice@laptop (freeze, pid 4242 on laptop, since "
                    "2026-11-23 05:59:01 UTC): payments incident; `fab prod unfreeze` lifts it, or "
                    f"`{task}:force=yes` runs anyway (recorded)")
    assert freezes.refusal("prod", task, RECORD, force=True) is None
    assert freezes.refusal("prod", task, None, force=False) is None


@pytest.mark.parametrize("task", ["rollback", "clean_releases", "setup_release", "preindex_views"])
def test_a_freeze_lets_the_fix_and_what_changes_nothing_live_run(task):
    assert freezes.refusal("prod", task, RECORD, force=False) is None


def test_a_freeze_record_read_back_keeps_only_what_passes_the_strict_reader():
    assert freezes.decode(encoded(RECORD)) == RECORD
    assert freezes.decode("-") is None and freezes.decode("") is None
    assert freezes.decode("not base64!") == {}  # a file that is no record still freezes
    assert freezes.decode(encoded(["a list"])) == {}
    hostile = {**RECORD, "reason": "fine\x1b]0;owned\x07", "pid": True, "extra": "x"}
    kept = freezes.decode(encoded(hostile))
    assert kept == {"by": "alice@laptop", "machine": "laptop", "since": RECORD["since"]}
    assert freezes.describe(kept).endswith("(freeze, pid ? on laptop, since 2026-11-23 05:59:01 UTC): "
                                           "no reason given")


@pytest.mark.parametrize("message, leaving, expected", [
    ("bad migration", "r2", "rolled back: bad migration"),
    ("", "r2", "rolled back: from r2 to r1"),
    ("", None, "rolled back: from releases that differed to r1"),
])
def test_a_rollback_freezes_with_its_message(message, leaving, expected):
    assert freezes.after_rollback(message, leaving, "r1") == expected


def run_freeze_script(*args):
    return subprocess.run(["bash", "-c", shell.remote_script("freeze"), "freeze", *args],
                          capture_output=True, text=True, check=True).stdout


def test_freeze_sh_replaces_and_lifts_whole_records_saying_which(tmp_path):
    path = str(tmp_path / "root" / ".deploy.freeze")
    assert freeze_ops.parse_answer(run_freeze_script("set", path, json.dumps(RECORD))) is None
    other = {**RECORD, "reason": "release train"}
    assert freeze_ops.parse_answer(run_freeze_script("set", path, json.dumps(other))) == RECORD
    assert [p.name for p in (tmp_path / "root").iterdir()] == [".deploy.freeze"]  # no temporary left
    assert freeze_ops.parse_answer(run_freeze_script("lift", path)) == other
    assert freeze_ops.parse_answer(run_freeze_script("lift", path)) is None


def lockparse_answer(paths):
    """lock.sh's first answer, run as on a host (step.sh), then let go."""
    holder = subprocess.Popen(
        ["bash", "-c", shell.step_command(shell.remote_script("lock"), lock.lock_arguments(
            paths, {"owner": "tester"}))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        return holder.stdout.readline().split()
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)


def test_the_lock_reads_the_freeze_in_its_own_answer_and_state_sh_for_releases(tmp_path):
    paths = Paths(str(tmp_path))
    run_freeze_script("set", paths.freeze, json.dumps(RECORD))
    answer = lockparse_answer(paths)
    assert answer[0] == "acquired" and freezes.decode(answer[5]) == RECORD
    output = subprocess.run(["bash", "-c", shell.remote_script("state"), "state", *state.arguments(paths)],
                            capture_output=True, text=True, check=True).stdout
    assert state.parse(output, str(tmp_path)).freeze == RECORD
    run_freeze_script("lift", paths.freeze)
    output = subprocess.run(["bash", "-c", shell.remote_script("state"), "state", *state.arguments(paths)],
                            capture_output=True, text=True, check=True).stdout
    assert state.parse(output, str(tmp_path)).freeze is None


def test_an_unfrozen_lock_answer_carries_no_freeze(tmp_path):
    assert HeldLock(host=None, record={}).freeze is None
    answer = lockparse_answer(Paths(str(tmp_path)))
    assert answer[5] == "-" and freezes.decode(answer[5]) is None
