"""The stages' decisions (fab.stages, fab.rollout), without SSH: what the build
made, what a host reloads or restarts, what cleanup deletes after going live, and
the go-live record (rollout.Moves) over a fake fleet that runs no step."""
import dataclasses
import datetime as dt

import pytest
from hypothesis import given, strategies as st

from fab import rollout, stages
from fab.config import load_environment
from fab.operations.state import HostState
from fab.paths import Paths
from fab.steps import Step
from fab.releases import BUILDING, FAILED, GOOD, PREPARED, ROLLED_BACK, HostRelease, ReleaseMeta, cleanup_deletes

NOW = dt.datetime(2026, 11, 22, 3, 0, 0, tzinfo=dt.timezone.utc)
KEY, OTHER_KEY = "0123456789abcdef", "fedcba9876543210"
OLD, NEW, NEWER = "2026-11-20_00.00.00", "2026-11-21_00.00.00", "2026-11-22_00.00.00"


def meta(name, status=GOOD, commit="c" * 40):
    return ReleaseMeta(name, commit, "main", "me", NOW.isoformat(), status)


def state(current=None, releases=(), venvs=None, configs=None):
    return HostState(home="/home/u", paths=Paths("/home/u/www"), current=current,
                     releases={m.name: HostRelease(m.name, m) for m in releases},
                     venvs=venvs or {}, configs=configs or {})


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
  worker: {role: webworkers, template: supervisor/pillow.conf.j2}
""")
    return load_environment("prod", str(tmp_path))


def test_a_skipped_build_step_leaves_what_the_host_had_read(env):
    host = FakeHost("web1", env, state(venvs={NEW: KEY}, configs={NEW: {"web": "aa"}}))
    built = stages.built_on(host, NEW, {"virtualenv": "skipped (already done)", "services": "skipped (already done)"})
    assert built == rollout.Built(KEY, {"web": "aa"})


def test_a_build_step_that_ran_says_what_it_made(env):
    host = FakeHost("web1", env, state(venvs={NEW: OTHER_KEY}))
    built = stages.built_on(host, NEW, {"virtualenv": f"built venv {KEY} with uv",
                                        "services": "0 service config(s) rendered"})
    assert built.venv == KEY and set(built.configs) == {env.program_name("worker")}  # as rendered here
    unreadable = stages.built_on(host, NEW, {"virtualenv": "oops", "services": "0 service config(s) rendered"})
    assert unreadable.venv is None  # unknown: its programs restart


def test_the_builds_known_are_those_read_and_the_one_built(env):
    fleet = FakeFleet(env, {"web1": state(OLD, [meta(OLD)], venvs={OLD: KEY}, configs={OLD: {"web": "aa"}})})
    known = stages.builds_known(fleet, NEW, {"web1": rollout.Built(KEY, {"web": "bb"})})
    assert known == {"web1": {OLD: rollout.Built(KEY, {"web": "aa"}), NEW: rollout.Built(KEY, {"web": "bb"})}}
    assert stages.builds_known(fleet) == {"web1": {OLD: rollout.Built(KEY, {"web": "aa"})}}


# --- go live: reload or restart ---------------------------------------------------


@pytest.mark.parametrize("before,after,reloads", [
    (rollout.Built(KEY, {"web": "aa", "api": "bb"}), rollout.Built(KEY, {"web": "aa", "api": "cc"}), {"web"}),
    (rollout.Built(KEY, {"web": "aa"}), rollout.Built(KEY, {"web": "aa", "api": "bb"}), {"web"}),  # api is new
    (rollout.Built(KEY, {"web": "aa", "api": "bb"}), rollout.Built(KEY, {"web": "aa"}), {"web"}),  # api is gone
    (rollout.Built(KEY, {"web": "aa"}), rollout.Built(OTHER_KEY, {"web": "aa"}), set()),  # another venv
    (rollout.Built(None, {"web": "aa"}), rollout.Built(None, {"web": "aa"}), set()),  # venv unknown
    (None, rollout.Built(KEY, {"web": "aa"}), set()),  # the running release is unknown
    (rollout.Built(KEY, {"web": "aa"}), None, set()),  # the target's build is unknown
])
def test_programs_reload_in_place_only_when_venv_and_config_are_known_alike(before, after, reloads):
    assert rollout.reloads_in_place({"web", "api"}, before, after) == reloads


@given(st.dictionaries(st.sampled_from(["web", "api", "worker"]), st.sampled_from(["aa", "bb"])),
       st.dictionaries(st.sampled_from(["web", "api", "worker"]), st.sampled_from(["aa", "bb"])),
       st.sampled_from([KEY, OTHER_KEY, None]), st.sampled_from([KEY, OTHER_KEY, None]),
       st.sets(st.sampled_from(["web", "api", "worker"])))
def test_reloading_never_covers_a_change_property(before, after, venv_before, venv_after, programs):
    reloads = rollout.reloads_in_place(programs, rollout.Built(venv_before, before), rollout.Built(venv_after, after))
    assert reloads <= programs
    if reloads:
        assert venv_before is not None and venv_before == venv_after
    for program in reloads:
        assert program in after and before.get(program) == after[program]


@pytest.mark.parametrize("placed,running", [
    ({}, OLD),                       # untouched: what was read
    ({"web1": NEW}, NEW),            # swapped to a release the host had
    ({"web1": NEWER}, None),         # swapped to one it did not have when read (new): unknown
    ({"web1": rollout.CUT_SHORT}, None),
    ({"web1": "nothing"}, None),
])
def test_what_a_host_runs_as_far_as_the_task_knows(placed, running):
    moves = rollout.Moves(placed=placed)
    assert moves.running("web1", state(OLD, [meta(OLD), meta(NEW)])) == running


# --- finish: what cleanup deletes once a release is live --------------------------


def releases_on(days, status=GOOD):
    return [meta(f"2026-11-{day:02d}_00.00.00", status) for day in days]


@pytest.mark.parametrize("placed,current_then", [
    (NEWER, NEWER),     # it went live there
    (None, NEWER),      # the finish was planned before its swap ran
    (rollout.CUT_SHORT, NEWER),
    (NEW, NEW),         # it was put back on its previous release
])
def test_cleanup_after_going_live_decides_from_where_the_host_is(placed, current_then):
    read = state(NEW, releases_on(range(1, 22)))
    good = meta(NEWER, BUILDING).with_status(GOOD)
    expected = cleanup_deletes([*read.releases.values(), HostRelease(NEWER, good)], current_then, 3, NOW)
    assert stages.deletes_after_going_live(read, good, placed, 3, NOW) == expected
    assert NEWER not in expected and current_then not in expected


@given(st.lists(st.sampled_from([GOOD, FAILED, ROLLED_BACK, PREPARED]), max_size=12),
       st.integers(min_value=1, max_value=5), st.booleans())
def test_cleanup_after_going_live_keeps_the_live_and_the_previous_release(statuses, keep, put_back):
    found = [meta(f"2026-11-{day + 1:02d}_00.00.00", status) for day, status in enumerate(statuses)]
    current = found[-1].name if found else None
    good = meta(NEWER).with_status(GOOD)
    doomed = stages.deletes_after_going_live(state(current, found), good, current if put_back else NEWER, keep, NOW)
    assert NEWER not in doomed
    assert current is None or current not in doomed or (
        not put_back and found[-1].status != GOOD)  # a release that never went good may go


def test_a_rollback_marks_what_each_host_leaves(env):
    fleet = FakeFleet(env, {"web1": state(NEWER, [meta(NEW), meta(NEWER)]),
                            "web2": state(NEW, [meta(NEW), meta(NEWER)]),
                            "web3": state(None, [meta(NEW)])})
    left = stages.newer_than(fleet, NEW)
    assert {name: found.name for name, found in left.items()} == {"web1": NEWER}
    finish = stages.rolled_back_from(left, meta(NEW, ROLLED_BACK))
    assert [step.name for step in finish(fleet["web1"], NEW)] == ["mark", "mark"]
    assert [step.name for step in finish(fleet["web2"], NEW)] == ["mark"]


def test_what_a_failure_puts_back_is_the_last_complete_release(env):
    fleet = FakeFleet(env, {"web1": state(NEW, [meta(OLD), meta(NEW)]),
                            "web2": state(NEW, [meta(OLD), meta(NEW, BUILDING)]),  # a deploy died after its swap
                            "web3": state(None)})
    back = stages.put_back_targets(fleet)
    assert back == {"web1": rollout.Target.of(meta(NEW)), "web2": rollout.Target.of(meta(OLD)),
                    "web3": rollout.Target(None)}


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
    moves = stages.go_live(fleet, meta(NEW, BUILDING), finish_marker, on_failure=None)
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
    moves = stages.go_live(fleet, meta(NEW, BUILDING), finish_marker, on_failure=None)
    assert moves.failed == {"web2": "boom"}
    assert moves.put_back == {"web2"}
    assert moves.placed == {"web1": NEW, "web2": OLD, "web3": NEW}
    assert moves.finished == {"web1", "web3"}
    stages.finish(fleet, moves)
    assert fleet.round_trips[-1] == ("web2", ["mark"])  # the put-back host is finished too
    assert rollout.where_is_what(fleet, moves) == f"web1={NEW}, web2={OLD}, web3={NEW}"
