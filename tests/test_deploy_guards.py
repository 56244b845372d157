"""Around a deploy, on the real fleet through the real `fab` command: a deploy's
message (history, deploy_log, JSON, hooks), a freeze that stops deploys and restarts
until lifted (force=yes runs anyway, recorded; rollback runs and, with
rollback_freezes, freezes), and a deploy that waits for the lock instead of failing."""
import json
import re

import pytest

from conftest import assert_ok, assert_one_line_error
from test_deploy import live_release
from test_history import operations, remaining_lines, start_fab, wait_for_line

pytestmark = pytest.mark.fleet

SINCE = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"


def frozen_line(env, reason, task="deploy"):
    """The exact refusal a frozen environment gives `task` (who, pid, machine, since, why)."""
    return re.compile(
        rf"error: environment {env.name} is frozen by \S+@\S+ \(freeze, pid \d+ on \S+, since {SINCE}\): "
        rf"{re.escape(reason)}; `fab {env.name} unfreeze` lifts it, or `{task}:force=yes` runs anyway \(recorded\)")


def test_a_message_is_kept_in_the_history_the_log_the_json_and_the_hooks(deploy_env, tmp_path):
    env = deploy_env
    told = tmp_path / "told"
    env.write_config(hooks={"after_swap": [f'printf "%s" "$DEPLOY_MESSAGE" > {told}']})
    deployed = assert_ok(env.fab("deploy:message=fix the login page,json=yes"))
    summary = json.loads(deployed.stdout)
    assert summary["message"] == "fix the login page" and "message" not in summary["arguments"]
    assert told.read_text() == "fix the login page"
    assert_ok(env.fab("restart_services", environ={"FAB_DEPLOY_MESSAGE": "not a task with a message"}))
    assert_ok(env.fab("deploy:message=from the option", environ={"FAB_DEPLOY_MESSAGE": "from CI"}))
    assert told.read_text() == "from the option"  # the option wins
    assert_ok(env.fab("deploy", environ={"FAB_DEPLOY_MESSAGE": "CI: build 42"}))

    ci, option, restart, first = operations(env)
    assert [ci["message"], option["message"], restart["message"], first["message"]] == [
        "CI: build 42", "from the option", None, "fix the login page"]
    table = assert_ok(env.fab("history")).stdout
    assert "CI: build 42" in table and "fix the login page" in table
    log = assert_ok(env.fab(f"deploy_log:{first['id']}")).stdout.splitlines()
    assert log[1] == "message: fix the login page"
    assert any(line.endswith(f"fab {env.name} deploy by {first['performer']} on {first['controller']}: "
                             "fix the login page") for line in log), log


def test_a_freeze_stops_deploys_and_restarts_until_lifted_and_force_runs_anyway(deploy_env):
    env = deploy_env
    assert_ok(env.fab("deploy"))
    release = live_release(env)
    frozen = assert_ok(env.fab("freeze:payments incident"))
    assert f"{env.name} is frozen: payments incident" in frozen.stdout

    for task in ("deploy", "restart_services", "set_supervisor_config", "hotfix_deploy"):
        refused = env.fab(task)
        assert refused.returncode == 3, (task, refused.stderr)
        assert frozen_line(env, "payments incident", task).fullmatch(assert_one_line_error(refused)), refused.stderr
    assert live_release(env) == release and len(env.releases("web1")) == 1  # nothing was touched

    planned = json.loads(assert_ok(env.fab("deploy:plan=yes,json=yes")).stdout)["plan"]
    assert any(w.startswith(f"the deploy would be refused: environment {env.name} is frozen by ")
               for w in planned["warnings"]), planned["warnings"]
    listed = assert_ok(env.fab("releases"))
    assert re.search(rf"FROZEN: \S+ \(freeze, pid \d+ on \S+, since {SINCE}\): payments incident", listed.stdout)
    freeze = json.loads(assert_ok(env.fab("releases:json=yes")).stdout)["freeze"]
    assert freeze["reason"] == "payments incident" and freeze["by"] == operations(env)[0]["performer"]

    forced = assert_ok(env.fab("deploy:force=yes,message=hotfix for the incident"))
    warning = (f"warning: environment {env.name} is frozen by {freeze['by']} (freeze, pid {freeze['pid']} on "
               f"{freeze['machine']}, since ")
    assert warning in forced.stdout and "payments incident: deploy runs anyway (force=yes)" in forced.stdout
    assert live_release(env) != release
    newest = operations(env)[0]
    assert (newest["task"], newest["arguments"]["force"], newest["outcome"]) == ("deploy", True, "succeeded")
    assert "deploy runs anyway (force=yes)" in assert_ok(env.fab("deploy_log")).stdout

    lifted = assert_ok(env.fab("unfreeze"))
    assert f"{env.name} is unfrozen (it was frozen by {freeze['by']}" in lifted.stdout
    assert json.loads(assert_ok(env.fab("releases:json=yes")).stdout)["freeze"] is None
    assert_ok(env.fab("deploy"))
    assert f"{env.name} was not frozen" in assert_ok(env.fab("unfreeze")).stdout
    tasks = [(row["task"], row["outcome"], row["exit_code"]) for row in operations(env)]
    assert ("freeze", "succeeded", 0) in tasks and ("deploy", "refused", 3) in tasks


def test_a_rollback_runs_while_frozen_and_with_rollback_freezes_freezes_with_its_message(deploy_env):
    env = deploy_env
    env.write_config(rollback_freezes=True)
    for _ in range(3):
        assert_ok(env.fab("deploy"))
    first, second, third = sorted(env.releases("web1"))
    assert_ok(env.fab("freeze:checkout errors"))
    rolled = assert_ok(env.fab("rollback:message=bad checkout"))  # a freeze does not stop the fix
    assert live_release(env) == second
    assert f"{env.name} is frozen: rolled back: bad checkout" in rolled.stdout
    assert "(this replaces the freeze of" in rolled.stdout and "checkout errors" in rolled.stdout
    refused = env.fab("deploy")
    assert refused.returncode == 3
    assert frozen_line(env, "rolled back: bad checkout").fullmatch(assert_one_line_error(refused)), refused.stderr

    assert_ok(env.fab("unfreeze"))
    assert_ok(env.fab("rollback"))  # no message: it says which release it left
    assert live_release(env) == first
    freeze = json.loads(assert_ok(env.fab("releases:json=yes")).stdout)["freeze"]
    assert freeze["reason"] == f"rolled back: from {second} to {first}"
    assert_ok(env.fab("unfreeze"))


def test_a_deploy_waits_for_the_one_holding_the_lock_and_gives_up_at_its_deadline(deploy_env, tmp_path):
    env = deploy_env
    go = tmp_path / "go"
    # The first deploy holds the claim and the lock before its swap (a hook on this machine).
    env.write_config(hooks={"before_swap": [f"for i in $(seq 1200); do [ -e {go} ] && exit 0; sleep 0.1; done; "
                                            "exit 1"]})
    first = start_fab(env, "deploy:message=the slow one")
    waiter = None
    try:
        wait_for_line(first, "hook before_swap")
        # Another controller with a history store of its own: only the lock on the hosts refuses.
        other_store = {"FAB_HISTORY_URL": f"sqlite:///{tmp_path}/other.sqlite"}
        gave_up = env.fab("deploy:wait=2", environ=other_store)
        assert gave_up.returncode == 3
        line = assert_one_line_error(gave_up)
        assert re.fullmatch(
            rf"error: environment {env.name} is locked by \S+@\S+ \(deploy, pid {first.pid} on \S+, since {SINCE}\); "
            r"the lock frees itself .* \(waited 2s\)", line), line
        # Said once at most: on a loaded machine its first try alone may outlast 2 s.
        assert gave_up.stdout.count("waiting up to ") <= 1

        # One sharing the store: its claim refuses first, naming the holder the same way.
        waiter = start_fab(env, "deploy:wait=60")
        said = wait_for_line(waiter, "waiting up to")[-1]
        assert re.search(rf"is locked by \S+@\S+ \(deploy, pid {first.pid} on \S+, since {SINCE}\)$", said), said
        assert waiter.poll() is None
        go.touch()
        remaining_lines(first)
        lines = remaining_lines(waiter)
    finally:
        go.touch()
        for process in (first, waiter):
            if process and process.poll() is None:
                process.kill()
                process.wait()
    assert sum("waiting up to" in line for line in lines) == 1  # said once: the holder did not change
    assert any("deploy finished: release" in line for line in lines)
    waited, slow = operations(env)[:2]
    assert (waited["outcome"], slow["outcome"], slow["message"]) == ("succeeded", "succeeded", "the slow one")
    assert waited["release"] != slow["release"] and live_release(env) == waited["release"]
