"""The stages (fab.stages, fab.rollout) without SSH: what the build made, what a
host reloads or restarts, what the finish deletes, and the go-live record
(rollout.Moves) over a fake fleet that runs no step. The decisions themselves
are FleetSnapshot's and fab.decide's (tests/test_snapshot.py, tests/test_decide.py)."""
import dataclasses
import datetime as dt

import pytest

from fab import decide, rollout, stages, transfer
from fab.config import load_environment
from fab.operations import inline_transfer, virtualenv
from fab.operations.state import HostState
from fab.paths import Paths
from fab.releases import BUILDING, GOOD, ReleaseMeta, HostRelease
from fab.snapshot import FleetSnapshot, Target
from fab.steps import Outcome

NOW = dt.datetime(2026, 11, 22, 3, 0, 0, tzinfo=dt.timezone.utc)
KEY, OTHER_KEY = "0123456789abcdef", "fedcba9876543210"
OLD, NEW, NEWER = "2026-11-20_00.00.00", "2026-11-21_00.00.00", "2026-11-22_00.00.00"


def meta(name, status=GOOD, commit="c" * 40):
    return ReleaseMeta(name, commit, "main", "me", NOW.isoformat(), status)


def state(current=None, releases=(), venvs=None, configs=None):
    return HostState(home="/home/u", paths=Paths("/home/u/www"), current=current,
                     releases={m.name: HostRelease(m.name, m) for m in releases},
                     venvs=venvs or {}, configs=configs or {})


@dataclasses.dataclass
class FakeHost:
    name: str
    env: object
    state: HostState
    address: str = "127.0.0.1"

    @property
    def paths(self):
        return self.state.paths


# --- build: what it made ----------------------------------------------------------


@pytest.mark.parametrize("line,key,note", [
    (f"reused {KEY}", KEY, f"reused venv {KEY}"),
    (f"built {KEY} uv", KEY, f"built venv {KEY} with uv"),
    (f"built {KEY} virtualenv", KEY, f"built venv {KEY} with virtualenv + pip"),
    (f"reused venv {KEY}", None, f"reused venv {KEY}"),  # a human note is no result
    ("reused not-a-key", None, "reused not-a-key"),
    (f"built {KEY} pipx", None, f"built {KEY} pipx"),
    ("", None, ""),
    (f"rebuilt {KEY}", None, f"rebuilt {KEY}"),
])
def test_the_venv_step_gives_its_key_as_its_result_and_a_note_for_people(line, key, note):
    assert (virtualenv.venv_key_of(line), virtualenv.venv_note(line)) == (key, note)


def ran(note, result=None):
    return Outcome("step", "ok", note, 0.1, result)


SKIPPED = Outcome("step", "skipped", "skipped (already done)", 0.0)


def test_a_skipped_build_step_leaves_what_the_host_had_read(env):
    host = FakeHost("web1", env, state(venvs={NEW: KEY}, configs={NEW: {"web": "aa"}}))
    built = stages.built_on(host, NEW, {"virtualenv": SKIPPED, "services": SKIPPED})
    assert built == rollout.Built(NEW, KEY, {"web": "aa"})


def test_a_build_step_that_ran_says_what_it_made(env):
    host = FakeHost("web1", env, state(venvs={NEW: OTHER_KEY}))
    built = stages.built_on(host, NEW, {"virtualenv": ran(f"built venv {KEY} with uv", KEY),
                                        "services": ran("2 service config(s) rendered")})
    assert built.venv == KEY  # not what the host had when read
    programs = {env.topology.program_name("web"), env.topology.program_name("worker")}
    assert set(built.configs) == programs  # as rendered here
    unreadable = stages.built_on(host, NEW, {"virtualenv": ran("oops"), "services": SKIPPED})
    assert unreadable == rollout.Built(NEW, None, {})  # unknown: its programs restart


def small_and_big_bundles(tmp_path):
    made = {}
    for size in (486, inline_transfer.INLINE_MAX_BYTES + 1):
        path = tmp_path / f"{size}.bundle"
        path.write_bytes(b"b" * size)
        made[size] = transfer.artifact(str(path), "c" * 40 + ".bundle")
    return made[486], made[inline_transfer.INLINE_MAX_BYTES + 1]


def build_on_fake_fleet(monkeypatch, env, bundles, wheels_for=None, command_max=None):
    """stages.build over FakeFleet with `bundles` from code.prepare ({host: Artifact}) and
    `wheels_for` ({host: [Artifact]}) from wheels.prepare; the fleet, and what was delivered."""
    from fab.operations import code, wheels

    delivered = []
    monkeypatch.setattr(code, "prepare", lambda fleet, commit, release=None: dict(bundles))
    monkeypatch.setattr(wheels, "prepare", lambda fleet, meta: wheels.Prepared(artifacts=dict(wheels_for or {})))
    monkeypatch.setattr(stages, "describe_commit", lambda fleet, commit: None)
    monkeypatch.setattr(stages, "built_on", lambda host, release_name, outcomes: None)
    monkeypatch.setattr(transfer, "deliver", lambda fleet, wanted, step: delivered.append(
        {name: [a.size for a in artifacts] for name, artifacts in wanted.items() if artifacts}))
    if command_max is not None:
        monkeypatch.setattr(inline_transfer, "COMMAND_MAX_CHARS", command_max)
    fleet = FakeFleet(env, {name: state() for name in ("web1", "web2", "web3")})
    stages.build(fleet, meta(NEW, BUILDING))
    return fleet, delivered


BATCH = ["virtualenv", "build", "services", "check"]


def test_a_small_bundle_rides_in_the_build_batch_before_the_code_and_a_big_one_is_delivered(
        env, tmp_path, monkeypatch):
    small, big = small_and_big_bundles(tmp_path)
    fleet, delivered = build_on_fake_fleet(monkeypatch, env, {"web1": small, "web2": big})
    assert delivered == [{"web2": [big.size]}]
    assert fleet.round_trips == [
        ("web2", ["release"]),  # before its delivery: a cut one is resumed
        ("web1", ["release", "transfer", "code", *BATCH]),  # no round trip before its batch
        ("web2", ["code", *BATCH]),
        ("web3", ["release", "code", *BATCH]),  # its cache had the commit
    ]


def test_a_host_that_receives_wheels_gets_its_small_bundle_in_the_same_delivery(env, tmp_path, monkeypatch):
    small, _ = small_and_big_bundles(tmp_path)
    wheel = transfer.Artifact("d" * 64, 5000, "/nowhere", "one-1.0-py3-none-any.whl")
    fleet, delivered = build_on_fake_fleet(monkeypatch, env, {"web1": small, "web2": small}, {"web2": [wheel]})
    assert delivered == [{"web2": [small.size, wheel.size]}]
    assert fleet.round_trips == [("web2", ["release"]), ("web1", ["release", "transfer", "code", *BATCH]),
                                 ("web2", ["code", *BATCH]), ("web3", ["release", "code", *BATCH])]


def test_a_batch_whose_command_would_pass_the_limit_gets_its_bundle_delivered(env, tmp_path, monkeypatch):
    small, _ = small_and_big_bundles(tmp_path)
    fleet, delivered = build_on_fake_fleet(monkeypatch, env, {"web1": small}, command_max=5_000)  # < any batch
    assert delivered == [{"web1": [small.size]}]
    assert fleet.round_trips[:2] == [("web1", ["release"]), ("web1", ["code", *BATCH])]


def test_with_linked_files_the_bundle_rides_in_the_first_batch(env, tmp_path, monkeypatch):
    small, _ = small_and_big_bundles(tmp_path)
    linked = env.model_copy(update={"linked_files": ["settings.py"]})
    fleet, delivered = build_on_fake_fleet(monkeypatch, linked, {"web1": small})
    assert delivered == []
    assert fleet.round_trips[:4] == [("web1", ["release", "transfer", "code"]), ("web2", ["release", "code"]),
                                     ("web3", ["release", "code"]), ("web1", ["link"])]
    assert ("web1", BATCH) in fleet.round_trips


@pytest.fixture
def proxied(tmp_path):
    """An environment with a proxy host (nginx, a port service) and a supervisor
    service that runs no app code (app: false) on its own host."""
    (tmp_path / "prod.yml").write_text("""
app: {repo: /srv/app.git}
code_root: ~/www
roles:
  webworkers: [web1]
  proxy: [proxy1]
  cache: [cache1]
build_commands: [make]
services:
  web: {role: webworkers, template: supervisor/gunicorn.conf.j2, port: 8000, restart: reload}
  proxy: {role: proxy, control: port, port: 8080, start: nginx, template: nginx/proxy.conf.j2, balances: web}
  cache: {role: cache, template: supervisor/pillow.conf.j2, restart: reload, app: false}
""")
    return load_environment("prod", str(tmp_path))


def test_a_host_that_runs_no_app_code_gets_no_venv_and_no_build_commands(proxied):
    web, proxy = FakeHost("web1", proxied, state()), FakeHost("proxy1", proxied, state())
    assert [step.name for step in stages.app_steps(web, NEW)] == ["virtualenv", "build"]
    assert stages.app_steps(proxy, NEW) == []
    built = stages.built_on(proxy, NEW, {"services": ran("1 service config(s) rendered")})
    assert built.venv == rollout.NO_VENV and set(built.configs) == {proxied.topology.program_name("proxy")}


def test_a_program_that_runs_no_app_code_reloads_in_place_with_no_venv_on_either_side(proxied):
    program = proxied.topology.program_name("cache")
    read = state(OLD, [meta(OLD)], configs={OLD: {program: "aa"}})  # no venv link: it has none
    moves = rollout.Moves(FleetSnapshot.of({"cache1": read}),
                          {"cache1": rollout.Built(NEW, rollout.NO_VENV, {program: "aa"})})
    assert rollout.in_place_reloads(FakeHost("cache1", proxied, read), moves, Target(NEW)) == {program}
    changed = rollout.Moves(moves.snapshot, {"cache1": rollout.Built(NEW, rollout.NO_VENV, {program: "bb"})})
    assert rollout.in_place_reloads(FakeHost("cache1", proxied, read), changed, Target(NEW)) == set()


# --- go live: reload or restart ---------------------------------------------------


@pytest.mark.parametrize("placed,running", [
    ({}, OLD),                       # untouched: what was read
    ({"web1": NEW}, NEW),            # swapped to a release the host had
    ({"web1": NEWER}, None),         # swapped to one it did not have when read (new): unknown
    ({"web1": rollout.CUT_SHORT}, None),
    ({"web1": "nothing"}, None),
])
def test_what_a_host_runs_as_far_as_the_task_knows(placed, running):
    moves = rollout.Moves(FleetSnapshot.of({"web1": state(OLD, [meta(OLD), meta(NEW)])}), placed=placed)
    assert moves.running("web1") == running


@pytest.mark.parametrize("built,placed,target,reloads", [
    ((KEY, {"web": "aa", "worker": "bb"}), {}, NEW, {"web"}),  # worker has no `restart: reload`
    ((KEY, {"web": "cc", "worker": "bb"}), {}, NEW, set()),    # web's config changed
    ((OTHER_KEY, {"web": "aa"}), {}, NEW, set()),              # the venv changed
    ((None, {"web": "aa"}), {}, NEW, set()),                   # the venv is unknown
    (None, {}, NEW, set()),                                    # nothing built: unknown
    ((KEY, {"web": "aa"}), {"web1": NEW}, OLD, set()),         # back from a release not read: unknown
    (None, {"web1": NEWER}, OLD, {"web"}),                     # back from a release read alike
])
def test_programs_reload_in_place_only_when_what_they_run_is_known_alike(env, built, placed, target, reloads):
    programs = {name: env.topology.program_name(name) for name in ("web", "worker")}
    read = state(OLD, [meta(OLD), meta(NEWER)], venvs={OLD: KEY, NEWER: KEY},
                 configs={r: {programs["web"]: "aa", programs["worker"]: "bb"} for r in (OLD, NEWER)})
    made = {"web1": rollout.Built(NEW, built[0], {programs[p]: d for p, d in built[1].items()})} if built else {}
    moves = rollout.Moves(FleetSnapshot.of({"web1": read}), made, placed=placed)
    found = rollout.in_place_reloads(FakeHost("web1", env, read), moves, Target(target))
    assert found == {programs[name] for name in reloads}


# --- finish -----------------------------------------------------------------------


def test_a_host_finishes_with_the_decisions_steps(env):
    read = {"web1": state(NEWER, [meta(NEW), meta(NEWER)]), "web2": state(NEW, [meta(NEW)])}
    decision = decide.decide_rollback(FleetSnapshot.of(read, keep_releases=3), (), NEW)
    made = [decide.finish_steps(decision, name, stages.FinishSteps(FakeHost(name, env, s)))
            for name, s in read.items()]
    assert [[step.name for step in steps] for steps in made] == [["mark", "mark"], ["mark"]]
    deploy = decide.decide_deploy(FleetSnapshot.of(read, keep_releases=3), meta(NEWER, BUILDING), (), NOW)
    steps = decide.finish_steps(deploy, "web2", stages.FinishSteps(FakeHost("web2", env, read["web2"])))
    assert [step.name for step in steps] == ["mark", "cleanup"]


# --- go live over a fake fleet: the round trips and the record --------------------


class FakeFleet:
    """Runs no step: each host's steps are one "round trip", recorded; a step named in
    `failing` ({host: step}) fails there (the steps before it are done)."""

    def __init__(self, env, states, failing=None):
        self.env = env
        self.hosts = {name: FakeHost(name, env, s) for name, s in states.items()}
        self.balancers, self.lock, self.failing = {}, None, failing or {}
        self.round_trips = []  # (host, [step names])

    def __getitem__(self, name):
        return self.hosts[name]

    @property
    def names(self):
        return list(self.hosts)

    @property
    def states(self):
        return {name: host.state for name, host in self.hosts.items()}

    @property
    def connected(self):
        return dict(self.hosts)

    def proxies_of(self, role):
        return []

    def attempt_steps(self, steps_for, hosts=None, quiet=False):
        results, failures = {}, {}
        for host in list(hosts if hosts is not None else self.hosts.values()):
            steps = steps_for(host)
            if not steps:
                continue
            self.round_trips.append((host.name, [step.name for step in steps]))
            done = {}
            for step in steps:
                if self.failing.get(host.name) == step.name:
                    failures[host.name] = (step.name, "boom")
                    break
                done[step.name] = step.note("=releases/x")
            else:
                results[host.name] = done
        return results, failures

    def each_steps(self, steps_for, hosts=None, quiet=False):
        results, failures = self.attempt_steps(steps_for, hosts, quiet)
        assert not failures
        return results

    def each(self, step, action, hosts=None, quiet=False):  # recorded, not run
        for host in list(hosts if hosts is not None else self.hosts.values()):
            self.round_trips.append((host.name, [step]))
        return {}


def deploy_of(fleet, release=NEW):
    """The decision of deploying `release` to the fake fleet, in its waves."""
    snapshot = FleetSnapshot.of(fleet.states, keep_releases=3)
    return snapshot, decide.decide_deploy(snapshot, meta(release, BUILDING), rollout.waves_for(fleet), NOW)


def test_the_finish_rides_on_the_last_wave_and_nothing_is_left_for_after(env):
    fleet = FakeFleet(env, {name: state(OLD, [meta(OLD)]) for name in ("web1", "web2", "web3")})
    moves = stages.go_live(fleet, *deploy_of(fleet))
    assert fleet.round_trips == [("web1", ["swap", "restart"]), ("web2", ["swap", "restart"]),
                                 ("web3", ["swap", "restart", "mark", "cleanup"]),
                                 ("web1", ["mark", "cleanup"]), ("web2", ["mark", "cleanup"])]
    assert moves.placed == {"web1": NEW, "web2": NEW, "web3": NEW}
    assert moves.finished == {"web1", "web2", "web3"} and not moves.failed and not moves.put_back
    stages.finish(fleet, moves)
    assert len(fleet.round_trips) == 5  # every host finished in a go-live round trip: at most 2 each


def test_a_host_failing_within_the_limit_is_put_back_and_recorded(env):
    fleet = FakeFleet(env, {name: state(OLD, [meta(OLD)]) for name in ("web1", "web2", "web3")},
                      failing={"web2": "swap"})
    run = fleet.attempt_steps

    def failing_once(steps_for, hosts=None, quiet=False):  # its put-back swap succeeds
        results, failures = run(steps_for, hosts, quiet)
        if failures:
            fleet.failing = {}
        return results, failures

    fleet.attempt_steps = failing_once
    moves = stages.go_live(fleet, *deploy_of(fleet))
    assert moves.failed == {"web2": "boom"}
    assert moves.put_back == {"web2"}
    assert moves.placed == {"web1": NEW, "web2": OLD, "web3": NEW}
    assert moves.finished == {"web1", "web3"}
    stages.finish(fleet, moves)
    assert fleet.round_trips[-1] == ("web2", ["mark", "cleanup"])  # the put-back host is finished too
    assert rollout.where_is_what(fleet, moves) == f"web1={NEW}, web2={OLD}, web3={NEW}"


@pytest.fixture
def gated_env(tmp_path):
    (tmp_path / "prod.yml").write_text("""
app: {repo: /srv/app.git}
code_root: ~/www
roles:
  webworkers: [web1, web2, web3]
rollout: {canary: 1, batch: 1, failure_limit: 1, pause: true, gates: [{command: ./error-rate-ok}]}
services:
  web: {role: webworkers, template: supervisor/gunicorn.conf.j2, port: 8000, restart: reload}
""")
    return load_environment("prod", str(tmp_path))


def answering(monkeypatch, answers):
    """gates.first_failure answering from `answers`, one per round (then passing)."""
    from fab import gates

    asked = []

    def first_failure(env, context):
        asked.append(context.release)
        return answers.pop(0) if answers else None

    monkeypatch.setattr(gates, "first_failure", first_failure)
    return asked


CONTEXT = stages.hooks.HookContext(environment="prod", task="deploy", performer="me", hosts=(), release=NEW)


def test_a_gate_failing_between_later_waves_puts_every_started_wave_back(gated_env, monkeypatch):
    asked = answering(monkeypatch, [None, "gate command ./error-rate-ok: exited 1: 3% errors"])
    fleet = FakeFleet(gated_env, {name: state(OLD, [meta(OLD)]) for name in ("web1", "web2", "web3")})
    snapshot, decision = deploy_of(fleet)
    with pytest.raises(rollout.DeployError) as raised:
        stages.go_live(fleet, snapshot, dataclasses.replace(decision, pause_after=None), context=CONTEXT)
    assert str(raised.value) == ("wave 1 failed: gate command ./error-rate-ok: exited 1: 3% errors; "
                                 "every host is back on its previous release")
    assert asked == [NEW, NEW]  # after the canary, after wave 1; never after the last wave
    assert fleet.round_trips == [
        ("web1", ["swap", "restart"]), ("web2", ["swap", "restart"]),  # the canary, wave 1: then the gate
        ("web2", ["swap", "restart"]), ("web1", ["swap", "restart"]),  # put back, newest wave first
        ("web1", ["mark"]), ("web2", ["mark"]), ("web3", ["mark"])]  # failed; web3 never went live


def test_without_gates_or_a_context_nothing_is_asked(gated_env, monkeypatch):
    asked = answering(monkeypatch, ["never"])
    fleet = FakeFleet(gated_env, {name: state(OLD, [meta(OLD)]) for name in ("web1", "web2", "web3")})
    snapshot, decision = deploy_of(fleet)
    moves = stages.go_live(fleet, snapshot, dataclasses.replace(decision, pause_after=None))
    assert asked == [] and moves.placed == {"web1": NEW, "web2": NEW, "web3": NEW}


def test_a_paused_deploy_stops_after_its_canary_and_marks_the_release_paused_everywhere(gated_env, monkeypatch):
    answering(monkeypatch, [])
    fleet = FakeFleet(gated_env, {name: state(OLD, [meta(OLD)]) for name in ("web1", "web2", "web3")})
    snapshot = FleetSnapshot.of(fleet.states, keep_releases=3)
    decision = decide.decide_deploy(snapshot, meta(NEW, BUILDING), rollout.waves_for(fleet), NOW, pause=True)
    moves = stages.go_live(fleet, snapshot, decision, context=CONTEXT)
    assert moves.paused == "canary" and moves.placed == {"web1": NEW} and not moves.finished
    assert fleet.round_trips == [("web1", ["swap", "restart"]),
                                 ("web1", ["mark"]), ("web2", ["mark"]), ("web3", ["mark"])]
    error = stages.paused(fleet, decision, moves)
    assert error.exit_code == 5 and str(error).startswith(f"deploy paused after the canary: release {NEW} is "
                                                          "live on web1 only; `fab prod deploy:resume=yes`")
