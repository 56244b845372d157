"""`plan=yes`: first the pure decisions, the facts script and the rendering without SSH;
then on the real fleet, that a plan changes nothing anywhere and that what it predicts
(venv reuse, cleanup, waves) is what the following deploy does."""
import base64
import dataclasses
import hashlib
import io
import json
import os
import re
import shlex
import subprocess

import jsonschema
import pytest
from rich.console import Console

from conftest import assert_ok
from fab import events as ev
from fab import plan as plans
from fab import sandbox, shell, waves
from fab.app_repo import RepoUnreadable, opened
from fab.operations import lock, plan_facts, supervisor, virtualenv
from fab.operations.plan_facts import HostFacts
from fab.outputs.live import LiveView
from fab.outputs.plain import PlainLines, plain_console
from fab.outputs.record import TaskRecord
from fab.outputs.summary import SCHEMA_PATH, document
from fab.paths import Paths
from fab.snapshot import FleetSnapshot, Target
from fab.waves import Wave
from test_deploy import live_release
from test_stages import KEY, OTHER_KEY, NEW, OLD, FakeHost
from test_stages import meta as release_meta
from test_stages import state as host_state

PY = b"3.11.2 (main, Mar 13 2023, 12:18:29) [GCC 12.2.0]\n"
PIP = ["--no-index", "--find-links", "/opt/wheels"]
REQS = {"requirements.txt": b"gunicorn==23.0.0\n"}

with open(SCHEMA_PATH) as _handle:
    SCHEMA = json.load(_handle)


def name(day):
    return f"2026-11-{day:02d}_00.00.00"


def key(contents, pip=PIP, python=PY):
    return virtualenv.venv_key(list(contents.values()), pip, python)


# --- deciding the virtualenv ---------------------------------------------------------


def facts(**overrides):
    live = {"python_version": PY, "venvs": frozenset({key(REQS)}), "current_venv": key(REQS),
            "current_requirements": dict(REQS)}
    return HostFacts(**{**live, **overrides})


def test_unchanged_requirements_reuse_the_live_venv():
    decided = plans.virtualenv_plan(["requirements.txt"], dict(REQS), PIP, facts(), name(1))
    assert (decided.action, decided.key, decided.changed) == ("reused", key(REQS), ())
    assert "requirements unchanged" in decided.reason


def test_a_host_that_runs_no_app_code_gets_no_venv_whatever_its_facts():
    decided = plans.virtualenv_plan(["requirements.txt"], None, PIP, facts(), name(1), runs_app=False)
    assert (decided.action, decided.key) == ("none", None)
    assert decided.reason.startswith("no venv and no build commands")


def test_a_changed_requirements_file_builds_and_is_named():
    new = {"requirements.txt": b"gunicorn==23.0.0\nrequests\n"}
    decided = plans.virtualenv_plan(["requirements.txt"], new, PIP, facts(), name(1))
    assert (decided.action, decided.key, decided.changed) == ("built", key(new), ("requirements.txt",))
    assert decided.reason == "requirements.txt changed since the live release"


def test_requirements_going_back_reuse_an_earlier_venv():
    old = {"requirements.txt": b"old\n"}
    live = facts(venvs=frozenset({key(REQS), key(old)}), current_requirements={"requirements.txt": b"newer\n"},
                 current_venv="0" * 16)
    decided = plans.virtualenv_plan(["requirements.txt"], old, PIP, live, name(1))
    assert (decided.action, decided.key) == ("reused", key(old))
    assert decided.reason == f"requirements.txt changed, but venv {key(old)} from an earlier release matches"


def test_a_new_requirements_file_in_the_list_counts_as_changed():
    new = {**REQS, "extra.txt": b"x\n"}
    decided = plans.virtualenv_plan(list(new), new, PIP, facts(), name(1))
    assert (decided.action, decided.changed) == ("built", ("extra.txt",))


def test_other_pip_args_or_python_build_though_no_file_changed():
    decided = plans.virtualenv_plan(["requirements.txt"], dict(REQS), ["--pre"], facts(), name(1))
    assert decided.action == "built"
    assert decided.reason == "the requirements list, pip_args or the python version changed"
    other_python = plans.virtualenv_plan(["requirements.txt"], dict(REQS), PIP,
                                         facts(python_version=b"3.12.0\n"), name(1))
    assert other_python.action == "built" and "python version" in other_python.reason


def test_a_removed_venv_is_built_again():
    decided = plans.virtualenv_plan(["requirements.txt"], dict(REQS), PIP, facts(venvs=frozenset()), name(1))
    assert (decided.action, decided.reason) == ("built", f"no complete venv {key(REQS)} on the host")


def test_first_release_on_a_host():
    bare = HostFacts(python_version=PY)
    assert plans.virtualenv_plan(["requirements.txt"], dict(REQS), PIP, bare, None).reason == \
        "no release on this host yet, and no venv matches"
    warm = HostFacts(python_version=PY, venvs=frozenset({key(REQS)}))
    assert plans.virtualenv_plan(["requirements.txt"], dict(REQS), PIP, warm, None).action == "reused"


@pytest.mark.parametrize("arguments,action,reason", [
    (dict(done=True), "skipped", "already done in this release (resume skips it)"),
    (dict(new={"requirements.txt": None}), "fails", "requirements file requirements.txt is not in the release"),
    (dict(new=None, unreadable="cannot read the repository: git fetch: no such repo"), "unknown",
     "cannot read the repository: git fetch: no such repo"),
    (dict(host=HostFacts(python_error="python3: command not found")), "unknown",
     "the host's python does not run: python3: command not found"),
])
def test_what_the_plan_cannot_promise(arguments, action, reason):
    decided = plans.virtualenv_plan(
        ["requirements.txt"], arguments.get("new", dict(REQS)), PIP, arguments.get("host", facts()), name(1),
        done=arguments.get("done", False), unreadable=arguments.get("unreadable"))
    assert (decided.action, decided.key, decided.reason) == (action, None, reason)


# --- service configs ------------------------------------------------------------------


def test_config_changes_with_a_shortened_diff():
    live = {"supervisor/p-web.conf": "[program:p-web]\ncommand=gunicorn --workers 1\n",
            "supervisor/p-old.conf": "x\n", "port/p-proxy.conf": "same\n"}
    new = {"supervisor/p-web.conf": "[program:p-web]\ncommand=gunicorn --workers 2\n",
           "supervisor/p-new.conf": "y\n", "port/p-proxy.conf": "same\n"}
    changes = {c.file: c for c in plans.config_changes(live, new, name(1))}
    assert {f: c.change for f, c in changes.items()} == {
        "supervisor/p-web.conf": "changed", "supervisor/p-old.conf": "removed",
        "supervisor/p-new.conf": "added", "port/p-proxy.conf": "unchanged"}
    assert changes["supervisor/p-web.conf"].diff == (
        f"--- {name(1)}/services/supervisor/p-web.conf", "+++ new/services/supervisor/p-web.conf",
        "@@ -1,2 +1,2 @@", " [program:p-web]", "-command=gunicorn --workers 1", "+command=gunicorn --workers 2")

    long_live = {"c.conf": "".join(f"{i}\n" for i in range(100))}
    long_new = {"c.conf": "".join(f"{i}!\n" for i in range(100))}
    (shortened,) = plans.config_changes(long_live, long_new, name(1), limit=10)
    assert len(shortened.diff) == 10 and shortened.more == 203 - 10


def test_with_no_live_release_every_config_is_added():
    assert [c.change for c in plans.config_changes({}, {"supervisor/a.conf": "x"}, None)] == ["added"]


# --- cleanup, commits, the whole plan -----------------------------------------------------


# --- reload or restart, per program ------------------------------------------------------


def programs_of(env):
    return env.topology.program_name("web"), env.topology.program_name("worker")


def a_host(env, current=OLD, releases=(OLD,), venvs=None, configs_of=(OLD,)):
    """A host of `env` running `current`; its state holds the digests of the configs
    rendered for each release of `configs_of`, as fab/remote/state.sh reads them."""
    bare = FakeHost("web1", env, host_state(current, [release_meta(r) for r in releases], venvs or {OLD: KEY}))
    configs = {r: supervisor.digests(supervisor.configs_by_program(bare, r)) for r in configs_of}
    return FakeHost("web1", env, dataclasses.replace(bare.state, configs=configs))


def deploy_moves(host, venv, done=()):
    """The plan's programs of a deploy of NEW on `host` whose venv step is `venv`."""
    built = plans.predicted_build(host, NEW, venv, services_done="services" in done)
    return plans.program_moves(host, FleetSnapshot.of({"web1": host.state}), Target(NEW), built)


@pytest.mark.parametrize("venv,web", [
    (plans.VirtualenvPlan("reused", KEY), "reload"),  # venv and config unchanged
    (plans.VirtualenvPlan("built", OTHER_KEY), "restart"),  # another venv
    (plans.VirtualenvPlan("reused", OTHER_KEY), "restart"),  # an earlier release's, not the live one
    (plans.VirtualenvPlan("unknown", reason="cannot read the repository"), "restart"),
    (plans.VirtualenvPlan("fails", reason="requirements file x is not in the release"), "restart"),
])
def test_a_deploy_plan_reloads_a_reload_service_only_when_its_venv_is_known_unchanged(env, venv, web):
    web_program, worker_program = programs_of(env)
    # worker's config names its release, so a new release always restarts it.
    assert deploy_moves(a_host(env), venv) == {web_program: web, worker_program: "restart"}


def test_a_deploy_plan_restarts_a_reload_service_whose_config_changed(env):
    host = a_host(env)
    web_program, worker_program = programs_of(env)
    changed = {OLD: {**host.state.configs[OLD], web_program: "0" * 16}}
    host = FakeHost("web1", env, dataclasses.replace(host.state, configs=changed))
    assert deploy_moves(host, plans.VirtualenvPlan("reused", KEY)) == {web_program: "restart",
                                                                       worker_program: "restart"}


def test_a_resumed_deploy_plan_decides_with_what_the_host_has_of_the_release(env):
    web_program, worker_program = programs_of(env)
    skipped = plans.VirtualenvPlan("skipped", reason="already done in this release (resume skips it)")
    resumed = a_host(env, releases=(OLD, NEW), venvs={OLD: KEY, NEW: KEY}, configs_of=(OLD, NEW))
    assert deploy_moves(resumed, skipped, done=("virtualenv", "services")) == {
        web_program: "reload", worker_program: "restart"}
    other = a_host(env, releases=(OLD, NEW), venvs={OLD: KEY, NEW: OTHER_KEY}, configs_of=(OLD, NEW))
    assert set(deploy_moves(other, skipped, done=("virtualenv", "services")).values()) == {"restart"}


def test_a_rollback_plan_reloads_between_releases_read_alike(env):
    web_program, worker_program = programs_of(env)
    host = a_host(env, current=NEW, releases=(OLD, NEW), venvs={OLD: KEY, NEW: KEY}, configs_of=(OLD, NEW))
    snapshot = FleetSnapshot.of({"web1": host.state})
    assert plans.program_moves(host, snapshot, Target(OLD)) == {web_program: "reload", worker_program: "restart"}
    host = a_host(env, current=NEW, releases=(OLD, NEW), venvs={OLD: KEY}, configs_of=(OLD, NEW))
    assert set(plans.program_moves(host, FleetSnapshot.of({"web1": host.state}), Target(OLD)).values()) == {
        "restart"}


def test_a_plan_names_no_programs_where_nothing_restarts(env):
    host = a_host(env)
    assert plans.program_moves(host, FleetSnapshot.of({"web1": host.state}), None) is None
    elsewhere = FakeHost("elsewhere", env, host.state)  # a host of no service's role
    assert plans.program_moves(elsewhere, FleetSnapshot.of({"elsewhere": host.state}), Target(OLD)) is None


def git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                               "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}).stdout.strip()


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    """A bare repository with 15 commits on main, and a side branch of 2."""
    work = tmp_path_factory.mktemp("repo")
    git("init", "-q", "-b", "main", cwd=work)
    commits = []
    for number in range(15):
        (work / "requirements.txt").write_text(f"pkg=={number}\n")
        git("add", "-A", cwd=work)
        git("commit", "-q", "-m", f"change {number}", cwd=work)
        commits.append(git("rev-parse", "HEAD", cwd=work))
    git("checkout", "-q", "-b", "side", commits[12], cwd=work)
    for number in range(2):
        (work / "side.txt").write_text(f"{number}\n")
        git("add", "-A", cwd=work)
        git("commit", "-q", "-m", f"side {number}", cwd=work)
    side = git("rev-parse", "HEAD", cwd=work)
    bare = tmp_path_factory.mktemp("bare") / "app.git"
    git("clone", "-q", "--bare", str(work), str(bare), cwd=work)
    return str(bare), commits, side


@pytest.mark.parametrize("as_url", [False, True])
def test_commits_and_files_read_from_a_path_or_fetched_from_a_url(repository, as_url):
    bare, commits, side = repository
    repo = f"file://{bare}" if as_url else bare
    with opened(repo, [commits[14], commits[1]]) as found:
        fetched = found.git_dir != bare
        log = plans.read_commits(found, commits[1], commits[14])
        assert found.file_at(commits[3], "requirements.txt") == b"pkg==3\n"
        assert found.file_at(commits[3], "nope.txt") is None
    assert fetched == as_url
    assert not fetched or not os.path.exists(found.git_dir)  # the temporary clone is gone
    assert (log.total, log.more, log.dropped, len(log.shown)) == (13, 3, 0, 10)
    assert log.shown[0] == f"{commits[14][:7]} change 14"
    # Going to a commit that lacks some of the live ones says how many go away.
    with opened(repo, [side, commits[14]]) as found:
        sideways = plans.read_commits(found, commits[14], side)
    assert (sideways.total, sideways.dropped) == (2, 2)
    with opened(repo, [commits[14]]) as found:
        gone = plans.read_commits(found, "f" * 40, commits[14])
    assert gone.error == "commit ffffffffffff is not in the repository any more"


def test_an_unreadable_repository_is_one_error(tmp_path):
    with pytest.raises(RepoUnreadable, match="git fetch"):
        with opened(str(tmp_path / "missing.git"), ["a" * 40]):
            pass


def a_plan():
    web = plans.HostPlan(
        current=name(1), goes_to=name(5),
        virtualenv=plans.VirtualenvPlan("built", "0123456789abcdef", "requirements.txt changed since the live release",
                                        ("requirements.txt",)),
        configs=(plans.ConfigChange("supervisor/p-web.conf", "changed",
                                    ("--- a", "+++ b", "@@ -1 +1 @@", "-workers 1", "+workers 2"), 4),
                 plans.ConfigChange("supervisor/p-pillow.conf", "unchanged")),
        deletes=(name(0),), programs={"p-pillow": "restart", "p-web": "reload"})
    commits = plans.Commits("a" * 40, "b" * 40, 12, tuple(f"{i:07x} change {i}" for i in range(10)))
    return plans.Plan(
        "deploy", release=name(5), new_release=True, commit="b" * 40, ref="main", live_release=name(1),
        commits=commits, waves=(Wave("canary", ("web1",), True), Wave("wave 1", ("web2",))),
        hosts={"web1": web, "web2": dataclasses.replace(web, deletes=())},
        warnings=("someone@else (deploy, pid 1 on x, since y) holds the lock now: what it does may change this plan",))


def test_plan_lines_say_everything_once():
    data = a_plan().to_dict()
    record = TaskRecord(ev.TaskStarted("deploy", "prod", {"plan": True}, "me@x", "x", ("web1", "web2")))
    console = plain_console(io.StringIO(), color=False)
    out = PlainLines(console)
    for event in (record.started, ev.PlanMade(data), ev.TaskFinished(ev.SUCCEEDED, 0)):
        record.apply(event)
        out(event)
    text = console.file.getvalue()
    assert "PLAN for deploy: what it would do (nothing was changed on any host)" in text
    assert f"release   {name(5)} (a new release, named when the deploy starts)" in text
    assert f"commits   12 new since the live commit {'a' * 12}:" in text
    assert "0000009 change 9" in text and "... 2 more" in text
    assert "waves     canary: web1 | wave 1: web2" in text
    assert "virtualenv  built venv 0123456789abcdef: requirements.txt changed since the live release" in text
    assert "supervisor/p-web.conf: changed" in text and "+workers 2" in text and "... 4 more lines" in text
    assert "supervisor/p-pillow.conf: unchanged (apart from the release name and path)" in text
    assert "programs    p-pillow restart, p-web reload" in text
    assert f"cleanup     deletes {name(0)}" in text and "cleanup     deletes nothing" in text
    assert "warning: someone@else" in text

    doc = document(record)
    jsonschema.Draft202012Validator(SCHEMA).validate(doc)
    assert doc["plan"] == data and doc["plan"]["commits"]["more"] == 2

    live_console = Console(record=True, width=160, file=io.StringIO(), force_terminal=True)
    view = LiveView(live_console)
    for event in (record.started, ev.PlanMade(data), ev.TaskFinished(ev.SUCCEEDED, 0)):
        view(event)
    assert "+workers 2" in live_console.export_text(clear=False)
    assert re.search(r"\x1b\[32m +\+workers 2", live_console.export_text(styles=True))  # green


def test_secrets_in_a_plan_are_masked_everywhere():
    data = a_plan().to_dict()
    data["hosts"]["web1"]["configs"][0]["diff"].append("+environment=URL=https://me:hunter22@db/x")
    published = ev.masked(ev.PlanMade(data))
    assert "hunter22" not in json.dumps(published.plan)


# --- the facts script, run locally ----------------------------------------------------------


def tree_checksum(root):
    """Every entry under `root`: type, mode, size, mtime, content hash or link target."""
    found = {}
    for directory, dirs, files in os.walk(root):
        for entry in dirs + files:
            path = os.path.join(directory, entry)
            info = os.lstat(path)
            if os.path.islink(path):
                found[path] = ("link", os.readlink(path), info.st_mtime_ns)
            elif os.path.isfile(path):
                with open(path, "rb") as handle:
                    digest = hashlib.sha256(handle.read()).hexdigest()
                found[path] = ("file", info.st_mode, info.st_size, info.st_mtime_ns, digest)
            else:
                found[path] = ("other", info.st_mode, info.st_mtime_ns)
    found[root] = ("root", os.lstat(root).st_mtime_ns)
    return found


def test_facts_script_reads_and_changes_nothing(tmp_path):
    root = tmp_path / "www"
    live = root / "releases" / name(1)
    (live / "services" / "supervisor").mkdir(parents=True)
    (live / "services" / "port").mkdir()
    (live / "services" / "supervisor" / "p-web.conf").write_text("[program:p-web]\n")
    (live / "services" / "port" / "p-proxy.conf").write_text("events {}\n")
    (live / "requirements.txt").write_bytes(b"gunicorn\n")
    for venv in ("aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"):
        (root / "venvs" / venv).mkdir(parents=True)
    (root / "venvs" / "aaaaaaaaaaaaaaaa" / ".complete").touch()  # b... is incomplete
    (live / "python_env").symlink_to(root / "venvs" / "aaaaaaaaaaaaaaaa")
    (root / "current").symlink_to(f"releases/{name(1)}")
    # A live lock holder: a process whose command line names the lock file.
    paths = Paths(str(root))
    holder = subprocess.Popen(["bash", "-c", "sleep 30; exit", "fab-step", paths.lock])
    (root / ".deploy.lock.owner").write_text(json.dumps({"owner": "someone@else", "task": "deploy",
                                                         "lock_pid": holder.pid}))
    before = tree_checksum(str(tmp_path))
    try:
        output = subprocess.run(["bash", "-c", shell.remote_script("plan"), "plan", *plan_facts.arguments(
            paths, name(1), "/usr/bin/python3", ["requirements.txt", "missing.txt"])],
                                capture_output=True, text=True, check=True).stdout
    finally:
        holder.kill()
        holder.wait()
    assert tree_checksum(str(tmp_path)) == before
    found = plan_facts.parse(output)
    version = subprocess.run(["/usr/bin/python3", "-S", "-c", virtualenv.PYTHON_VERSION_CODE],
                             capture_output=True, check=True).stdout
    assert found.python_version == version
    assert found.venvs == {"aaaaaaaaaaaaaaaa"} and found.current_venv == "aaaaaaaaaaaaaaaa"
    assert found.current_requirements == {"requirements.txt": b"gunicorn\n"}
    assert found.current_configs == {"supervisor/p-web.conf": "[program:p-web]\n", "port/p-proxy.conf": "events {}\n"}
    assert found.lock_holder["owner"] == "someone@else"

    # Once the holder is gone, its stale record is not a lock; a python that fails is said.
    again = plan_facts.parse(subprocess.run(
        ["bash", "-c", shell.remote_script("plan"), "plan", *plan_facts.arguments(paths, None, "/no/python")],
        capture_output=True, text=True, check=True).stdout)
    assert again.lock_holder is None and again.python_version is None
    assert "/no/python" in again.python_error and again.current_configs == {}


def test_parse_facts_on_captured_output():
    encoded = base64.b64encode(b"3.11.2 (main)\n").decode()
    parsed = plan_facts.parse("\n".join([
        f"python {encoded}", "venv 0123456789abcdef", "current-venv 0123456789abcdef",
        "requirement dev requirements.txt YQo=", "config supervisor/p-web.conf eAo=",
    ]))
    assert parsed.python_version == b"3.11.2 (main)\n"
    assert parsed.current_requirements == {"dev requirements.txt": b"a\n"}
    assert parsed.current_configs == {"supervisor/p-web.conf": "x\n"} and parsed.lock_holder is None


# --- on the real fleet ------------------------------------------------------------------------


def fleet_checksums(env):
    """Every host's whole home: what a plan must leave exactly as it found it."""
    return {host: tree_checksum(env.spec.home(host)) for host in env.spec.hosts}


def heartbeat_log(env):
    """The one file something writes on its own meanwhile: the running pillow's log."""
    return os.path.join(env.code_root("pillow1"), "log", f"{env.name}-pillow.log")


def assert_nothing_changed(env, before, after, logs_before):
    """Equal checksums everywhere; the pillow's log only grew by its own heartbeats."""
    growing = heartbeat_log(env)
    for host in before:
        assert set(after[host]) == set(before[host]), host
        changed = [path for path in before[host] if before[host][path] != after[host][path] and path != growing]
        assert not changed, (host, changed)
    with open(growing) as handle:
        now = handle.read()
    assert now.startswith(logs_before)
    assert all(re.fullmatch(r"heartbeat \d+ from .*", line) for line in now[len(logs_before):].splitlines())


def program_pids(env):
    """{host: {program: pid}} from supervisorctl, and /version's pid of each web host."""
    pids = {}
    for host in env.hosts:
        status = env.remote(host, f"{sandbox.tools.TOOLS}/bin/supervisorctl -c ~/supervisor/supervisord.conf status",
                            check=False)
        pids[host] = dict(re.findall(r"^(\S+)\s+RUNNING\s+pid (\d+)", status, re.M))
    for host in ("web1", "web2"):
        pids[host]["/version"] = env.version(host)["pid"]
    return pids


def planned(env, task):
    """Run `task:plan=yes,json=yes`; its summary's plan (the summary is checked against the schema)."""
    result = assert_ok(env.fab(f"{task}:plan=yes,json=yes"))
    doc = json.loads(result.stdout)
    jsonschema.Draft202012Validator(SCHEMA).validate(doc)
    assert (doc["outcome"], doc["release"], doc["hosts"]["web1"]["outcome"]) == ("succeeded", None, "ok")
    return doc["plan"]


def deployed(env):
    """Run a real deploy with a JSON summary; (summary, {host: releases deleted})."""
    before = {host: set(env.releases(host)) for host in env.hosts}
    doc = json.loads(assert_ok(env.fab("deploy:json=yes")).stdout)
    jsonschema.Draft202012Validator(SCHEMA).validate(doc)
    return doc, {host: sorted(before[host] - set(env.releases(host))) for host in env.hosts}


def step_note(doc, host, step):
    return next(s["note"] for s in doc["hosts"][host]["steps"] if s["step"] == step)


def test_plans_change_nothing_and_predict_the_deploy_that_follows(deploy_env):
    env = deploy_env
    env.write_config(keep_releases=1, service_settings={"web": {"restart": "reload"}})
    assert_ok(env.fab("deploy"))
    first = live_release(env)
    env.commit("NEWS.txt", "second\n", "second")
    assert_ok(env.fab("deploy"))
    second = live_release(env)
    commit = env.commit("NEWS.txt", "third\n", "Third: a change the plan lists")

    pids = program_pids(env)
    checksums = fleet_checksums(env)
    with open(heartbeat_log(env)) as handle:
        logs = handle.read()
    plain = assert_ok(env.fab("deploy:plan=yes"))
    plan = planned(env, "deploy")
    back = planned(env, "rollback")
    cleanup = planned(env, "clean_releases")
    assert_nothing_changed(env, checksums, fleet_checksums(env), logs)
    assert program_pids(env) == pids

    assert "PLAN for deploy" in plain.stdout and "Third: a change the plan lists" in plain.stdout
    assert f"programs    {env.name}-web reload" in plain.stdout
    assert (plan["commit"], plan["ref"], plan["live_release"], plan["new_release"]) == (commit, "main", second, True)
    assert plan["release"] > second and not plan["warnings"]
    commits = plan["commits"]
    assert (commits["total"], commits["dropped"], commits["error"]) == (1, 0, None)
    assert commits["shown"] == [f"{commit[:7]} Third: a change the plan lists"]
    for host in env.hosts:
        assert (plan["hosts"][host]["current"], plan["hosts"][host]["goes_to"]) == (second, plan["release"])
        assert plan["hosts"][host]["virtualenv"]["action"] == "reused"
        assert {c["change"] for c in plan["hosts"][host]["configs"]} == {"unchanged"}
        assert plan["hosts"][host]["deletes"] == [first]
    # Same venv, same web config: web reloads in place, going forward or back; pillow names its release.
    moves = {f"{env.name}-web": "reload", f"{env.name}-pillow": "restart"}
    for task_plan in (plan, back):
        for host, planned_host in task_plan["hosts"].items():
            assert planned_host["programs"] and planned_host["programs"].items() <= moves.items(), host
    assert (back["release"], back["live_release"]) == (first, second)
    assert {h["goes_to"] for h in back["hosts"].values()} == {first}
    assert all(h["programs"] is None for h in cleanup["hosts"].values())
    assert back["waves"] == plan["waves"]
    assert all(h["deletes"] == [] for h in cleanup["hosts"].values())  # first is the rollback target

    doc, deleted = deployed(env)
    assert doc["commit"] == commit
    for host in env.hosts:
        venv = plan["hosts"][host]["virtualenv"]
        assert step_note(doc, host, "virtualenv") == f"{venv['action']} venv {venv['key']}"
        assert deleted[host] == plan["hosts"][host]["deletes"]
        reloads = set(plan["hosts"][host]["programs"].values()) == {"reload"}
        assert step_note(doc, host, "restart").startswith("reloaded in place") == reloads, host
    described = waves.describe([Wave(w["name"], tuple(w["hosts"])) for w in plan["waves"]])
    assert f"waves: {described}" in [stage["text"] for stage in doc["stages"]]


def test_a_plan_names_a_changed_requirements_file_and_diffs_a_changed_service(deploy_env):
    env = deploy_env
    assert_ok(env.fab("deploy"))
    with open(os.path.join(env.spec.app_workdir, "requirements.txt")) as handle:
        requirements = handle.read()
    env.commit("requirements.txt", requirements + "# the plan test's own venv\n", "requirements")
    env.write_config(service_settings={"web": {"workers": 2}})

    plan = planned(env, "deploy")
    for host in env.hosts:
        venv = plan["hosts"][host]["virtualenv"]
        assert (venv["action"], venv["changed"]) == ("built", ["requirements.txt"])
        assert venv["reason"] == "requirements.txt changed since the live release"
    web = {c["file"]: c for c in plan["hosts"]["web1"]["configs"]}[f"supervisor/{env.name}-web.conf"]
    assert web["change"] == "changed"
    assert any(line.startswith("-") and "--workers 1" in line for line in web["diff"])
    assert any(line.startswith("+") and "--workers 2" in line for line in web["diff"])
    assert [c["change"] for c in plan["hosts"]["pillow1"]["configs"]] == ["unchanged"]
    plain = assert_ok(env.fab("deploy:plan=yes")).stdout
    assert "virtualenv  built venv" in plain and "requirements.txt changed since the live release" in plain
    assert f"supervisor/{env.name}-web.conf: changed" in plain

    doc, _ = deployed(env)
    for host in env.hosts:
        # The key the plan predicts is the one the controller decided for the store's install.
        assert step_note(doc, host, "virtualenv").startswith(
            f"installed venv {plan['hosts'][host]['virtualenv']['key']} from store")


def test_a_plan_takes_no_lock_and_says_who_holds_it(deploy_env):
    env = deploy_env
    assert_ok(env.fab("deploy"))
    record = {"owner": "someone@elsewhere", "machine": "elsewhere", "pid": 4242, "task": "deploy",
              "since": "2026-01-01T00:00:00+00:00"}
    holder = subprocess.Popen(
        ["ssh", "-F", env.spec.ssh_config, "web1",
         shlex.join(["bash", "-c", shell.remote_script("lock"), "lock",
                     *lock.lock_arguments(Paths(env.code_root("web1")), record)])],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().startswith("acquired ")
        plan = planned(env, "clean_releases")
        assert plan["warnings"] == ["someone@elsewhere (deploy, pid 4242 on elsewhere, since "
                                    "2026-01-01 00:00:00 UTC) holds the lock now: what it does may change this plan"]
        assert env.fab("clean_releases").returncode == 3  # the real task is refused
        assert_ok(env.fab("unlock"))  # stops the holder on the host
        assert holder.wait(timeout=30) is not None
    finally:
        holder.kill()
        holder.wait()
    assert planned(env, "clean_releases")["warnings"] == []  # its record stays, but nobody holds it
