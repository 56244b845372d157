"""The deciders, and the plan-equals-run property: over random fleets, what a task
does (run here against a fleet in memory, as the stages run it) is what its
plan said."""
import dataclasses

import pytest
from hypothesis import given, settings, strategies as st

from fab import decide
from fab import plan as plans
from fab import releases as rel
from fab.errors import PreflightError
from fab.snapshot import FleetSnapshot, Target, unfinished_current_warning
from fab.waves import Wave, divide_into_waves
from test_snapshot import NOW, fleet_states, found, meta, name, state


def snapshot_of(keep=2, **states):
    return FleetSnapshot.of(states, keep)


ONE_WAVE = (Wave("all hosts", ("a", "b")),)


# --- the deciders --------------------------------------------------------------------


def test_a_new_release_a_prepared_one_or_the_one_resumed():
    fleet = snapshot_of(a=state(name(1), (name(1), rel.GOOD), (name(2), rel.PREPARED)),
                        b=state(name(1), (name(1), rel.GOOD), (name(2), rel.PREPARED)))
    chosen = decide.choose_release(fleet, "c" * 40, "main", "me", NOW)
    assert (chosen.meta.name, chosen.meta.status, chosen.source) == (name(2), rel.BUILDING, decide.PREPARED)
    chosen = decide.choose_release(fleet, "d" * 40, "v2", "me", NOW, ports={"web": 8000})
    assert chosen.source == decide.NEW
    assert chosen.meta == rel.ReleaseMeta(rel.new_release_name(NOW), "d" * 40, "v2", "me", NOW.isoformat(),
                                          ports=(("web", 8000),))
    with pytest.raises(PreflightError, match="nothing to resume"):
        decide.choose_release(snapshot_of(a=state(name(1), (name(1), rel.GOOD))), None, "main", "me", NOW,
                              resume=True)
    failed = snapshot_of(a=state(name(1), (name(1), rel.GOOD), (name(3), rel.FAILED)))
    assert decide.choose_release(failed, None, "main", "me", NOW, resume=True).source == decide.RESUMED
    private = decide.new_release(failed, "c" * 40, "main", "me", NOW, private=True, keep_days=2)
    assert (private.status, private.private, private.keep_until) == (rel.PRIVATE, True, rel.keep_until(NOW, 2))


def test_a_deploy_goes_to_the_release_puts_back_what_runs_and_cleans_after():
    releases = [(name(1), rel.GOOD), (name(2), rel.GOOD), (name(3), rel.GOOD)]
    fleet = snapshot_of(a=state(name(3), *releases), b=state(name(4), *releases, (name(4), rel.BUILDING)))
    new = meta(name(5), rel.BUILDING)
    decision = decide.decide_deploy(fleet, new, ONE_WAVE, NOW)
    assert (decision.task, decision.release, decision.previous, decision.fails_as) == (
        decide.DEPLOY, new, None, rel.FAILED)
    assert decision.goal() == {"a": Target.of(new), "b": Target.of(new)}
    assert decision.put_back() == {"a": Target.of(meta(name(3))), "b": Target.of(meta(name(3)))}
    assert decision.host_warnings == {"b": unfinished_current_warning(name(4), name(3))}
    a = decision.hosts["a"]
    assert a.marks == (new.with_status(rel.GOOD),)
    assert (a.deletes, a.deletes_if_put_back) == ((name(1), name(2)), (name(1),))  # keep 2
    assert decision.hosts["b"].deletes == (name(1), name(2), name(4))
    assert decision.waves == ONE_WAVE


def test_a_rollback_marks_the_target_good_and_what_it_leaves_rolled_back_and_warns_what_it_passes_over():
    fleet = snapshot_of(a=state(name(3), (name(1), rel.GOOD), (name(2), rel.GOOD), (name(3), rel.GOOD)),
                        b=state(name(3), (name(1), rel.GOOD), (name(3), rel.GOOD)))
    decision = decide.decide_rollback(fleet, ONE_WAVE)
    assert (decision.task, decision.release, decision.previous, decision.fails_as) == (
        decide.ROLLBACK, meta(name(1)), name(3), None)
    assert decision.hosts["a"].marks == (meta(name(1)), meta(name(3), rel.ROLLED_BACK))
    assert decision.hosts["a"].deletes == () and decision.hosts["a"].back_to == Target.of(meta(name(3)))
    assert decision.warnings == (
        f"rollback passes over {name(2)} (missing on b): it goes to {name(1)}, good on every host",)
    with pytest.raises(PreflightError, match="b: missing"):
        decide.decide_rollback(fleet, ONE_WAVE, name(2))


CANARY_FIRST = (Wave("canary", ("a",), canary=True), Wave("wave 1", ("b",)))


@pytest.mark.parametrize("waves, pause, status, after", [
    (CANARY_FIRST, True, None, "canary"),
    (CANARY_FIRST, False, None, None),
    (ONE_WAVE, True, None, None),  # nothing follows: nothing to pause before
    ((Wave("wave 1", ("a",)), Wave("wave 2", ("b",))), True, None, None),  # no canary
    (CANARY_FIRST, True, rel.FAILED, "canary"),  # resuming a failed deploy pauses as it would have
    (CANARY_FIRST, True, rel.PAUSED, None),  # resuming a paused one goes on to the end
])
def test_a_deploy_pauses_after_its_canary_unless_it_resumes_a_paused_release(waves, pause, status, after):
    releases = [(name(1), rel.GOOD)] + ([(name(2), status)] if status else [])
    fleet = snapshot_of(a=state(name(1), *releases), b=state(name(1), *releases))
    decision = decide.decide_deploy(fleet, meta(name(2), rel.BUILDING), waves, NOW, pause=pause)
    assert decision.pause_after == after


@pytest.mark.parametrize("canary_status, other_status, live", [
    (rel.PAUSED, rel.PAUSED, ("a",)),  # paused: the canary runs it, checked, not restarted
    (rel.FAILED, rel.FAILED, ()),  # a failed deploy's host left on it: resumed as before, restarted
    (rel.PAUSED, rel.FAILED, ("a",)),  # each host's own record counts
])
def test_resuming_a_paused_deploy_checks_the_hosts_it_left_live_and_goes_on_with_the_other_waves(
        canary_status, other_status, live):
    fleet = snapshot_of(a=state(name(2), (name(1), rel.GOOD), (name(2), canary_status)),
                        b=state(name(1), (name(1), rel.GOOD), (name(2), other_status)))
    chosen = decide.choose_release(fleet, None, "main", "me", NOW, resume=True)
    decision = decide.decide_deploy(fleet, chosen.meta, CANARY_FIRST, NOW, pause=True)
    assert [wave.hosts for wave in decision.waves if wave.live] == ([live] if live else [])
    assert [h for wave in decision.waves if not wave.live for h in wave.hosts] == [
        h for h in ("a", "b") if h not in live]
    assert decision.put_back()["a"] == Target.of(meta(name(1)))  # a failure puts the canary back too
    assert decision.pause_after == (None if canary_status == rel.PAUSED else "canary")


def test_a_rollback_gives_up_a_paused_deploy_marking_its_release_rolled_back_everywhere():
    fleet = snapshot_of(a=state(name(2), (name(1), rel.GOOD), (name(2), rel.PAUSED)),
                        b=state(name(1), (name(1), rel.GOOD), (name(2), rel.PAUSED)))
    decision = decide.decide_rollback(fleet, CANARY_FIRST)
    assert decision.release == meta(name(1)) and decision.goal() == {"a": Target.of(meta(name(1))),
                                                                     "b": Target.of(meta(name(1)))}
    for host in ("a", "b"):
        assert decision.hosts[host].marks == (meta(name(1)), meta(name(2), rel.ROLLED_BACK))
    with pytest.raises(PreflightError, match="hosts disagree"):  # a release merely unfinished is not given up so
        decide.decide_rollback(snapshot_of(a=state(name(2), (name(1), rel.GOOD), (name(2), rel.FAILED)),
                                           b=state(name(1), (name(1), rel.GOOD), (name(2), rel.FAILED))),
                               CANARY_FIRST)


def test_cleanup_deletes_what_clean_releases_decides_and_swaps_nothing():
    fleet = snapshot_of(keep=1, a=state(name(3), (name(1), rel.GOOD), (name(2), rel.GOOD), (name(3), rel.GOOD)))
    decision = decide.decide_cleanup(fleet, NOW)
    assert decision.hosts == {"a": decide.HostDecision(current=name(3), deletes=(name(1),))}
    assert decision.goal() == {} and decision.put_back() == {}
    assert decide.finish_steps(decision, "a", Recorder()) == []
    assert decision.finishing("a") == ((), None)  # clean_releases deletes as its own stage


def test_what_a_host_finishes_with_depends_on_where_the_go_live_left_it():
    releases = [(name(1), rel.GOOD), (name(2), rel.GOOD), (name(3), rel.GOOD)]
    fleet = snapshot_of(keep=1, a=state(name(3), *releases))
    new = meta(name(5), rel.BUILDING)
    decision = decide.decide_deploy(fleet, new, ONE_WAVE, NOW)
    good = (new.with_status(rel.GOOD),)
    assert decision.finishing("a") == decision.finishing("a", name(5)) == (good, (name(1), name(2)))
    assert decision.finishing("a", name(3)) == (good, (name(1),))  # put back: 3 runs, 2 its rollback target
    assert decide.finish_steps(decision, "a", Recorder(), name(3)) == [("mark", good[0]), ("delete", (name(1),))]
    rollback = decide.decide_rollback(fleet, ONE_WAVE)
    assert rollback.finishing("a") == ((meta(name(2)), meta(name(3), rel.ROLLED_BACK)), None)


def test_a_hotfix_keeps_the_release_and_changes_its_commit():
    fleet = snapshot_of(a=state(name(1), found(name(1), ports=(("web", 8000),))),
                        b=state(name(1), found(name(1), ports=(("web", 8000),))))
    decision = decide.decide_hotfix(fleet, "d" * 40, "me", NOW, ONE_WAVE)
    assert decision.goal()["a"] == Target(name(1), "d" * 40, (("web", 8000),))
    assert decision.put_back()["a"] == Target(name(1), "c" * 40, (("web", 8000),))
    assert decision.release.commit == "d" * 40 and decision.release.hotfixes
    assert decision.hosts["b"].marks == (decision.release,)
    with pytest.raises(PreflightError, match="disagree"):
        decide.decide_hotfix(snapshot_of(a=state(name(1), (name(1), rel.GOOD)), b=state(name(2), (name(2), rel.GOOD))),
                             "d" * 40, "me", NOW, ONE_WAVE)


def test_the_plan_shows_the_decision():
    fleet = snapshot_of(a=state(name(3), (name(1), rel.GOOD), (name(2), rel.GOOD), (name(3), rel.GOOD)))
    decision = decide.decide_deploy(fleet, meta(name(5), rel.BUILDING), ONE_WAVE, NOW)
    shown = plans.from_decision(decision, commit="c" * 40).to_dict()
    assert (shown["task"], shown["release"], shown["live_release"], shown["commit"]) == (
        "deploy", name(5), name(3), "c" * 40)
    assert shown["hosts"]["a"] == {"current": name(3), "goes_to": name(5), "virtualenv": None, "configs": None,
                                   "deletes": [name(1), name(2)], "back_to": name(3), "programs": None,
                                   "wheels": None}
    assert shown["waves"] == [{"name": "all hosts", "hosts": ["a", "b"], "canary": False, "live": False}]
    cleanup = plans.from_decision(decide.decide_cleanup(fleet, NOW)).to_dict()
    assert (cleanup["release"], cleanup["live_release"], cleanup["hosts"]["a"]["back_to"]) == (None, None, None)


# --- plan equals run -----------------------------------------------------------------


class Recorder:
    """The steps maker `finish_steps` takes, making each step as data."""

    @staticmethod
    def mark(meta):
        return ("mark", meta)

    @staticmethod
    def delete(names):
        return ("delete", tuple(names))


@dataclasses.dataclass
class FakeHost:
    """A host in memory: what `current` points to, its releases, what happened to it."""

    current: str
    releases: dict
    events: list = dataclasses.field(default_factory=list)

    def apply(self, step):
        self.events.append(step)
        kind, what = step
        if kind == "swap":
            assert what is None or what in self.releases, f"swap to {what}, which the host lacks"
            self.current = what
        elif kind == "build":
            self.releases.setdefault(what.name, rel.HostRelease(what.name, what))
        elif kind == "mark":
            self.releases[what.name] = rel.HostRelease(what.name, what)
        elif kind == "delete":
            assert self.current not in what, "cleanup deleted the current release"
            for doomed in what:
                del self.releases[doomed]


def run(decision, states, failing=frozenset(), abort_at=None):
    """Run `decision` on the fleet `states` in memory, as the stages run it: a
    deploy builds its release everywhere; hosts go live wave by wave; a host of
    `failing` fails its go-live and is put back (within the failure limit); with
    `abort_at` (a wave index) that wave fails beyond the limit: every started
    wave goes back, newest first, the release is marked `fails_as`, and no
    host finishes. Otherwise every host runs its finishing steps."""
    fleet = {host_name: FakeHost(s.current, dict(s.releases)) for host_name, s in states.items()}
    if decision.task == decide.DEPLOY:
        for host in fleet.values():
            host.apply(("build", decision.release))
    goal, previous = decision.goal(), decision.put_back()
    put_back, started = set(), []
    for index, wave in enumerate(decision.waves):
        started.append(wave)
        for host_name in wave.hosts:
            fleet[host_name].apply(("swap", goal[host_name].release))
            if host_name in failing and index != abort_at:
                fleet[host_name].apply(("swap", previous[host_name].release))
                put_back.add(host_name)
        if index == abort_at:
            for back in reversed(started):
                for host_name in back.hosts:
                    if host_name not in put_back:
                        fleet[host_name].apply(("swap", previous[host_name].release))
            if decision.fails_as:
                for host in fleet.values():
                    host.apply(("mark", decision.release.with_status(decision.fails_as)))
            return fleet, put_back
    for host_name in decision.hosts:
        for step in decide.finish_steps(decision, host_name, Recorder(), placed=fleet[host_name].current):
            fleet[host_name].apply(step)
    return fleet, put_back


def after(fleet, keep):
    """The snapshot of the fleet in memory after a run (as the next task reads it)."""
    return FleetSnapshot.of({name: state(host.current, *host.releases.values()) for name, host in fleet.items()},
                            keep)


@st.composite
def runs(draw):
    states = draw(fleet_states())
    keep = draw(st.integers(1, 4))
    snapshot = FleetSnapshot.of(states, keep)
    names = list(states)
    waves = tuple(divide_into_waves(names, draw(st.integers(0, 2)), draw(st.integers(1, 3))))
    failing = frozenset(draw(st.sets(st.sampled_from(names))))
    abort_at = draw(st.sampled_from([None, None, *range(len(waves))]))
    return states, snapshot, waves, failing, abort_at


@settings(max_examples=150, deadline=None)
@given(runs(), st.sampled_from(["new", "resumed"]))
def test_a_deploy_does_what_its_plan_said(drawn, how):
    states, snapshot, waves, failing, abort_at = drawn
    try:
        chosen = decide.choose_release(snapshot, "d" * 40, "main", "me", NOW, resume=how == "resumed")
    except PreflightError:
        return
    decision = decide.decide_deploy(snapshot, chosen.meta, waves, NOW)
    shown = plans.from_decision(decision).to_dict()
    fleet, put_back = run(decision, states, failing, abort_at)
    release = chosen.meta.name
    for host_name, host in fleet.items():
        planned = shown["hosts"][host_name]
        before = set(states[host_name].releases)
        swaps = [what for kind, what in host.events if kind == "swap"]
        deleted = [what for kind, what in host.events if kind == "delete"]
        if abort_at is not None:
            # Nothing deleted; every host that swapped is back where the plan said.
            assert deleted == [] and set(host.releases) == before | {release}
            if swaps:
                assert swaps[0] == planned["goes_to"] and host.current == planned["back_to"]
            else:
                assert host.current == states[host_name].current
            assert host.releases[release].status == rel.FAILED
            continue
        assert swaps == ([planned["goes_to"], planned["back_to"]] if host_name in put_back else [planned["goes_to"]])
        doomed = decision.hosts[host_name].deletes_if_put_back if host_name in put_back else planned["deletes"]
        assert deleted == [tuple(doomed)]
        assert set(host.releases) == (before | {release}) - set(doomed)
        assert host.current == (planned["back_to"] if host_name in put_back else release)
        if release not in doomed:  # a host put back may delete it (its cleanup counts what it runs)
            assert host.releases[release].status == rel.GOOD
    if abort_at is None and not put_back:
        then = after(fleet, snapshot.keep_releases)
        assert then.agreed_current() == release
        # The release rollback went to before is still there, on every host...
        assert then.fleet_rollback_target(release) == snapshot.fleet_rollback_target(release)
        # ...and the deploy's cleanup left clean_releases nothing to delete.
        assert all(not host.deletes for host in decide.decide_cleanup(then, NOW).hosts.values())


@settings(max_examples=150, deadline=None)
@given(runs(), st.booleans())
def test_a_rollback_does_what_its_plan_said(drawn, named):
    states, snapshot, waves, failing, abort_at = drawn
    wanted = max((r for s in states.values() for r in s.releases), default=None) if named else None
    try:
        decision = decide.decide_rollback(snapshot, waves, wanted)
    except PreflightError:
        return
    shown = plans.from_decision(decision).to_dict()
    fleet, put_back = run(decision, states, failing, abort_at)
    target = decision.release.name
    for host_name, host in fleet.items():
        planned = shown["hosts"][host_name]
        swaps = [what for kind, what in host.events if kind == "swap"]
        assert set(host.releases) == set(states[host_name].releases)  # a rollback deletes nothing
        assert not [step for step in host.events if step[0] == "delete"]
        if abort_at is not None:
            assert host.current == (planned["back_to"] if swaps else states[host_name].current)
            assert host.releases == states[host_name].releases  # nothing marked
            continue
        assert swaps == ([target, planned["back_to"]] if host_name in put_back else [target])
        assert [what for kind, what in host.events if kind == "mark"] == list(decision.hosts[host_name].marks)
        assert host.releases[target].status == rel.GOOD
        left = snapshot.newer_than(target).get(host_name)
        if left:
            assert host.releases[left.name].status == rel.ROLLED_BACK
    if abort_at is None and not put_back:
        then = after(fleet, snapshot.keep_releases)
        assert then.agreed_current() == target
        assert then.would_roll_back_to() is None or then.would_roll_back_to() < target


@settings(max_examples=200, deadline=None)
@given(fleet_states(), st.integers(1, 4))
def test_clean_releases_deletes_what_its_plan_said_and_a_second_run_nothing(states, keep):
    snapshot = FleetSnapshot.of(states, keep)
    decision = decide.decide_cleanup(snapshot, NOW)
    shown = plans.from_decision(decision).to_dict()
    fleet = {host_name: FakeHost(s.current, dict(s.releases)) for host_name, s in states.items()}
    for host_name, host in fleet.items():
        host.apply(("delete", tuple(shown["hosts"][host_name]["deletes"])))
        assert set(host.releases) == set(states[host_name].releases) - set(shown["hosts"][host_name]["deletes"])
    again = decide.decide_cleanup(after(fleet, keep), NOW)
    if snapshot.agreed_current() is not None:
        assert all(not host.deletes for host in again.hosts.values())


def test_the_cleanup_plan_is_the_decision():
    class Fleet:  # what plan.for_cleanup reads of an open fleet
        env = type("Env", (), {"keep_releases": 1})
        states = {"a": state(name(3), (name(1), rel.GOOD), (name(2), rel.GOOD), (name(3), rel.GOOD)),
                  "b": state(name(3), (name(2), rel.FAILED), (name(3), rel.GOOD))}

        @staticmethod
        def each(step, action, quiet=False):
            return {}  # no host facts: no lock warnings

    decided = decide.decide_cleanup(FleetSnapshot.of(Fleet.states, 1), NOW)
    shown = plans.for_cleanup(Fleet, decided).to_dict()
    assert {host: plan["deletes"] for host, plan in shown["hosts"].items()} == {
        host: list(decision.deletes) for host, decision in decided.hosts.items()} == {"a": [name(1)], "b": [name(2)]}
