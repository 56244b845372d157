"""Notifications: the payloads, masking, retries and timeouts, against real receivers on
loopback; and JSON on every exit of a task that asked for it."""
import io
import json
import os
import time

import jsonschema
import pytest
from invoke.exceptions import Exit

from fab import events, hooks, notify, runner, secrets
from fab.config import load_environment
from fab.errors import ConfigError
from fab.events import stream
from fab.outputs.summary import SCHEMA_PATH
from fab.settings.team import NOTIFY_EVENTS, Webhook
from receiver import receiving

PAYLOAD_FIELDS = {"format", "event", "environment", "task", "release", "commit", "ref", "previous_release",
                  "performer", "hosts", "message", "error", "failed_hosts", "duration", "controller", "at"}


def context(**changes):
    values = dict(environment="production", task="deploy", performer="me@laptop", hosts=("web1", "web2"),
                  release="2026-01-02_03.04.05", commit="a" * 40, ref="main",
                  previous_release="2026-01-01_00.00.00", message="ship the fix")
    return hooks.HookContext(**{**values, **changes})


@pytest.fixture
def warnings():
    """The warning lines published while the test runs."""
    seen = []

    def listen(event):
        if isinstance(event, events.Note) and event.level == "warning":
            seen.append(event.text)

    stream.subscribe(listen)
    yield seen
    stream.unsubscribe(listen)


# --- what is sent -----------------------------------------------------------------------


@pytest.mark.parametrize("task,outcome,started_sent,event", [
    ("deploy", events.SUCCEEDED, True, "succeeded"),
    ("hotfix_deploy", events.SUCCEEDED, True, "succeeded"),
    ("rollback", events.SUCCEEDED, True, "rolled_back"),
    ("deploy", events.FAILED, True, "failed"),
    ("deploy", events.FAILED, False, "failed"),  # e.g. a host unreachable before it began
    ("rollback", events.INTERRUPTED, True, "failed"),
    ("deploy", events.REFUSED, False, None),  # a held lock: nothing began, nothing to tell
    ("deploy", events.REFUSED, True, "failed"),  # every `started` gets its end
])
def test_the_event_that_tells_how_a_task_ended(task, outcome, started_sent, event):
    assert notify.event_after(task, outcome, started_sent) == event


def test_the_json_payload_has_every_documented_field():
    data = notify.payload("failed", context(error="step 'check' failed on web2 (no)", failed_hosts=("web2",)),
                          "runner-7", duration=12.3456, at=0)
    assert set(data) == PAYLOAD_FIELDS
    assert data["format"] == notify.FORMAT_VERSION == 1
    assert data["hosts"] == ["web1", "web2"] and data["failed_hosts"] == ["web2"]
    assert data["error"] == "step 'check' failed on web2 (no)" and data["duration"] == 12.346
    assert data["message"] == "ship the fix" and data["controller"] == "runner-7"
    assert data["at"] == "1970-01-01T00:00:00.000+00:00"
    empty = notify.payload("started", hooks.HookContext("production", "deploy", "me@laptop", ()), "c")
    assert empty["release"] is None and empty["error"] is None and empty["duration"] is None


@pytest.mark.parametrize("event,fragments", [
    ("started", [":arrow_forward:", "*production*", "deploy of 2026-01-02_03.04.05 (aaaaaaaaaaaa, main) started"]),
    ("succeeded", [":white_check_mark:", "succeeded in 12s"]),
    ("rolled_back", ["rolled back to 2026-01-02_03.04.05"]),
    ("failed", [":x:", "failed in 12s on web2: step 'check' failed"]),
    ("frozen", [":snowflake:", "frozen by me@laptop"]),
])
def test_slack_gets_one_line_and_the_message(event, fragments):
    data = notify.payload(event, context(error="step 'check' failed", failed_hosts=("web2",)), "c", duration=12)
    document = json.loads(notify.body("slack", data))
    assert set(document) == {"text"}
    first, quoted = document["text"].split("\n")
    for fragment in fragments:
        assert fragment in first
    assert quoted == "> ship the fix"


def test_slack_markup_in_the_text_is_escaped():
    text = json.loads(notify.body("slack", notify.payload("started", context(message="<!channel> & co"), "c")))["text"]
    assert "&lt;!channel&gt; &amp; co" in text


def test_secrets_are_masked_in_every_payload():
    secrets.register("s3cret-value-9")
    for kind in ("json", "slack"):
        sent = notify.body(kind, notify.payload("failed", context(message="token s3cret-value-9",
                                                                  error="failed with s3cret-value-9"), "c"))
        assert b"s3cret-value-9" not in sent and b"***" in sent


# --- the settings and the masked URLs ----------------------------------------------------

ENV = """
app: {repo: /srv/app.git}
code_root: ~/www/prod
roles: {webworkers: [web1]}
"""


def test_webhook_urls_are_masked_in_every_output(tmp_path):
    slack = "https://hooks.slack.com/services/T0001/B0002/xoxbTOKENtoken42"
    basic = "https://deployer:pa55word@example.org/hooks"
    query = "http://127.0.0.1:9/deploys?token=qwerty123"
    (tmp_path / "prod.yml").write_text(ENV + f"notify:\n  - {{url: '{slack}', kind: slack}}\n"
                                             f"  - {{url: '{basic}', events: [failed]}}\n  - {{url: '{query}'}}\n")
    env = load_environment("prod", str(tmp_path))
    assert [w.kind for w in env.notify] == ["slack", "json", "json"]
    assert env.notify[0].events == list(NOTIFY_EVENTS) and env.notify[0].timeout == 5 and env.notify[0].retries == 2
    shown = secrets.mask(f"to {slack}, {basic} and {query}; password pa55word")
    assert shown == "to https://***, https://deployer:***@*** and http://***; password ***"
    # A path that is a plain word is masked only with its host: the word stays readable elsewhere.
    assert secrets.mask("hooks before_swap") == "hooks before_swap"


@pytest.mark.parametrize("webhook,fragment", [
    ("{url: 'ftp://example.org/x-secret-token'}", "notify.0.url: must be an http:// or https:// URL"),
    ("{url: 'https://example.org/x', events: [deployed]}", "notify.0.events.0"),
    ("{url: 'https://example.org/x', events: []}", "notify.0.events: at least one event"),
    ("{url: 'https://example.org/x', timeout: 0}", "notify.0.timeout"),
    ("{url: 'https://example.org/x', retries: 11}", "notify.0.retries"),
    ("{url: 'https://example.org/x', kind: teams}", "notify.0.kind"),
    ("{url: 'https://me:pw@example.org/x'}", "notify.0.url: a URL's password or token is shorter than 4"),
])
def test_a_bad_webhook_is_one_line_that_never_shows_its_token(tmp_path, webhook, fragment):
    (tmp_path / "prod.yml").write_text(ENV + f"notify: [{webhook}]\n")
    with pytest.raises(ConfigError) as error:
        load_environment("prod", str(tmp_path))
    assert fragment in str(error.value)
    assert "x-secret-token" not in str(error.value)


# --- sending: retries and timeouts ------------------------------------------------------


def attempts_that(*outcomes):
    """A `send` that fails (NotDelivered) or succeeds (None) in the given order; the
    list of calls it got."""
    calls = []

    def send(url, data, timeout):
        calls.append((url, timeout))
        outcome = outcomes[len(calls) - 1]
        if outcome is not None:
            raise outcome

    return send, calls


@pytest.mark.parametrize("outcomes,retries,delivered,attempts", [
    ([None], 2, True, 1),
    ([notify.NotDelivered("HTTP 500"), None], 2, True, 2),
    ([notify.NotDelivered("HTTP 500")] * 3, 2, False, 3),
    ([notify.NotDelivered("no answer within 5s")] * 3, 2, False, 3),
    ([notify.NotDelivered("HTTP 404", retry=False)], 2, False, 1),  # no point asking again
    ([notify.NotDelivered("HTTP 500")], 0, False, 1),
])
def test_retries_are_bounded(outcomes, retries, delivered, attempts):
    send, calls = attempts_that(*outcomes)
    pauses = []
    why = notify.deliver(Webhook(url="https://example.org/x", retries=retries), b"{}", send, pauses.append)
    assert (why is None) == delivered and len(calls) == attempts
    assert all(pause <= notify.RETRY_PAUSE_MAX for pause in pauses)
    if not delivered:
        assert why.startswith(str(outcomes[-1])) and f"after {attempts} attempt" in why


def test_a_receiver_gets_the_payload_with_basic_auth_from_the_url():
    with receiving() as receiver:
        url = receiver.url.replace("http://", "http://deployer:pa55word@") + "/deploys/T0K3N"
        senders = notify.Senders([Webhook(url=url)])
        senders.post("started", notify.payload("started", context(), "c"))
        senders.close()
        (path, headers, body), = receiver.received
    assert path == "/deploys/T0K3N" and body["event"] == "started" and body["release"] == "2026-01-02_03.04.05"
    assert headers["Authorization"] == "Basic ZGVwbG95ZXI6cGE1NXdvcmQ="  # deployer:pa55word
    assert headers["Content-Type"] == "application/json"


def test_only_the_events_a_webhook_asks_for_are_sent():
    with receiving() as receiver:
        senders = notify.Senders([Webhook(url=receiver.url + "/x", events=["failed"])])
        for event in ("started", "failed"):
            senders.post(event, notify.payload(event, context(), "c"))
        senders.close()
        assert receiver.events() == ["failed"]


@pytest.mark.parametrize("status,delay,fragment", [
    (500, 0, "started: HTTP 500 (after 3 attempts)"),
    (200, 30, "still unsent after waiting 1s"),
    (404, 0, "started: HTTP 404 (after 1 attempt)"),
])
def test_a_failing_or_hanging_receiver_costs_at_most_its_timeout_and_one_warning(warnings, status, delay, fragment):
    with receiving(status, delay) as receiver, receiving() as healthy:
        for secret in notify.url_secrets(receiver.url + "/bad"):
            secrets.register(secret)
        senders = notify.Senders([Webhook(url=receiver.url + "/bad", timeout=1, retries=2),
                                  Webhook(url=healthy.url + "/good", timeout=1)])
        for event in ("started", "succeeded"):
            senders.post(event, notify.payload(event, context(), "c"))
            time.sleep(0.1)
        began = time.monotonic()
        senders.close()
        waited = time.monotonic() - began
        assert healthy.events() == ["started", "succeeded"]  # the bad one holds up no other
    assert waited < 1.5
    assert len(warnings) == 1, warnings
    assert fragment in warnings[0] and "json webhook 1 (http://***)" in warnings[0]


def test_a_refused_connection_is_a_warning():
    with receiving() as receiver:
        url = receiver.url + "/gone"
    why = notify.deliver(Webhook(url=url, retries=1), b"{}", pause=lambda _: None)
    assert why.startswith("Connection refused (after 2 attempts)")


# --- watching a task ---------------------------------------------------------------------


def test_a_watched_task_sends_started_then_failed_with_the_error_and_the_failing_hosts():
    sent = []

    def send(url, data, timeout):
        sent.append(json.loads(data))

    env = type("Env", (), {"notify": [Webhook(url="https://example.org/x")]})()
    watch = notify.TaskWatch(env, send)
    watch(events.TaskStarted("deploy", "production", {}, "me@laptop", "runner-7", ("web1", "web2")))
    watch(events.TaskContext({**vars(context()), "hosts": ["web1", "web2"]}))
    watch(events.StepFinished("web2", "check", events.FAILED, note="no"))
    watch.ended(events.FAILED, "step 'check' failed on web2 (no)", 3.5)
    watch.close()
    assert [data["event"] for data in sent] == ["started", "failed"]
    assert sent[1]["failed_hosts"] == ["web2"] and sent[1]["error"] == "step 'check' failed on web2 (no)"
    assert sent[1]["duration"] == 3.5 and sent[1]["controller"] == "runner-7" and sent[1]["message"] == "ship the fix"
    assert watch.context("boom").variables("on_failure")["DEPLOY_FAILED_HOSTS"] == "web2"


def test_only_deploys_rollbacks_and_hotfixes_are_watched():
    env = type("Env", (), {"notify": []})()
    assert notify.watch(env, "deploy", {}) and notify.watch(env, "rollback", {})
    assert notify.watch(env, "deploy", {"plan": True}) is None
    assert notify.watch(env, "releases", {}) is None and notify.watch(None, "deploy", {}) is None


def test_the_on_failure_hook_gets_the_error_and_the_failed_hosts_and_only_it():
    failed = context(error="step 'check' failed", failed_hosts=("web1", "web2"))
    assert failed.variables("on_failure")["DEPLOY_ERROR"] == "step 'check' failed"
    assert failed.variables("on_failure")["DEPLOY_FAILED_HOSTS"] == "web1,web2"
    assert "DEPLOY_ERROR" not in failed.variables("after_swap")


def test_a_failing_on_failure_hook_is_a_warning(tmp_path, warnings):
    env = type("Env", (), {"hooks": type("Hooks", (), {"commands": lambda self, point: ["exit 7"], "timeout": 5})(),
                           "folder": str(tmp_path)})()
    hooks.run_on_failure(env, context(error="boom"))
    assert warnings == ["hook on_failure (exit 7) exited 7 (the task's own error stands)"]


# --- JSON on every exit -----------------------------------------------------------------


@pytest.mark.parametrize("argv,named", [
    (["prod", "deploy:json=yes"], ("prod", "deploy", True)),
    (["prod", "deploy", "--json"], ("prod", "deploy", True)),
    (["prod", "rollback:2026-01-01_00.00.00,json"], ("prod", "rollback", True)),
    (["prod", "deploy:json=no"], ("prod", "deploy", False)),
    (["deploy"], ("", "deploy", False)),
    (["nosuch", "deploy:json=yes"], ("", "nosuch", True)),
])
def test_the_command_line_names_its_environment_task_and_json(argv, named):
    from fab import cli

    assert cli.named(argv, ["prod"]) == named


def test_an_error_before_the_task_is_its_one_json_document_when_json_was_asked(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    monkeypatch.delenv("FAB_JSON", raising=False)
    monkeypatch.setattr(runner, "command_line", runner.CommandLine("prod", "deploy", True))

    @runner.user_errors
    def select():
        raise ConfigError("prod.yml: roles: Field required")

    with pytest.raises(Exit) as exit_:
        select()
    assert exit_.value.code == 2
    document = json.loads(out.getvalue())
    with open(SCHEMA_PATH) as handle:
        jsonschema.validate(document, json.load(handle))
    assert (document["task"], document["environment"], document["outcome"], document["exit_code"]) == \
        ("deploy", "prod", "refused", 2)
    assert document["error"] == "prod.yml: roles: Field required"


def test_no_json_asked_no_document(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    monkeypatch.delenv("FAB_JSON", raising=False)
    monkeypatch.setattr(runner, "command_line", runner.CommandLine("prod", "deploy", False))
    runner.refused_in_json(ConfigError("no"))
    assert out.getvalue() == ""


# --- on the fleet ------------------------------------------------------------------------

def hook_env(env):
    """A hook that keeps what it is told in hooks-heard.txt beside the environment file."""
    heard = os.path.join(env.directory, "hooks-heard.txt")
    return f"env | grep -E '^DEPLOY_(HOOK|TASK|ERROR|FAILED_HOSTS|RELEASE)=' | sort >> {heard}; echo --- >> {heard}"


def heard(env):
    """What the hooks were told, one dict per hook run, in order."""
    path = os.path.join(env.directory, "hooks-heard.txt")
    if not os.path.exists(path):
        return []
    with open(path) as handle:
        runs = handle.read().split("---\n")
    return [dict(line.split("=", 1) for line in run.splitlines()) for run in runs if run.strip()]


def test_a_deploy_and_a_rollback_tell_the_webhooks_and_the_hooks(deploy_env):
    from conftest import assert_ok

    env = deploy_env
    with receiving() as receiver, receiving() as slack:
        env.write_config(notify=[{"url": receiver.url + "/deploys/T0K3N"},
                                 {"url": slack.url + "/services/T1/B2/xyz", "kind": "slack"}],
                         hooks={"on_failure": [hook_env(env)], "after_rollback": [hook_env(env)]})
        first = assert_ok(env.fab("deploy"))
        assert_ok(env.fab("deploy"))
        back = assert_ok(env.fab("rollback"))
        received = receiver.wait_for(6)
        slack.wait_for(6)
    assert [body["event"] for _, _, body in received] == [
        "started", "succeeded", "started", "succeeded", "started", "rolled_back"]
    started, succeeded = received[0][2], received[1][2]
    release = env.releases("web1")[0]
    for body in (started, succeeded):
        assert set(body) == PAYLOAD_FIELDS and body["format"] == 1
        assert (body["environment"], body["task"], body["release"], body["commit"], body["ref"]) == \
            (env.name, "deploy", release, env.head(), "main")
        assert body["hosts"] == ["web1", "web2", "pillow1"] and body["previous_release"] is None
        assert body["error"] is None and body["failed_hosts"] == []
        assert "@" in body["performer"] and body["controller"]
    assert started["duration"] is None and succeeded["duration"] > 0
    assert received[5][2]["release"] == release and received[5][2]["task"] == "rollback"
    assert [path for path, _, _ in received] == ["/deploys/T0K3N"] * 6
    texts = [body["text"] for _, _, body in slack.received]
    assert len(texts) == 6 and f"*{env.name}*: deploy of {release}" in texts[0] and "rolled back to" in texts[5]
    # Tokens in the URLs are never shown.
    for result in (first, back):
        assert "T0K3N" not in result.stdout + result.stderr and "notification" not in result.stdout
    assert heard(env) == [{"DEPLOY_HOOK": "after_rollback", "DEPLOY_TASK": "rollback", "DEPLOY_RELEASE": release}]


def test_a_failed_deploy_tells_the_error_and_the_hosts_and_runs_on_failure_after_the_put_back(deploy_env):
    env = deploy_env
    with receiving() as receiver:
        env.write_config(notify=[{"url": receiver.url + "/hook-path", "events": ["failed"]}],
                         checks=["case \"$(whoami)\" in *-web2) echo 'swap refused here'; exit 1;; esac"],
                         hooks={"on_failure": [hook_env(env)]})
        failed = env.fab("deploy")
        received = receiver.wait_for(1)
        assert len(received) == 1, failed.stdout + failed.stderr
        (_, _, body), = received
    assert failed.returncode == 1, failed.stderr
    assert body["event"] == "failed" and body["failed_hosts"] == ["web2"]
    assert "step 'check' failed on web2 (swap refused here)" in body["error"] and body["release"]
    told, = heard(env)
    assert told["DEPLOY_HOOK"] == "on_failure" and told["DEPLOY_FAILED_HOSTS"] == "web2"
    assert told["DEPLOY_ERROR"].startswith("step 'check' failed on web2 (swap refused here)")
    # After the put-back: the hook's line comes after "no host was changed"; the error stays the last line.
    lines = failed.stdout.splitlines()
    unchanged = next(i for i, line in enumerate(lines) if "no host was changed" in line)
    hook = next(i for i, line in enumerate(lines) if "hook on_failure" in line)
    assert unchanged < hook and failed.stderr.strip().startswith("error: step 'check' failed on web2")


def test_a_hanging_and_a_failing_receiver_neither_fail_nor_hold_up_a_deploy(deploy_env):
    import re

    from conftest import assert_ok

    env = deploy_env
    with receiving(delay=60) as hanging, receiving(status=500) as failing:
        env.write_config(notify=[{"url": hanging.url + "/slow", "timeout": 2},
                                 {"url": failing.url + "/broken", "timeout": 2}],
                         hooks={"on_failure": ["exit 9"]})
        result = assert_ok(env.fab("deploy"))
        assert failing.attempts == 6  # started and succeeded, each tried 1 + 2 times
    warnings = [line for line in result.stdout.splitlines() if "warning: notification" in line]
    assert len(warnings) == 2, result.stdout
    assert "json webhook 1 (http://***) failed" in warnings[0] and "unsent after waiting 2s" in warnings[0]
    assert "json webhook 2 (http://***) failed: started: HTTP 500 (after 3 attempts)" in warnings[1]
    # The deploy's end waited at most the timeout for them.
    seconds = [float(re.match(r"\[\s*([\d.]+)s\]", line).group(1)) for line in result.stdout.splitlines()
               if "deploy finished" in line or "warning: notification" in line]
    assert seconds[-1] - seconds[0] <= 2.5, result.stdout


def test_a_freeze_and_an_unfreeze_tell_the_webhooks_why(deploy_env):
    from conftest import assert_ok

    env = deploy_env
    with receiving() as receiver:
        env.write_config(notify=[{"url": receiver.url + "/deploys"}])
        assert_ok(env.fab("freeze:payments incident"))
        assert_ok(env.fab("unfreeze"))
        received = receiver.wait_for(2)
    assert [(body["event"], body["task"], body["message"]) for _, _, body in received] == [
        ("frozen", "freeze", "payments incident"), ("unfrozen", "unfreeze", "payments incident")]
