"""The canary on the real fleet: gates asked from the controller (a metrics server
on loopback, in the test), a health check that keeps getting server errors, and
a deploy paused after its canary, then resumed or given up."""
import json
import os

import pytest

from conftest import assert_ok
from fab.outputs.plain import step_notes
from test_deploy import live_release
from test_gates import prometheus, served
from test_services import supervisor_pid

pytestmark = pytest.mark.fleet


def gated(env, url, rate_max=0.01, **rollout):
    """The environment with a canary (web1), one host per wave after it, and a gate on
    the error rate a Prometheus-like server at `url` reports."""
    env.write_config(rollout={
        "canary": ["web1"], "batch": 1, "canary_watch": 1, "gate_interval": 0.3,
        "gates": [{"http": url, "json_path": "data.result.0.value.1", "max": rate_max}], **rollout})


def test_a_gate_reporting_a_high_error_rate_puts_the_canary_back_and_leaves_the_others(deploy_env):
    env = deploy_env
    old_commit = env.head()
    assert_ok(env.fab("deploy"))
    before = live_release(env)
    env.commit("NEWS.txt", "gated\n", "gated change")
    asked = []
    with served(lambda: asked.append(1) or (200, prometheus(0.2))) as base:
        gated(env, f"{base}/api/v1/query")
        result = env.fab("deploy")

    assert result.returncode == 1, result.stdout + result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error == (f"error: the canary failed: gate {base}/api/v1/query answers 200, data.result.0.value.1 max "
                     "0.01: data.result.0.value.1 = 0.2, above the max 0.01; every host is back on its "
                     "previous release")
    assert asked and live_release(env) == before
    assert env.version("web1")["commit"] == old_commit
    new = max(env.releases("web1"))
    assert env.meta("web1", new)["status"] == "failed"
    swapped, restarted = step_notes(result.stdout, "swap"), step_notes(result.stdout, "restart")
    assert "web1" in swapped and "web1" in restarted
    for host in ("web2", "pillow1"):  # never swapped, never restarted
        assert host not in swapped and host not in restarted


def test_a_passing_gate_lets_the_deploy_finish_and_the_plan_shows_it(deploy_env):
    env = deploy_env
    with served(lambda: (200, prometheus(0.001))) as base:
        gated(env, f"{base}/q")
        plan = assert_ok(env.fab("deploy:plan=yes"))
        assert f"gate      {base}/q answers 200, data.result.0.value.1 max 0.01 (between waves)" in plan.stdout
        result = assert_ok(env.fab("deploy"))
    assert "watching web1 for 1s with its gates every 0.3s" in result.stdout
    assert {env.current(host) for host in env.hosts} == {live_release(env)}


def test_a_steady_server_error_fails_the_health_check_well_under_its_timeout(deploy_env):
    env = deploy_env
    assert_ok(env.fab("deploy"))
    before = live_release(env)
    env.write_config(service_settings={
        "web": {"health_check": {"path": "/health", "version_path": "/version", "timeout": 30}}})
    with env.unhealthy_app("500 Internal Server Error"):
        result = env.fab("deploy:json=yes")
    assert result.returncode == 1
    summary = json.loads(result.stdout)
    health = [step for step in summary["hosts"]["web1"]["steps"] if step["step"] == "health"][0]
    assert health["outcome"] == "failed" and "3 times in a row" in health["note"]
    assert health["seconds"] < 15, health  # the timeout is 30 s
    said = float(health["note"].rsplit("after ", 1)[1].rstrip("s"))
    assert said < 10, health["note"]
    assert "the canary failed: web1" in summary["error"] and live_release(env) == before


def test_a_paused_deploy_holds_no_lock_shows_as_paused_and_resumes_or_is_given_up(deploy_env):
    env = deploy_env
    assert_ok(env.fab("deploy"))
    old = live_release(env)
    second = env.commit("NEWS.txt", "paused once\n", "paused change")
    env.write_config(rollout={"canary": ["web1"], "batch": 1, "pause": True})

    paused = env.fab("deploy")
    assert paused.returncode == 5, paused.stdout + paused.stderr
    new = env.current("web1")
    assert new != old and env.current("web2") == old and env.current("pillow1") == old
    assert paused.stderr.strip().splitlines()[-1] == (
        f"error: deploy paused after the canary: release {new} is live on web1 only; "
        f"`fab {env.name} deploy:resume=yes` continues with the other waves, `fab {env.name} rollback` gives it up")
    assert env.version("web1")["commit"] == second
    listed = json.loads(assert_ok(env.fab("releases:json=yes")).stdout)["releases"]
    assert {listed[host]["releases"][-1]["status"] for host in env.hosts} == {"paused"}
    history = json.loads(assert_ok(env.fab("history:json=yes")).stdout)
    assert history[0]["outcome"] == "paused" and history[0]["exit_code"] == 5

    # The resume goes on with the waves not yet done: the canary, live and healthy, is
    # checked, not swapped, restarted, watched or gated again.
    planned = assert_ok(env.fab("deploy:resume=yes,plan=yes"))
    assert "canary (live already): web1 | wave 1: web2 | wave 2: pillow1" in planned.stdout
    canary = (env.version("web1")["pid"], supervisor_pid(env, "web1", f"{env.name}-web"))
    resumed = assert_ok(env.fab("deploy:resume=yes"))  # the lock was free
    assert "deploy finished" in resumed.stdout
    assert "canary (live already): web1 run the release already: checking their health, restarting nothing" \
        in resumed.stdout
    assert live_release(env) == new and env.meta("web2", new)["status"] == "good"
    assert {env.meta(host, new)["status"] for host in env.hosts} == {"good"}
    assert (env.version("web1")["pid"], supervisor_pid(env, "web1", f"{env.name}-web")) == canary
    swapped, restarted = step_notes(resumed.stdout, "swap"), step_notes(resumed.stdout, "restart")
    assert "web1" not in swapped and "web1" not in restarted and {"web2", "pillow1"} <= set(restarted)
    assert "web1" in step_notes(resumed.stdout, "health")
    for host in ("web1", "web2"):  # the app answers over HTTP, from the new release
        assert (env.version(host)["commit"], os.path.basename(env.version(host)["release"])) == (second, new)

    env.commit("NEWS.txt", "paused twice\n", "given up")
    assert env.fab("deploy").returncode == 5
    given_up = env.current("web1")
    assert_ok(env.fab("rollback"))
    assert live_release(env) == new
    for host in env.hosts:
        assert env.meta(host, given_up)["status"] == "rolled_back"


def test_a_resume_whose_paused_canary_is_down_fails_as_the_canary_and_puts_it_back(deploy_env):
    """The canary is trusted only while it stays healthy: one whose app stopped since the
    pause fails the resume's check, the canary is put back like a failed canary, no other
    host changes, and the release, failed, is resumed as a failed deploy is (from its canary)."""
    env = deploy_env
    assert_ok(env.fab("deploy"))
    old = live_release(env)
    env.commit("NEWS.txt", "paused, then down\n", "a canary that dies while paused")
    env.write_config(rollout={"canary": ["web1"], "batch": 1, "pause": True},
                     service_settings={"web": {"health_check": {"path": "/health", "version_path": "/version",
                                                                "timeout": 5}}})
    assert env.fab("deploy").returncode == 5
    new = env.current("web1")
    env.remote("web1", f"/opt/fab-sandbox-tools/bin/supervisorctl -c ~/supervisor/supervisord.conf "
                       f"stop {env.name}-web")

    failed = env.fab("deploy:resume=yes")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    error = failed.stderr.strip().splitlines()[-1]
    assert error.startswith("error: the canary failed: web1 (") and error.endswith(
        "every host is back on its previous release"), error
    assert live_release(env) == old and env.version("web1")["commit"] != env.head()
    assert "web2" not in step_notes(failed.stdout, "swap") and "pillow1" not in step_notes(failed.stdout, "restart")
    assert {env.meta(host, new)["status"] for host in env.hosts} == {"failed"}

    again = env.fab("deploy:resume=yes")  # a failed release: its canary goes live again, and pauses
    assert again.returncode == 5, again.stdout + again.stderr
    assert "web1" in step_notes(again.stdout, "swap") and "web1" in step_notes(again.stdout, "restart")
    assert env.current("web1") == new and env.version("web1")["commit"] == env.head()
