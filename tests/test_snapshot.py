"""The fleet snapshot: each question the tasks ask, answered from one reading."""
import datetime as dt

import pytest
from hypothesis import given, settings, strategies as st

from fab import releases as rel
from fab.errors import PreflightError
from fab.operations.state import HostState
from fab.paths import Paths
from fab.snapshot import (
    FleetSnapshot, Target, passed_over_warnings, reloads_in_place, unfinished_current_warning,
)

NOW = dt.datetime(2026, 11, 22, 3, 0, 0, tzinfo=dt.timezone.utc)
LATER = (NOW + dt.timedelta(days=2)).isoformat()


def name(day, second=0):
    return f"2026-11-{day:02d}_00.00.{second:02d}"


def meta(release, status=rel.GOOD, commit="c" * 40, keep=None, private=False, ports=()):
    return rel.ReleaseMeta(release, commit, "main", "me", NOW.isoformat(), status, keep, private=private, ports=ports)


def found(release, status=rel.GOOD, **fields):
    if status == rel.UNREADABLE:
        return rel.HostRelease(release, unreadable="metadata is not JSON")
    if status is None:
        return rel.HostRelease(release)
    return rel.HostRelease(release, meta(release, status, **fields))


def state(current, *releases, venvs=None, configs=None, steps=None):
    """A HostState with `releases` (HostRelease, or (name, status) pairs)."""
    listed = [r if isinstance(r, rel.HostRelease) else found(*r) for r in releases]
    return HostState("/home/deploy", Paths("/home/deploy/www"), current=current,
                     releases={r.name: r for r in listed}, steps=steps or {}, venvs=venvs or {},
                     configs=configs or {})


def fleet(keep=None, **states):
    return FleetSnapshot.of(states, keep)


def test_the_snapshot_is_a_copy_later_changes_to_the_states_do_not_reach():
    a = state(name(2), (name(1), rel.GOOD), (name(2), rel.GOOD))
    snapshot = fleet(a=a)
    a.current = name(1)
    a.releases[name(3)] = found(name(3))
    a.steps.setdefault(name(2), set()).add("code")
    assert snapshot.current("a") == name(2)
    assert snapshot.release("a", name(3)) is None and not snapshot.anywhere(name(3))
    assert snapshot.steps_done("a", name(2)) == frozenset()
    with pytest.raises(TypeError):
        snapshot.hosts["b"] = a


@pytest.mark.parametrize("currents,agreed,drift", [
    ({"a": name(1), "b": name(1)}, name(1), None),
    ({"a": name(1), "b": name(2)}, None, f"b has {name(2)} where a has {name(1)}"),
    ({"a": None, "b": None}, None, None),
    ({"a": name(1), "b": None}, None, f"b has none where a has {name(1)}"),
])
def test_currents_agreement_and_drift(currents, agreed, drift):
    snapshot = fleet(**{host: state(current, *([(current, rel.GOOD)] if current else []))
                        for host, current in currents.items()})
    assert snapshot.currents == currents
    assert [snapshot.current(host) for host in currents] == list(currents.values())
    assert snapshot.agreed_current() == agreed
    assert snapshot.drift() == drift


def test_live_is_the_agreed_current_with_its_metadata():
    both = fleet(a=state(name(1), (name(1), rel.GOOD)), b=state(name(1), (name(1), rel.GOOD)))
    assert both.live() == (name(1), meta(name(1)))
    with pytest.raises(PreflightError, match="disagree on the current release"):
        fleet(a=state(name(1), (name(1), rel.GOOD)), b=state(name(2), (name(2), rel.GOOD))).live()
    with pytest.raises(PreflightError, match="no current release on b"):
        fleet(a=state(name(1), (name(1), rel.GOOD)), b=state(None)).live()
    with pytest.raises(PreflightError, match=f"current release {name(1)} has no readable metadata on b"):
        fleet(a=state(name(1), (name(1), rel.GOOD)), b=state(name(1), (name(1), rel.UNREADABLE))).live()


def test_live_commit_says_when_hosts_run_different_commits():
    one = fleet(a=state(name(1), (name(1), rel.GOOD)), b=state(name(1), (name(1), rel.GOOD)))
    assert one.live_commit() == ("c" * 40, None)
    other = fleet(a=state(name(1), (name(1), rel.GOOD)), b=state(name(2), found(name(2), commit="d" * 40)))
    commit, drift = other.live_commit()
    assert commit is None and drift == f"b has {'d' * 40} where a has {'c' * 40}"
    assert fleet(a=state(None)).live_commit() == (None, None)


def test_new_release_name_collides_with_no_release_on_any_host():
    taken = rel.new_release_name(NOW)
    snapshot = fleet(a=state(None), b=state(None, (taken, rel.FAILED)))
    assert snapshot.new_release_name(NOW) == f"{taken}-1"
    assert fleet(a=state(None)).new_release_name(NOW) == taken


def test_release_to_resume_is_the_newest_unfinished_newer_than_current():
    snapshot = fleet(a=state(name(1), (name(1), rel.GOOD), (name(2), rel.FAILED)),
                     b=state(name(1), (name(1), rel.GOOD), (name(2), rel.BUILDING)))
    resumed = snapshot.release_to_resume()
    assert (resumed.name, resumed.status) == (name(2), rel.BUILDING)
    with pytest.raises(PreflightError, match="nothing to resume"):
        fleet(a=state(name(1), (name(1), rel.GOOD))).release_to_resume()
    with pytest.raises(PreflightError, match=f"cannot resume release {name(2)}: .* unreadable on b"):
        fleet(a=state(name(1), (name(1), rel.GOOD), (name(2), rel.FAILED)),
              b=state(name(1), (name(1), rel.GOOD), (name(2), rel.UNREADABLE))).release_to_resume()


@pytest.mark.parametrize("b_has,commit,expected", [
    ((name(2), rel.PREPARED), "c" * 40, name(2)),
    ((name(2), rel.PREPARED), "d" * 40, None),  # prepared for another commit
    ((name(2), rel.FAILED), "c" * 40, None),  # not prepared on every host
    ((name(3), rel.GOOD), "c" * 40, None),
])
def test_prepared_for_a_commit(b_has, commit, expected):
    snapshot = fleet(a=state(name(1), (name(1), rel.GOOD), (name(2), rel.PREPARED)),
                     b=state(name(1), (name(1), rel.GOOD), b_has))
    prepared = snapshot.prepared_for(commit)
    assert (prepared.name if prepared else None) == expected
    assert prepared is None or prepared.status == rel.BUILDING


def test_releases_marks_exactly_what_rollback_picks_and_none_where_it_refuses():
    # 2 is good on a only: rollback from 3 passes over it to 1, and says so.
    snapshot = fleet(a=state(name(3), (name(1), rel.GOOD), (name(2), rel.GOOD), (name(3), rel.GOOD)),
                     b=state(name(3), (name(1), rel.GOOD), (name(3), rel.GOOD)),
                     c=state(name(3), (name(1), rel.GOOD), (name(2), rel.FAILED), (name(3), rel.GOOD)))
    assert snapshot.rollback_target() == snapshot.would_roll_back_to() == name(1)
    assert {snapshot.listing(host)["rollback_target"] for host in "abc"} == {name(1)}
    assert snapshot.passed_over(name(1)) == {name(2): {"b": "missing", "c": rel.FAILED}}
    assert passed_over_warnings(name(1), snapshot.passed_over(name(1))) == [
        f"rollback passes over {name(2)} (failed on c; missing on b): it goes to {name(1)}, good on every host"]
    # Only a has an older good release: rollback refuses, so nothing is marked (a's own
    # previous good release used to be, and `rollback` then refused it).
    refused = fleet(a=state(name(3), (name(2), rel.GOOD), (name(3), rel.GOOD)),
                    b=state(name(3), (name(3), rel.GOOD)))
    with pytest.raises(PreflightError, match="no good release older than .* on b"):
        refused.rollback_target()
    assert refused.would_roll_back_to() is None
    assert refused.listing("a")["rollback_target"] is None
    # Hosts that disagree: rollback refuses without a name, so nothing is marked.
    drifted = fleet(a=state(name(3), (name(1), rel.GOOD), (name(3), rel.GOOD)),
                    b=state(name(1), (name(1), rel.GOOD), (name(3), rel.GOOD)))
    assert drifted.would_roll_back_to() is None
    assert drifted.rollback_target(name(3)) == name(3)
    assert drifted.passed_over(name(1)) == {}


def test_nothing_passed_over_says_nothing():
    snapshot = fleet(a=state(name(2), (name(1), rel.GOOD), (name(2), rel.GOOD)))
    assert snapshot.passed_over(name(1)) == {}
    assert passed_over_warnings(name(1), {}) == []


def test_newer_than_is_what_a_rollback_leaves():
    snapshot = fleet(a=state(name(3), (name(1), rel.GOOD), (name(3), rel.GOOD)),
                     b=state(name(1), (name(1), rel.GOOD)),
                     c=state(name(3), (name(1), rel.GOOD), (name(3), rel.UNREADABLE)),
                     d=state(None))
    assert snapshot.newer_than(name(1)) == {"a": found(name(3))}


def test_put_back_targets_and_the_warning_for_an_unfinished_current():
    snapshot = fleet(a=state(name(2), (name(1), rel.GOOD), found(name(2), ports=(("web", 8000),))),
                     b=state(name(2), (name(1), rel.GOOD), (name(2), rel.BUILDING)),
                     c=state(None),
                     d=state(name(2), (name(2), None)))
    assert snapshot.put_back_targets() == {
        "a": Target(name(2), "c" * 40, (("web", 8000),)), "b": Target(name(1), "c" * 40),
        "c": Target(None), "d": Target(None)}
    assert snapshot.put_back_warnings() == {"b": unfinished_current_warning(name(2), name(1)),
                                            "d": unfinished_current_warning(name(2), None)}
    assert "no release is what a failure puts back" in snapshot.put_back_warnings()["d"]
    paused = fleet(a=state(name(2), (name(1), rel.GOOD), (name(2), rel.PAUSED)))
    assert paused.live_paused(name(2)) == ["a"] and paused.live_paused(name(1)) == []
    assert paused.put_back_warnings() == {"a": f"current release {name(2)} is paused (live as the canary); "
                                               f"{name(1)} is what a failure puts back"}


def test_cleanup_before_and_after_a_release_goes_live():
    releases = [(name(1), rel.GOOD), (name(2), rel.GOOD), (name(3), rel.GOOD), (name(4), rel.FAILED)]
    snapshot = fleet(keep=2, a=state(name(3), *releases), b=state(name(3), *releases))
    # 2: the rollback target; 4: what a resume would continue.
    assert snapshot.cleanup_deletes("a", NOW) == [name(1)]
    new = meta(name(5), rel.BUILDING)
    assert snapshot.cleanup_deletes("a", NOW, after_going_live=new) == [name(1), name(2), name(4)]
    # A host put back on 3: its current stays, the new release (marked good) counts as good.
    assert snapshot.cleanup_deletes("a", NOW, after_going_live=new, running=name(3)) == [name(1)]
    with pytest.raises(ValueError, match="keep_releases"):
        fleet(a=state(None)).cleanup_deletes("a", NOW)


def test_cleanup_keeps_the_fleet_rollback_target_beside_the_hosts_own():
    # 2 was deployed to a alone (a limited deploy); 1 is where rollback takes the fleet.
    snapshot = fleet(keep=1, a=state(name(3), (name(1), rel.GOOD), (name(2), rel.GOOD), (name(3), rel.GOOD)),
                     b=state(name(3), (name(1), rel.GOOD), (name(3), rel.GOOD)))
    assert snapshot.fleet_rollback_target(name(3)) == name(1)
    assert snapshot.cleanup_deletes("a", NOW) == []
    # Once 4 is live everywhere, 3 is where rollback goes: 1 and 2 go.
    assert snapshot.cleanup_deletes("a", NOW, after_going_live=meta(name(4))) == [name(1), name(2)]


RELOAD = frozenset({"web", "api"})
SAME = {"r1": "v1", "r2": "v1"}
DIGESTS = {"r1": {"web": "d1", "api": "d2"}, "r2": {"web": "d1", "api": "d9"}}


@pytest.mark.parametrize("reloadable,running,target,venvs,configs,expected", [
    (RELOAD, "r1", "r2", SAME, DIGESTS, {"web"}),  # api's config changed: it restarts
    (RELOAD, "r1", "r2", {"r1": "v1", "r2": "v2"}, DIGESTS, set()),  # another venv: all restart
    (RELOAD, "r1", "r2", {"r2": "v1"}, DIGESTS, set()),  # running venv unknown
    (RELOAD, "r1", "r2", {"r1": "v1"}, DIGESTS, set()),  # target venv unknown
    (RELOAD, None, "r2", SAME, DIGESTS, set()),  # what runs is unknown (a swap cut short)
    (RELOAD, "r1", None, SAME, DIGESTS, set()),  # going to no release
    (RELOAD, "r1", "r2", SAME, {"r2": DIGESTS["r2"]}, set()),  # running configs unknown
    (RELOAD, "r1", "r2", SAME, {"r1": DIGESTS["r1"], "r2": {"api": "d2"}}, {"api"}),  # web not in target
    (frozenset(), "r1", "r2", SAME, DIGESTS, set()),  # no `restart: reload` service
    (frozenset({"web"}), "r1", "r1", SAME, DIGESTS, {"web"}),  # the same release, reloaded
])
def test_reload_in_place_only_when_venv_and_config_are_unchanged(reloadable, running, target, venvs, configs,
                                                                  expected):
    assert reloads_in_place(reloadable, running, target, venvs, configs) == expected


def test_the_snapshots_reload_decision_adds_what_the_task_built():
    snapshot = fleet(a=state(name(1), (name(1), rel.GOOD), venvs={name(1): "ab" * 8},
                             configs={name(1): {"web": "cd" * 8}}))
    assert snapshot.reloads_in_place("a", {"web"}, name(1), name(2)) == frozenset()
    assert snapshot.reloads_in_place("a", {"web"}, name(1), name(2), venv_keys={name(2): "ab" * 8},
                                     config_digests={name(2): {"web": "cd" * 8}}) == {"web"}


# --- properties over random fleets ------------------------------------------------

POOL = [name(day) for day in range(1, 9)]
STATUSES = [rel.GOOD, rel.GOOD, rel.FAILED, rel.ROLLED_BACK, rel.BUILDING, rel.PRIVATE, rel.INTERRUPTED,
            rel.PREPARED, rel.UNREADABLE, None]


@st.composite
def host_states(draw):
    chosen = draw(st.lists(st.sampled_from(POOL), unique=True, max_size=len(POOL)))
    listed = []
    for release in sorted(chosen):
        status = draw(st.sampled_from(STATUSES))
        keep = LATER if status not in (rel.UNREADABLE, None) and draw(st.booleans()) and draw(st.booleans()) else None
        listed.append(found(release, status) if keep is None else found(release, status, keep=keep))
    current = draw(st.sampled_from([None, *sorted(chosen)])) if chosen else None
    return state(current, *listed)


@st.composite
def fleet_states(draw, max_hosts=4):
    """{host: HostState} of a random fleet: half of them agree on current."""
    count = draw(st.integers(1, max_hosts))
    states = {f"h{i}": draw(host_states()) for i in range(count)}
    if draw(st.booleans()):
        shared = draw(st.sampled_from(POOL))
        for host_state in states.values():
            host_state.releases.setdefault(shared, found(shared))
            host_state.current = shared
    return states


@st.composite
def fleets(draw):
    return FleetSnapshot.of(draw(fleet_states()), draw(st.integers(1, 4)))


def test_a_release_kept_on_one_host_stays_there_when_the_task_s_record_of_it_says_no_keep():
    """The release a task resumes has its record from one host; another host that keeps
    it (keep_until: a setup_release that reached only that host) still keeps it once
    the resume failed and put that host back (found by the property test below)."""
    kept = name(6)
    snapshot = FleetSnapshot.of({
        "h0": state(None, found(kept, rel.FAILED)),
        "h1": state(kept, *[(name(day), rel.GOOD) for day in range(1, 6)], found(kept, rel.FAILED, keep=LATER),
                    *[(name(day), rel.GOOD) for day in (7, 8)]),
    }, 1)
    after = meta(kept, rel.FAILED)  # as h0 has it
    assert kept not in snapshot.cleanup_deletes("h1", NOW, after_going_live=after, running=name(5))


@settings(max_examples=200, deadline=None)
@given(fleets(), st.sampled_from([None, "new", "resumed"]))
def test_cleanup_never_deletes_what_must_stay(snapshot, going_live):
    """Cleanup keeps each host's current, the release a failure puts back there, the
    fleet's rollback target and every protected or unreadable release: as
    clean_releases finds the host, and once a new (or resumed) release went live
    there (or the host was put back on its previous release)."""
    after = None
    if going_live == "new":
        after = meta(snapshot.new_release_name(NOW), rel.BUILDING)
    elif going_live == "resumed":
        try:
            after = snapshot.release_to_resume()
        except PreflightError:
            return
    fleet_target = snapshot.fleet_rollback_target(after.name if after else snapshot.agreed_current())
    for host in snapshot.names:
        put_back = snapshot.put_back_release(host)
        cases = [(snapshot.cleanup_deletes(host, NOW), {snapshot.current(host), put_back})]
        if after:
            cases = [(snapshot.cleanup_deletes(host, NOW, after_going_live=after), {after.name}),
                     (snapshot.cleanup_deletes(host, NOW, after_going_live=after, running=put_back),
                      {put_back if put_back else after.name})]
        for doomed, kept in cases:
            assert not (kept | {fleet_target}) & set(doomed)
            for release in snapshot.releases(host):
                if release.status == rel.UNREADABLE or (release.meta and release.meta.protected_at(NOW)):
                    assert release.name not in doomed
            assert doomed == sorted(doomed)
            # What it deletes is there: read with the host, or the release this task put there.
            assert set(doomed) <= {r.name for r in snapshot.releases(host)} | ({after.name} if after else set())
        if after is None:
            assert snapshot.would_roll_back_to() not in cases[0][0]


@settings(max_examples=200, deadline=None)
@given(fleets())
def test_the_rollback_target_is_good_with_metadata_on_every_host_and_what_releases_marks(snapshot):
    target = snapshot.would_roll_back_to()
    marked = {snapshot.listing(host)["rollback_target"] for host in snapshot.names}
    assert marked == {target}
    if target is None:
        with pytest.raises(PreflightError):
            snapshot.rollback_target()
        return
    current = snapshot.agreed_current()
    assert current is not None and target < current
    for host in snapshot.names:
        found_there = snapshot.release(host, target)
        assert found_there and found_there.meta and found_there.status == rel.GOOD
    for release, lacking in snapshot.passed_over(target).items():
        assert target < release < current
        assert lacking and all(snapshot.release(h, release) is None or snapshot.release(h, release).status != rel.GOOD
                               for h in lacking)
    assert len(passed_over_warnings(target, snapshot.passed_over(target))) == len(snapshot.passed_over(target))


@settings(max_examples=200, deadline=None)
@given(fleets(), st.sampled_from(POOL))
def test_a_named_rollback_target_is_complete_on_every_host(snapshot, wanted):
    try:
        target = snapshot.rollback_target(wanted)
    except PreflightError:
        return
    assert target == wanted
    for host in snapshot.names:
        assert snapshot.release(host, target).meta and snapshot.release(host, target).status in rel.COMPLETE


@settings(max_examples=200, deadline=None)
@given(fleets())
def test_a_put_back_release_is_the_current_or_a_good_one(snapshot):
    targets = snapshot.put_back_targets()
    warned = snapshot.put_back_warnings()
    for host in snapshot.names:
        back = targets[host].release
        assert (host in warned) == (back != snapshot.current(host))
        if back != snapshot.current(host):
            assert snapshot.release(host, back).status == rel.GOOD if back else True


@given(st.sets(st.sampled_from(["web", "api", "celery"])), st.sampled_from([None, "r1", "r2"]),
       st.sampled_from([None, "r1", "r2"]),
       st.dictionaries(st.sampled_from(["r1", "r2"]), st.sampled_from(["v1", "v2"])),
       st.dictionaries(st.sampled_from(["r1", "r2"]),
                       st.dictionaries(st.sampled_from(["web", "api", "celery"]), st.sampled_from(["d1", "d2"]))))
def test_a_reload_needs_the_same_venv_and_config_on_both_sides(reloadable, running, target, venvs, configs):
    reloads = reloads_in_place(reloadable, running, target, venvs, configs)
    assert reloads <= reloadable
    for program in reloads:
        assert venvs[running] == venvs[target]
        assert configs[running][program] == configs[target][program]


@pytest.mark.parametrize("venvs,expected", [
    ({}, {"cache"}),  # no venv on either side (a host that runs no app code)
    ({"r1": "v1", "r2": "v2"}, {"cache"}),  # another venv: what runs app code restarts
    (SAME, {"web", "cache"}),
])
def test_a_program_that_runs_no_app_code_reloads_whatever_the_venv(venvs, expected):
    configs = {"r1": {"web": "d1", "cache": "d3"}, "r2": {"web": "d1", "cache": "d3"}}
    assert reloads_in_place({"web", "cache"}, "r1", "r2", venvs, configs, venv_free={"cache"}) == expected
    changed = {**configs, "r2": {"web": "d1", "cache": "d4"}}
    assert "cache" not in reloads_in_place({"web", "cache"}, "r1", "r2", venvs, changed, venv_free={"cache"})
