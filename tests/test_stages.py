"""The stages (fab.stages, fab.rollout) without SSH: what the build made, what a
host reloads or restarts, what the finish deletes, and the go-live record
(rollout.Moves) over a fake fleet that runs no step. The decisions themselves
are FleetSnapshot's (tests/test_snapshot.py)."""
import dataclasses
import datetime as dt

import pytest

from fab import rollout, stages
from fab.config import load_environment
from fab.operations.state import HostState
from fab.paths import Paths
from fab.releases import BUILDING, GOOD, ROLLED_BACK, HostRelease, ReleaseMeta, cleanup_deletes
from fab.snapshot import FleetSnapshot, Target
from fab.steps import Step

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


@pytest.fixture
def env(tmp_path):
    (tmp_path / "prod.yml").write_text("""
app: {repo: /srv/app.git}
code_root: ~/www
roles:
  webworkers: [web1, web2, web3]
rollout: {canary: 1, batch: 1, failure_limit: 1}
services:
  web: {role: webworkers, template: supervisor/gunicorn.conf.j2, port: 8000, restart: reload}
  worker: {role: webworkers, template: supervisor/pillow.conf.j2}
""")
    return load_environment("prod", str(tmp_path))


# --- build: what it made ----------------------------------------------------------


@pytest.mark.parametrize("note,key", [
    (f"reused venv {KEY}", KEY),
    (f"built venv {KEY} with uv", KEY),
    (f"built venv {KEY} with virtualenv + pip", KEY),
    (f"reused {KEY}", KEY),                      # the structured report line
    (f"built {KEY} uv", KEY),
    ("reused venv", None),
    ("reused venv not-a-key", None),
    ("skipped (already done)", None),
    ("", None),
    (f"rebuilt venv {KEY}", None),
])
def test_the_venv_key_is_read_from_the_step_report(note, key):
    assert stages.venv_key_in(note) == key


def test_a_skipped_build_step_leaves_what_the_host_had_read(env):
    host = FakeHost("web1", env, state(venvs={NEW: KEY}, configs={NEW: {"web": "aa"}}))
    built = stages.built_on(host, NEW, {"virtualenv": "skipped (already done)", "services": "skipped (already done)"})
    assert built == rollout.Built(NEW, KEY, {"web": "aa"})


def test_a_build_step_that_ran_says_what_it_made(env):
    host = FakeHost("web1", env, state(venvs={NEW: OTHER_KEY}))
    built = stages.built_on(host, NEW, {"virtualenv": f"built venv {KEY} with uv",
                                        "services": "2 service config(s) rendered"})
    assert built.venv == KEY  # not what the host had when read
    assert set(built.configs) == {env.program_name("web"), env.program_name("worker")}  # as rendered here
    unreadable = stages.built_on(host, NEW, {"virtualenv": "oops", "services": "skipped (already done)"})
    assert unreadable == rollout.Built(NEW, None, {})  # unknown: its programs restart


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
    programs = {name: env.program_name(name) for name in ("web", "worker")}
    read = state(OLD, [meta(OLD), meta(NEWER)], venvs={OLD: KEY, NEWER: KEY},
                 configs={r: {programs["web"]: "aa", programs["worker"]: "bb"} for r in (OLD, NEWER)})
    made = {"web1": rollout.Built(NEW, built[0], {programs[p]: d for p, d in built[1].items()})} if built else {}
    moves = rollout.Moves(FleetSnapshot.of({"web1": read}), made, placed=placed)
    found = rollout.in_place_reloads(FakeHost("web1", env, read), moves, Target(target))
    assert found == {programs[name] for name in reloads}


# --- finish -----------------------------------------------------------------------


@pytest.mark.parametrize("placed,current_then", [
    (NEWER, NEWER),     # it went live there
    (None, NEWER),      # the finish was planned before its swap ran
    (rollout.CUT_SHORT, NEWER),
    (NEW, NEW),         # it was put back on its previous release
])
def test_the_deploy_finish_cleans_up_from_where_the_host_is(env, monkeypatch, placed, current_then):
    read = state(NEW, [meta(f"2026-11-{day:02d}_00.00.00") for day in range(1, 22)])
    snapshot = FleetSnapshot.of({"web1": read}, keep_releases=3)
    deleted = []
    monkeypatch.setattr(stages.cleanup, "delete_releases", lambda host, names: deleted.append(names) or Step("c", ":"))
    monkeypatch.setattr(stages.rel, "utcnow", lambda: NOW)
    steps = stages.good_and_clean(snapshot, meta(NEWER, BUILDING))(FakeHost("web1", env, read), placed)
    assert [step.name for step in steps] == ["mark", "c"]
    expected = cleanup_deletes([*read.releases.values(), HostRelease(NEWER, meta(NEWER))], current_then, 3, NOW,
                               snapshot.fleet_rollback_target(NEWER))
    assert deleted == [expected] and expected
    assert NEWER not in expected and current_then not in expected


def test_a_rollback_marks_what_each_host_leaves(env):
    read = FleetSnapshot.of({"web1": state(NEWER, [meta(NEW), meta(NEWER)]), "web2": state(NEW, [meta(NEW)]),
                             "web3": state(None, [meta(NEW)])})
    left = read.newer_than(NEW)
    assert {name: found.name for name, found in left.items()} == {"web1": NEWER}
    finish = stages.rolled_back_from(left, meta(NEW, ROLLED_BACK))
    assert [step.name for step in finish(FakeHost("web1", env, state()), NEW)] == ["mark", "mark"]
    assert [step.name for step in finish(FakeHost("web2", env, state()), NEW)] == ["mark"]


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


def finish_marker(host, placed):
    return [Step("mark", ":")]


def test_the_finish_rides_on_the_last_wave_and_nothing_is_left_for_after(env):
    fleet = FakeFleet(env, {name: state(OLD, [meta(OLD)]) for name in ("web1", "web2", "web3")})
    moves = stages.go_live(fleet, FleetSnapshot.of(fleet.states), meta(NEW, BUILDING), finish_marker,
                           on_failure=None)
    assert fleet.round_trips == [("web1", ["swap", "restart"]), ("web2", ["swap", "restart"]),
                                 ("web3", ["swap", "restart", "mark"]), ("web1", ["mark"]), ("web2", ["mark"])]
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
    moves = stages.go_live(fleet, FleetSnapshot.of(fleet.states), meta(NEW, BUILDING), finish_marker,
                           on_failure=None)
    assert moves.failed == {"web2": "boom"}
    assert moves.put_back == {"web2"}
    assert moves.placed == {"web1": NEW, "web2": OLD, "web3": NEW}
    assert moves.finished == {"web1", "web3"}
    stages.finish(fleet, moves)
    assert fleet.round_trips[-1] == ("web2", ["mark"])  # the put-back host is finished too
    assert rollout.where_is_what(fleet, moves) == f"web1={NEW}, web2={OLD}, web3={NEW}"
