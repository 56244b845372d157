"""What the operator and CI see: choosing outputs, the live view, plain lines, the JSON
summary and the `releases` listing; first from events alone, then on the real fleet."""
import io
import json
import os
import re
import sys
import time

import jsonschema
import pytest
from hypothesis import given, settings, strategies as st
from rich.console import Console

from conftest import assert_ok
from fab import events as ev
from fab import releases as rel
from fab.cli import translate
from fab.errors import DeployError, FleetInconsistent, LockHeld, StepFailed, UsageError
from fab.outputs import attach
from fab.outputs.live import HostGroup, LiveView, merged_across_waves, names_within
from fab.outputs.plain import PlainLines, plain_console, step_notes
from fab.outputs.summary import SCHEMA_PATH, document
from fab.outputs.record import TaskRecord
from test_deploy import live_release

HOSTS = ("web1", "web2", "pillow1", "proxy1")
RELEASE, COMMIT = "2026-11-22_03.00.00", "c0ffee" * 6 + "abcd"
PREVIOUS = "2026-11-21_03.00.00"

with open(SCHEMA_PATH) as _handle:
    SCHEMA = json.load(_handle)


def validate(doc):
    jsonschema.Draft202012Validator(SCHEMA).validate(doc)
    return doc


def a_failed_deploy():
    """The events of a deploy whose pre-swap check fails on web2."""
    at = time.time() - 30

    def step(host, name, outcome=ev.OK, note="ok", output="", quiet=False, seconds=0.5):
        nonlocal at
        at += 0.01
        started = ev.StepStarted(host, name, at=at)
        at += seconds
        failed = outcome == ev.FAILED
        return [started, ev.StepFinished(host, name, outcome, note=note, output=output, quiet=quiet,
                                         seconds=0.0 if failed else seconds, at=at)]

    happened = [ev.TaskStarted("deploy", "prod", {"resume": False}, "me@laptop", "laptop", HOSTS, at=at)]
    happened += step("web1", "lock", note="acquired")
    for host in HOSTS:
        happened += step(host, "state", quiet=True, seconds=0.1)
    happened.append(ev.ReleasesRead({host: PREVIOUS for host in HOSTS}, at=at))
    happened.append(ev.Stage(f"deploying main at {COMMIT[:12]} as release {RELEASE}", at=at))
    happened.append(ev.ReleaseChosen(RELEASE, COMMIT, "main", previous=PREVIOUS, at=at))
    for host in HOSTS:
        happened += step(host, "release", note="created")
        happened += step(host, "virtualenv", ev.SKIPPED if host == "proxy1" else ev.OK,
                         note="skipped (no services)" if host == "proxy1" else "reused venv")
    for host in HOSTS:
        if host == "web2":
            happened += step(host, "check", ev.FAILED, note="swap not allowed yet",
                             output="checking\nstill checking\nswap not allowed yet", seconds=1.5)
        else:
            happened += step(host, "check")
    happened.append(ev.Stage("no host was changed: current is untouched", at=at))
    happened += step("web1", "unlock", note="released")
    happened.append(ev.TaskFinished(ev.FAILED, 1, "step 'check' failed on web2 (swap not allowed yet)",
                                    seconds=8.0, at=at))
    return happened


# --- choosing the outputs -------------------------------------------------------------


@pytest.mark.parametrize("environ,message", [
    ({"FAB_OUTPUT": "fancy"}, "FAB_OUTPUT must be auto, live or plain"),
    ({"FAB_COLOR": "sometimes"}, "FAB_COLOR must be auto, always or never"),
    ({"FAB_JSON": "/no/such/dir/summary.json"}, "FAB_JSON: directory /no/such/dir does not exist"),
])
def test_settings_no_one_could_mean_are_refused_before_anything_listens(environ, message):
    stream = ev.Stream()
    with pytest.raises(UsageError, match=message):
        attach(stream, environ=environ)
    assert not stream._subscribers


def test_every_reported_task_takes_json_in_both_spellings():
    import fabfile

    params = {task.name: [(p.name, p.default) for p in task.argspec(task.body).parameters.values()]
              for task in (fabfile.deploy, fabfile.releases, fabfile.rollback, fabfile.manage)}
    assert all(("json", False) in listed for listed in params.values())
    assert translate(["deploy:json=yes"], params) == ["deploy", "--json"]
    translated = translate(["rollback:2026-01-01_00.00.00,json=yes"], params)
    assert translated[0] == "rollback"
    assert sorted(translated[1:]) == ["--json", "--release=2026-01-01_00.00.00"]


def test_exit_codes_are_distinct():
    codes = [DeployError.exit_code, StepFailed.exit_code, UsageError.exit_code, LockHeld.exit_code,
             FleetInconsistent.exit_code]
    assert codes == [1, 1, 2, 3, 4]
    assert issubclass(FleetInconsistent, DeployError)


def test_json_on_stdout_sends_everything_else_to_stderr(monkeypatch):
    stdout, stderr = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", stdout)
    monkeypatch.setattr(sys, "stderr", stderr)
    stream = ev.Stream()
    with attach(stream, json_requested=True, environ={"CI": "true"}):
        for event in a_failed_deploy():
            stream.publish(event)
        print("a task's own print")
    assert sys.stdout is stdout
    assert validate(json.loads(stdout.getvalue()))["outcome"] == ev.FAILED
    assert "FAILED: swap not allowed yet" in stderr.getvalue()
    assert "a task's own print" in stderr.getvalue()
    stream.publish(ev.Stage("after the task"))  # detached: nobody writes any more
    assert "after the task" not in stdout.getvalue() + stderr.getvalue()


# --- plain lines ----------------------------------------------------------------------


def test_plain_lines_are_timestamped_and_uncoloured_unless_asked():
    text = io.StringIO()
    output = PlainLines(plain_console(text))
    for event in a_failed_deploy():
        output(event)
    lines = text.getvalue().splitlines()
    assert all(line.startswith("[") and "s] " in line[:10] for line in lines)
    assert any(line.endswith(f"== deploying main at {COMMIT[:12]} as release {RELEASE}") for line in lines)
    assert any(line.endswith("web1       virtualenv   reused venv (0.5s)") for line in lines)
    assert any(line.endswith("web2       check        | still checking") for line in lines)
    assert any(line.endswith("web2       check        FAILED: swap not allowed yet") for line in lines)
    assert not any("state" in line for line in lines)  # routine reads are left out
    assert "\x1b" not in text.getvalue()
    assert step_notes(text.getvalue(), "virtualenv")["web1"] == "reused venv"  # read back

    coloured = io.StringIO()
    output = PlainLines(plain_console(coloured, color=True))
    for event in a_failed_deploy():
        output(event)
    assert "\x1b[31m" in coloured.getvalue()  # the failure in red
    assert [line for line in coloured.getvalue().splitlines() if "\x1b" not in line]  # no redraws


def test_plain_lines_write_and_flush_only_what_they_show():
    """Most of a deploy's events (a step started, a routine read) show no line: they cost
    the controller no write and no flush (26 events per host, published one at a time)."""

    class Counted(io.StringIO):
        flushes = 0

        def flush(self):
            self.flushes += 1
            super().flush()

    text = Counted()
    output = PlainLines(plain_console(text))
    output(ev.StepStarted("web1", "code"))
    output(ev.StepFinished("web1", "state", ev.OK, note="read", quiet=True))
    assert (text.getvalue(), text.flushes) == ("", 0)
    output(ev.StepFinished("web1", "code", ev.OK, note="exported", seconds=0.4))
    assert text.getvalue().endswith("web1       code         exported (0.4s)\n") and text.flushes == 1


# --- the live view --------------------------------------------------------------------


def recorded_console():
    return Console(record=True, width=120, force_terminal=True, color_system="truecolor")


def test_live_view_shows_every_host_failures_and_the_final_table():
    console = recorded_console()
    view = LiveView(console, refresh_per_second=20)
    happened = a_failed_deploy()
    checks_started = next(i for i, e in enumerate(happened)
                          if isinstance(e, ev.StepStarted) and e.step == "check")
    for event in happened[:checks_started + 1]:
        view(event)
    # While web1's check runs: every host has a row, web1 with a spinner and its time.
    mid = Console(record=True, width=120, force_terminal=True)
    mid.print(view.table())
    drawn = mid.export_text()
    rows = {line.split()[0]: line for line in drawn.splitlines()
            if line.split() and line.split()[0] in HOSTS}
    assert set(rows) == set(HOSTS)
    assert "check" in rows["web1"] and any(frame in rows["web1"] for frame in "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏")
    assert "virtualenv" in rows["web2"] and "reused venv" in rows["web2"]
    assert f"release {RELEASE} ({COMMIT[:12]})" in drawn

    for event in happened[checks_started + 1:]:
        view(event)
    styled = console.export_text(styles=True, clear=False)
    text = console.export_text()
    assert f"deploying main at {COMMIT[:12]} as release {RELEASE}" in text  # a stage header
    assert "✗ web2  check failed: swap not allowed yet" in text
    assert "still checking" in text  # the failed step's last output lines
    final = text[text.index(f"deploy prod: failed (exit 1) in 8.0s · release {RELEASE} ({COMMIT[:12]})"):]
    assert final.split("\n")[1].split() == ["host", "current", "outcome", "seconds"]
    summary = {line.split()[0]: line.split() for line in final.splitlines()[2:] if line.strip()
               and line.split()[0] in HOSTS}
    assert set(summary) == set(HOSTS)
    # No host swapped: each is still on the release it ran before.
    assert summary["web2"][1:5] == [PREVIOUS, "failed", "at", "check"]
    assert summary["web1"][1:3] == [PREVIOUS, "ok"]
    assert "\x1b[1;31m" in styled  # failures in red
    assert view._live is None  # the live area is gone


def test_live_view_prints_no_progress_table_for_a_read_only_task():
    console = recorded_console()
    view = LiveView(console, refresh_per_second=20)
    view(ev.TaskStarted("releases", "prod", {}, "me@laptop", "laptop", HOSTS))
    for host in HOSTS:
        view(ev.StepStarted(host, "state"))
        view(ev.StepFinished(host, "state", ev.OK, quiet=True))
    listing = rel.host_listing([rel.HostRelease(RELEASE, rel.ReleaseMeta(
        RELEASE, COMMIT, "main", "me", "2026-11-22T03:00:00+00:00", rel.GOOD))], RELEASE)
    view(ev.ReleasesListed({host: listing for host in HOSTS}))
    view(ev.TaskFinished(ev.SUCCEEDED, 0, seconds=0.4))
    text = console.export_text()
    assert "outcome" not in text  # no summary table
    assert all(host in text for host in HOSTS) and "current" in text


def a_rollout(hosts, failing, batch):
    """The events of a deploy over `hosts` going live in a canary (the first host) and
    waves of `batch`: the canary and wave 1 checking their health, the health check
    failed on `failing`, the later waves waiting for theirs."""
    at = time.time() - 60
    waves = (("canary", hosts[:1]),) + tuple(
        (f"wave {n + 1}", hosts[1 + n * batch:1 + (n + 1) * batch]) for n in range((len(hosts) - 2) // batch + 1))
    happened = [ev.TaskStarted("deploy", "prod", {}, "me@laptop", "laptop", hosts, at=at),
                ev.ReleasesRead({host: PREVIOUS for host in hosts}, at=at),
                ev.ReleaseChosen(RELEASE, COMMIT, "main", previous=PREVIOUS, at=at)]
    for host in hosts:
        happened += [ev.StepStarted(host, "code", at=at + 1),
                     ev.StepFinished(host, "code", ev.OK, note="exported", seconds=1.0, at=at + 2)]
    happened.append(ev.WaveStarted("wave 1", waves, at=at + 3))
    for host in waves[0][1] + waves[1][1]:
        happened += [ev.StepStarted(host, "swap", at=at + 3), ev.ReleaseChanged(host, RELEASE, at=at + 3.1),
                     ev.StepFinished(host, "swap", ev.OK, note="current -> new", seconds=0.1, at=at + 3.1),
                     ev.StepStarted(host, "health", at=at + 4)]
    for host in failing:
        happened.append(ev.StepFinished(host, "health", ev.FAILED, note="timed out after 15s", seconds=15.0,
                                        output="503 fault", at=at + 19))
    return happened


@pytest.mark.parametrize("count, batch, height", [(5, 2, 24), (50, 5, 24), (200, 20, 30), (200, 1, 40)])
def test_live_view_fits_the_terminal_names_every_failing_host_and_counts_every_host(count, batch, height):
    hosts = tuple(f"web{n}" for n in range(1, count + 1))
    failing = (hosts[:1 + batch])[1::3]
    view = LiveView(Console(file=io.StringIO(), width=100, height=height, force_terminal=True),
                    refresh_per_second=20)
    for event in a_rollout(hosts, failing, batch):
        view(event)
    drawn = Console(file=io.StringIO(), record=True, width=100, height=height)
    drawn.print(view.table())
    view.close()
    text = drawn.export_text()
    lines = text.splitlines()
    assert len(lines) < height  # the cursor's line stays free: rich's Live crops nothing
    for host in failing:
        assert re.search(rf"\b{host}\b", text), host
    rows = [line.split() for line in lines[3:]]  # under the heading, the header and its rule
    if count + 3 < height:  # a row per host
        assert sorted(row[0] for row in rows) == sorted(hosts)
        assert all("waiting: wave 2" in line for line in lines if line.split()[0] in hosts[1 + batch:])
        return
    counted = sum(int(row[0]) for row in rows if row and row[0].isdigit())
    failed = sum(int(n) for n in re.findall(r"failed at health \((\d+)\)", text))
    assert failed == len(failing) and counted + failed == count
    assert re.search(r"^ *\d+ .*(wave 2|waves) .*waiting", text, re.M)  # the waves to come say so


@pytest.mark.parametrize("names, width, shown", [
    ([], 20, ""),
    (["web1"], 2, "web1"),  # the first name always shows
    (["web1", "web2"], 10, "web1, web2"),
    (["web1", "web2", "web3"], 12, "web1, … +2"),
    ([f"web{n}" for n in range(1, 201)], 40, "web1, web2, web3, web4, web5, … +195"),
])
def test_names_within_a_width_say_how_many_more(names, width, shown):
    assert names_within(names, width) == shown


@settings(max_examples=200, deadline=None)
@given(st.lists(st.from_regex(r"[a-z]{1,8}[0-9]{0,3}", fullmatch=True), unique=True, max_size=60),
       st.integers(min_value=12, max_value=120))
def test_names_within_fit_and_account_for_every_name(names, width):
    text = names_within(names, width)
    shown, _, more = text.partition(", … +")
    assert len(text) <= width or len(shown.split(", ")) == 1
    assert len(shown.split(", ")) + int(more or 0) == len(names) or not names


def test_groups_across_waves_keep_every_host_and_count_the_waves():
    groups = [HostGroup("wave 2", "waiting", None, ["a", "b"]), HostGroup("wave 3", "waiting", None, ["c"]),
              HostGroup("wave 1", "running", "health", ["d"], 3.0),
              HostGroup("wave 4", "running", "health", ["e"], 5.0)]
    merged = merged_across_waves(groups)
    assert [(g.wave, g.state, g.hosts, g.seconds) for g in merged] == [
        ("2 waves", "waiting", ["a", "b", "c"], None), ("2 waves", "running", ["d", "e"], 5.0)]


def test_a_host_put_back_is_shown_so_with_the_release_each_host_ended_on():
    hosts = ("web1", "web2", "web3")
    happened = a_rollout(hosts, ["web1"], 1)[:-1]
    happened += [ev.StepFinished("web1", "health", ev.FAILED, note="503", seconds=15.0),
                 ev.StepStarted("web1", "swap"), ev.ReleaseChanged("web1", PREVIOUS),
                 ev.StepFinished("web1", "swap", ev.OK, note=f"current -> {PREVIOUS}", seconds=0.1),
                 ev.PutBack({"web1": PREVIOUS}),
                 ev.TaskFinished(ev.FAILED, 4, "1 host(s) failed, within the failure limit", seconds=30.0)]
    record = None
    for event in happened:
        record = TaskRecord(event) if isinstance(event, ev.TaskStarted) else record
        record.apply(event)
    doc = validate(document(record))
    assert {host: (doc["hosts"][host]["release"], doc["hosts"][host]["outcome"]) for host in hosts} == {
        "web1": (PREVIOUS, "put back"), "web2": (RELEASE, "ok"), "web3": (PREVIOUS, "ok")}
    assert [s["outcome"] for s in doc["hosts"]["web1"]["steps"] if s["step"] == "health"] == ["failed"]

    console = recorded_console()
    view = LiveView(console, refresh_per_second=20)
    for event in happened:
        view(event)
    text = console.export_text()
    assert f"↩ put back on {PREVIOUS}: web1" in text
    summary = {line.split()[0]: line.split()[1:] for line in text.splitlines() if line.split()
               and line.split()[0] in hosts}
    assert summary["web1"][:5] == [PREVIOUS, "put", "back", "(failed", "at"]
    assert summary["web2"][:2] == [RELEASE, "ok"] and summary["web3"][:2] == [PREVIOUS, "ok"]

    assert PlainLines.lines(ev.PutBack({"web1": PREVIOUS})) == [f"web1                    put back on {PREVIOUS}"]
    from fab.history.recording import lines_for

    ending = lines_for(happened[-1], record)
    assert ending[1:4] == [f"web1       ended on     {PREVIOUS}: put back (failed at health)",
                           f"web2       ended on     {RELEASE}: ok", f"web3       ended on     {PREVIOUS}: ok"]


def test_a_swap_cut_short_leaves_the_hosts_release_unknown():
    record = TaskRecord(ev.TaskStarted("deploy", "prod", {}, "me", "laptop", ("web1",)))
    for event in (ev.ReleasesRead({"web1": PREVIOUS}), ev.StepStarted("web1", "swap"),
                  ev.StepFinished("web1", "swap", ev.FAILED, note="stopped")):
        record.apply(event)
    assert document(record)["hosts"]["web1"]["release"] is None
    assert record.hosts["web1"].outcome == ev.FAILED


# --- the JSON summary -----------------------------------------------------------------


def test_json_summary_of_a_failed_deploy():
    record = None
    for event in a_failed_deploy():
        record = TaskRecord(event) if isinstance(event, ev.TaskStarted) else record
        record.apply(event)
    doc = validate(document(record))
    assert (doc["task"], doc["environment"], doc["outcome"], doc["exit_code"]) == ("deploy", "prod", "failed", 1)
    assert (doc["release"], doc["commit"], doc["ref"]) == (RELEASE, COMMIT, "main")
    assert "web2" in doc["error"]
    assert list(doc["hosts"]) == list(HOSTS)
    web2 = doc["hosts"]["web2"]
    check = [s for s in web2["steps"] if s["step"] == "check"][0]
    assert (web2["outcome"], check["outcome"], check["note"]) == ("failed", "failed", "swap not allowed yet")
    assert check["seconds"] == pytest.approx(1.5)  # measured from its start
    assert check["output"].endswith("swap not allowed yet")
    assert doc["hosts"]["web1"]["outcome"] == "ok"
    assert [s["step"] for s in doc["hosts"]["pillow1"]["steps"]] == ["state", "release", "virtualenv", "check"]


def test_json_summary_says_per_host_the_bytes_received_and_from_where():
    started = ev.TaskStarted("deploy", "prod", {}, "ci@runner", "runner", hosts=HOSTS)
    record = TaskRecord(started)
    for event in (started, ev.ArtifactsReceived("web1", {"controller": 1200}),
                  ev.StepFinished("web1", "transfer", ev.OK, note="received 1.2 KB from controller"),
                  ev.ArtifactsReceived("web2", {"web1": 1000}), ev.ArtifactsReceived("web2", {"controller": 200}),
                  ev.ArtifactsReceived("web2", {"web1": 50}), ev.TaskFinished(ev.SUCCEEDED, 0)):
        record.apply(event)
    hosts = validate(document(record))["hosts"]
    assert hosts["web1"]["received"] == {"bytes": 1200, "from": {"controller": 1200}}
    assert hosts["web2"]["received"] == {"bytes": 1250, "from": {"controller": 200, "web1": 1050}}
    assert hosts["pillow1"]["received"] == {"bytes": 0, "from": {}}
    assert PlainLines.lines(ev.ArtifactsReceived("web1", {"controller": 1})) == []  # the step's note says it


# --- on the real fleet ----------------------------------------------------------------


def steps_of(doc, host, outcome=None):
    return [s["step"] for s in doc["hosts"][host]["steps"] if outcome in (None, s["outcome"])]


def test_deploy_plain_lines_and_json_summary_match_the_hosts(deploy_env, tmp_path):
    env = deploy_env
    commit = env.head()
    summary_path = str(tmp_path / "summary.json")
    result = assert_ok(env.fab("deploy", environ={"FAB_JSON": summary_path}))

    # People (here: CI) get plain timestamped lines on stdout, nothing redrawn, no colour.
    lines = result.stdout.splitlines()
    assert lines and all(line.startswith("[") for line in lines)
    assert any(f"== deploying main at {commit[:12]} as release" in line for line in lines)
    assert any(line.split("] ", 1)[1].startswith("web1       swap") for line in lines)
    assert "\x1b" not in result.stdout + result.stderr and "\r" not in result.stdout

    with open(summary_path) as handle:
        doc = validate(json.load(handle))
    release = live_release(env)
    assert (doc["task"], doc["environment"], doc["outcome"], doc["exit_code"], doc["error"]) == (
        "deploy", env.name, "succeeded", 0, None)
    assert (doc["release"], doc["commit"], doc["ref"], doc["previous_release"]) == (release, commit, "main", None)
    assert set(doc["hosts"]) == set(env.hosts)
    for host in env.hosts:
        assert doc["hosts"][host]["outcome"] == "ok"
        assert {"release", "code", "swap", "mark"} <= set(steps_of(doc, host, "ok"))
        assert os.path.isdir(os.path.join(env.code_root(host), "releases", release))
        assert env.current(host) == release
        assert env.meta(host, release)["commit"] == commit
    assert doc["started_at"] < doc["finished_at"]

    # A pre-swap check fails on web2 only; the summary is the only thing on stdout.
    env.write_config(checks=["test ! -e ~/refuse-swap || { echo 'swap refused here' >&2; exit 1; }"])
    env.remote("web2", "touch ~/refuse-swap")
    failed = env.fab("deploy:json=yes")
    env.remote("web2", "rm -f ~/refuse-swap")
    assert failed.returncode == 1, failed.stderr
    doc = validate(json.loads(failed.stdout))
    assert (doc["outcome"], doc["exit_code"]) == ("failed", failed.returncode)
    assert "step 'check' failed on web2" in doc["error"]
    assert failed.stderr.strip().splitlines()[-1] == f"error: {doc['error']}"
    assert "web2       check        FAILED: swap refused here" in failed.stderr  # plain lines moved to stderr
    assert doc["previous_release"] == release
    new = doc["release"]
    check = next(s for s in doc["hosts"]["web2"]["steps"] if s["step"] == "check")
    assert (doc["hosts"]["web2"]["outcome"], check["outcome"]) == ("failed", "failed")
    assert "swap refused here" in check["output"]
    for host in env.hosts:
        assert "swap" not in steps_of(doc, host)  # and indeed no host swapped:
        assert env.current(host) == release
        if "release" in steps_of(doc, host, "ok"):
            assert os.path.isdir(os.path.join(env.code_root(host), "releases", new))
        assert env.meta(host, new)["status"] == "failed"
    assert steps_of(doc, "web1", "ok").count("check") == 1


def test_releases_in_plain_and_json_with_markers_and_drift(deploy_env):
    env = deploy_env
    assert_ok(env.fab("deploy"))
    first = live_release(env)
    env.commit("NEWS.txt", "second\n", "second")
    assert_ok(env.fab("deploy"))
    second = live_release(env)

    plain = assert_ok(env.fab("releases"))
    # Every host has the same releases: one table, named after all of them.
    assert set(plain.stdout.splitlines()[0].split(", ")) == set(env.hosts)
    rows = [line.split() for line in plain.stdout.splitlines()]
    assert ["*", second, "good", env.meta("web1", second)["commit"][:12]] == rows[3][:4]  # oldest first
    assert any(r[:3] == ["*", second, "good"] and r[-1] == "current" for r in rows)
    assert any(r[:2] == [first, "good"] and r[-2:] == ["rollback", "target"] for r in rows)
    assert "DRIFT" not in plain.stdout and "\x1b" not in plain.stdout

    as_json = assert_ok(env.fab("releases:json=yes"))
    doc = validate(json.loads(as_json.stdout))
    assert (doc["task"], doc["outcome"], doc["drift"]) == ("releases", "succeeded", None)
    for host in env.hosts:
        listing = doc["releases"][host]
        assert (listing["current"], listing["rollback_target"]) == (env.current(host), first)
        assert [r["name"] for r in listing["releases"]] == env.releases(host)
        assert [r["status"] for r in listing["releases"]] == ["good", "good"]

    # web2 alone goes back: the hosts disagree, and both outputs say so.
    env.remote("web2", f"ln -sfn releases/{first} ~/{env.code_root_rel}/current")
    drifted = assert_ok(env.fab("releases"))
    assert "DRIFT: hosts disagree on current: " in drifted.stdout
    assert f"web2 has {first}" in drifted.stdout and "current (drift)" in drifted.stdout
    doc = validate(json.loads(assert_ok(env.fab("releases:json=yes")).stdout))
    assert f"have {second}" in doc["drift"] and doc["releases"]["web2"]["current"] == first


# --- a closed terminal or pipe ----------------------------------------------------------


@pytest.mark.parametrize("closed", ["pipe", "pty"])
def test_writing_to_a_closed_terminal_or_pipe_never_raises(closed):
    import pty

    from fab.outputs.streams import SurvivingStream

    if closed == "pipe":
        reader, writer = os.pipe()
    else:
        reader, writer = pty.openpty()  # the terminal's side, and the program's
    raw = open(writer, "w", buffering=1)
    stream = SurvivingStream(raw)
    stream.write("before the terminal went\n")
    os.close(reader)  # EPIPE on the pipe, EIO on the pty from now on
    for _ in range(3):
        assert stream.write("x" * 70000 + "\n") == 70001
        stream.flush()
    raw.write("and the stream itself writes on, into /dev/null\n")
    raw.flush()
    raw.close()
    with pytest.raises(ValueError):  # any other error is still raised
        stream.write("closed")


def test_the_summary_carries_the_message_and_releases_the_freeze():
    record = TaskRecord(ev.TaskStarted("deploy", "prod", {}, "me@laptop", "laptop", HOSTS, message="fix login"))
    record.apply(ev.TaskFinished(ev.SUCCEEDED, 0, seconds=1.0))
    doc = validate(document(record))
    assert doc["message"] == "fix login" and "message" not in doc["arguments"]
    record = TaskRecord(ev.TaskStarted("deploy", "prod", {}, "me@laptop", "laptop", HOSTS))
    assert validate(document(record))["message"] is None

    freeze = {"by": "alice@laptop", "machine": "laptop", "pid": 42, "since": "2026-11-23T05:59:01+00:00",
              "reason": "incident"}
    for frozen in (freeze, None):
        record = TaskRecord(ev.TaskStarted("releases", "prod", {}, "me@laptop", "laptop", HOSTS))
        listed = ev.ReleasesListed({}, freeze=frozen)
        record.apply(listed)
        assert validate(document(record))["freeze"] == frozen
        console = plain_console(io.StringIO())
        PlainLines(console)(listed)
        shown = console.file.getvalue()
        assert ("FROZEN: alice@laptop (freeze, pid 42 on laptop, since 2026-11-23 05:59:01 UTC): incident"
                in shown) == (frozen is not None)


def test_hosts_with_identical_releases_share_one_table():
    def listing(*names):
        return rel.host_listing([rel.HostRelease(name, rel.ReleaseMeta(
            name, COMMIT, "main", "me", "2026-11-22T03:00:00+00:00", rel.GOOD)) for name in names], names[-1])

    same, other = listing(PREVIOUS, RELEASE), listing(RELEASE)
    console = plain_console(io.StringIO())
    PlainLines(console)(ev.ReleasesListed({"web1": same, "web2": same, "pillow1": other, "proxy1": same}))
    text = console.file.getvalue()
    lines = text.splitlines()
    assert "web1, web2, proxy1" in lines and "pillow1" in lines
    assert text.count(f"* {RELEASE}") == 2  # two tables, not four


@pytest.mark.parametrize("text", ["a\tb\tc", "x" * 300, "wide 漢字 é", "trail   ", "[bold]x[/]",
                                  "a\x07b\x08c\rd\x0be\x0cf", "\x00nul"])
def test_plain_lines_without_colour_are_what_rich_would_write(text):
    written = io.StringIO()
    PlainLines(plain_console(written, color=False))(ev.Stage(text))
    stamp = written.getvalue().split("] ", 1)[0] + "] "
    by_rich = io.StringIO()
    plain_console(by_rich, color=False).print(f"{stamp}== {text}", style="bold")
    assert written.getvalue() == by_rich.getvalue()
