"""Pure release decisions: naming, keep_days, what cleanup deletes, rollback target."""
import dataclasses
import datetime as dt

import pytest
from hypothesis import given, strategies as st

from fab.errors import UsageError
from fab.releases import (
    BUILDING, FAILED, GOOD, INTERRUPTED, PRIVATE, ROLLED_BACK, HostRelease, ReleaseMeta, cleanup_deletes,
    disagreement, fallback_release, host_listing, keep_until, new_release_name, parse_keep_days,
    previous_good_release, releases_to_delete, resumable_release, validate_release_name,
)

NOW = dt.datetime(2026, 11, 22, 3, 0, 0, tzinfo=dt.timezone.utc)


def release(name, status=GOOD, keep=None):
    return HostRelease(name, ReleaseMeta(name, "c" * 40, "main", "me", NOW.isoformat(), status, keep))


def name(day, second=0):
    return f"2026-11-{day:02d}_00.00.{second:02d}"


def test_release_name_is_utc_seconds():
    local = NOW.astimezone(dt.timezone(dt.timedelta(hours=5)))
    assert new_release_name(local) == "2026-11-22_03.00.00"


def test_release_name_collision_gets_a_suffix_that_sorts_between():
    first = new_release_name(NOW)
    second = new_release_name(NOW, {first})
    third = new_release_name(NOW, {first, second})
    assert (second, third) == ("2026-11-22_03.00.00-1", "2026-11-22_03.00.00-2")
    following = new_release_name(NOW + dt.timedelta(seconds=1))
    assert sorted([following, third, first, second]) == [first, second, third, following]
    for made in (first, second, third):
        assert validate_release_name(made) == made


@pytest.mark.parametrize("bad", ["../etc", "2026-11-22_03.00.00/..", "", "current", "2026-11-22",
                                 "2026-11-22_03.00.00 ", "/abs", None])
def test_release_names_from_users_are_validated(bad):
    with pytest.raises(UsageError):
        validate_release_name(bad)


@pytest.mark.parametrize("value,days", [("0", 0), ("3", 3), (10, 10), (" 7 ", 7)])
def test_keep_days(value, days):
    assert parse_keep_days(value) == days


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "", "3d"])
def test_keep_days_rejects(value):
    with pytest.raises(UsageError, match="keep_days"):
        parse_keep_days(value)


def test_keep_until():
    assert keep_until(NOW, 0) is None
    assert keep_until(NOW, 2) == "2026-11-24T03:00:00+00:00"


def test_meta_round_trips_through_json():
    meta = ReleaseMeta(name(1), "c" * 40, "main", "me", NOW.isoformat(), PRIVATE, "2026-12-01T00:00:00+00:00",
                       ("abc",), True, (("web", 8000),))
    assert ReleaseMeta.from_json(meta.to_json(), name(1)) == meta
    # Metadata written before a field existed still reads, with its default.
    assert ReleaseMeta.from_json(f'{{"name": "{name(1)}", "commit": "{"c" * 40}", "branch": "b", '
                                 f'"deployed_by": "me", "created_at": "{NOW.isoformat()}"}}', name(1)).private is False
    assert meta.with_status(GOOD).status == GOOD
    with pytest.raises(ValueError):
        meta.with_status("bogus")


def test_cleanup_keeps_newest_good_and_deletes_failed_except_the_one_resume_continues():
    releases = [release(name(d)) for d in range(1, 6)] + [release(name(6), FAILED), release(name(7), FAILED)]
    doomed = releases_to_delete(releases, current=name(5), keep=3, now=NOW)
    assert doomed == [name(1), name(2), name(6)]
    assert resumable_release(releases, name(5)) == name(7)


def test_failed_releases_do_not_push_out_the_last_good_one():
    releases = [release(name(1)), release(name(2))] + [release(name(d), FAILED) for d in range(3, 10)]
    doomed = releases_to_delete(releases, current=name(2), keep=2, now=NOW)
    assert name(1) not in doomed and name(2) not in doomed
    assert set(doomed) == {name(d) for d in range(3, 9)}  # 9: what a resume continues


def test_cleanup_keeps_the_fleets_rollback_target_beside_the_hosts_own():
    # 2 was deployed to this host alone; 1 is what the whole fleet ran before 3.
    releases = [release(name(1)), release(name(2)), release(name(3))]
    assert cleanup_deletes(releases, name(3), keep=1, now=NOW) == [name(1)]
    assert cleanup_deletes(releases, name(3), keep=1, now=NOW, fleet_target=name(1)) == []


def test_cleanup_never_deletes_current_or_rollback_target_even_if_failed():
    releases = [release(name(1)), release(name(2), ROLLED_BACK), release(name(3))]
    doomed = releases_to_delete(releases, current=name(3), keep=1, now=NOW, rollback_target=name(1))
    assert doomed == [name(2)]


def test_clean_releases_keeps_the_release_rollback_would_pick():
    releases = [release(name(1)), release(name(2)), release(name(3), ROLLED_BACK), release(name(4))]
    # keep 1: only current counts, but the previous good release (2) is what rollback picks.
    assert cleanup_deletes(releases, name(4), keep=1, now=NOW) == [name(1), name(3)]


def test_keep_days_protects_until_it_passes():
    later = (NOW + dt.timedelta(days=2)).isoformat()
    releases = [release(name(1), PRIVATE, later), release(name(2)), release(name(3))]
    assert releases_to_delete(releases, current=name(3), keep=1, now=NOW) == [name(2)]
    after = NOW + dt.timedelta(days=3)
    assert releases_to_delete(releases, current=name(3), keep=1, now=after) == [name(1), name(2)]


def test_private_release_without_keep_days_is_not_protected():
    releases = [release(name(1), PRIVATE), release(name(2))]
    assert releases_to_delete(releases, current=name(2), keep=5, now=NOW) == [name(1)]


def test_newest_unfinished_release_is_kept_for_resume():
    releases = [release(name(1)), release(name(2), BUILDING), release(name(3), BUILDING)]
    assert releases_to_delete(releases, current=name(1), keep=3, now=NOW) == [name(2)]


def test_a_dead_deploy_older_than_current_is_neither_resumed_nor_kept():
    # A deploy died (building); a later deploy succeeded: resume has nothing to do,
    # so cleanup must not keep the dead release forever.
    releases = [release(name(1)), release(name(2), BUILDING), release(name(3)), release(name(4), INTERRUPTED)]
    assert resumable_release(releases, current=name(3)) == name(4)
    assert releases_to_delete(releases, current=name(3), keep=3, now=NOW) == [name(2)]
    assert resumable_release(releases[:3], current=name(3)) is None
    assert releases_to_delete(releases[:3], current=name(3), keep=3, now=NOW) == [name(2)]


def test_a_private_release_is_never_what_resume_continues():
    releases = [release(name(1)), release(name(2), FAILED)]
    releases[1] = HostRelease(name(2), dataclasses.replace(releases[1].meta, private=True))
    assert resumable_release(releases, current=name(1)) is None


def test_fallback_is_current_unless_a_dead_deploy_swapped_it():
    releases = [release(name(1)), release(name(2)), release(name(3), BUILDING)]
    assert fallback_release(releases, name(2)) == name(2)
    assert fallback_release(releases, name(3)) == name(2)
    assert fallback_release(releases, None) is None


def test_directory_without_metadata_counts_as_failed():
    releases = [release(name(1)), HostRelease(name(2))]
    assert releases_to_delete(releases, current=name(1), keep=3, now=NOW) == [name(2)]


statuses = st.sampled_from([BUILDING, GOOD, FAILED, ROLLED_BACK, PRIVATE, INTERRUPTED])


@given(
    st.lists(st.tuples(st.integers(1, 28), st.integers(0, 59), statuses, st.integers(-3, 3)),
             min_size=1, max_size=30, unique_by=lambda t: (t[0], t[1])),
    st.integers(1, 5), st.data(),
)
def test_cleanup_property_current_rollback_target_and_protected_survive(history, keep, data):
    releases = [
        release(name(day, sec), status,
                (NOW + dt.timedelta(days=offset)).isoformat() if offset else None)
        for day, sec, status, offset in history
    ]
    current = data.draw(st.sampled_from([r.name for r in releases]))
    target = previous_good_release(releases, current)
    doomed = releases_to_delete(releases, current, keep, NOW, rollback_target=target)
    assert current not in doomed
    assert target not in doomed
    for r in releases:
        if r.meta.protected_at(NOW):
            assert r.name not in doomed
    good_kept = [r for r in releases if r.status == GOOD and r.name not in doomed]
    all_good = [r for r in releases if r.status == GOOD]
    assert len(good_kept) >= min(keep - 1, len(all_good))
    assert doomed == sorted(doomed)
    assert resumable_release(releases, current) not in doomed


def test_previous_good_release():
    releases = [release(name(1)), release(name(2), FAILED), release(name(3), ROLLED_BACK), release(name(4))]
    assert previous_good_release(releases, name(4)) == name(1)
    assert previous_good_release(releases, name(1)) is None
    assert previous_good_release([], None) is None


def test_disagreement():
    assert disagreement({"a": "x", "b": "x"}) is None
    assert disagreement({"b": "y", "a": "x"}) == "b has y where a has x"
    assert disagreement({"w1": "r2", "w2": "r1", "w3": "r2", "p1": None}) == (
        "p1 has none; w2 has r1 where w1, w3 have r2")


from fab.errors import PreflightError  # noqa: E402
from fab.releases import agreed_current, rollback_target  # noqa: E402


def fleet_of(**hosts):
    return {host: [release(n, s) for n, s in found] for host, found in hosts.items()}


def test_rollback_goes_to_previous_good_skipping_failed_and_rolled_back():
    found = [(name(1), GOOD), (name(2), ROLLED_BACK), (name(3), GOOD), (name(4), FAILED), (name(5), GOOD)]
    releases = fleet_of(a=found, b=found)
    assert rollback_target(releases, {"a": name(5), "b": name(5)}) == name(3)
    # After rolling back to 3 (5 is now rolled back), the next rollback goes to 1.
    after = [(n, ROLLED_BACK if n == name(5) else s) for n, s in found]
    assert rollback_target(fleet_of(a=after, b=after), {"a": name(3), "b": name(3)}) == name(1)


def test_a_refused_rollback_names_the_unreadable_release_it_passed_over():
    releases = fleet_of(a=[(name(1), GOOD), (name(2), GOOD)], b=[(name(2), GOOD)])
    releases["b"].insert(0, HostRelease(name(1), unreadable="commit '--output=x' is not 40 hex digits"))
    with pytest.raises(PreflightError, match=rf"on b \({name(1)} unreadable there: see `releases`\): nothing"):
        rollback_target(releases, {"a": name(2), "b": name(2)})


def test_rollback_refuses_when_hosts_differ():
    releases = fleet_of(a=[(name(1), GOOD), (name(2), GOOD)], b=[(name(2), GOOD)])
    with pytest.raises(PreflightError, match=r"no good release older than .* on b"):
        rollback_target(releases, {"a": name(2), "b": name(2)})
    releases = fleet_of(a=[(name(1), GOOD), (name(3), GOOD)], b=[(name(2), GOOD), (name(3), GOOD)])
    with pytest.raises(PreflightError, match="no release older than .* is good on every host: b has .*-02_.* where a has .*-01_"):
        rollback_target(releases, {"a": name(3), "b": name(3)})
    # A release a limited deploy gave one host is passed over: the fleet goes where all were.
    releases = fleet_of(a=[(name(1), GOOD), (name(3), GOOD)], b=[(name(1), GOOD), (name(2), GOOD), (name(3), GOOD)])
    assert rollback_target(releases, {"a": name(3), "b": name(3)}) == name(1)
    with pytest.raises(PreflightError, match="disagree on the current release: .*name it: rollback:release=NAME"):
        rollback_target(releases, {"a": name(3), "b": name(2)})
    with pytest.raises(PreflightError, match="no current release on b"):
        agreed_current({"a": name(3), "b": None})


def test_rollback_to_a_named_release():
    found = [(name(1), GOOD), (name(2), ROLLED_BACK), (name(3), FAILED), (name(4), GOOD)]
    releases = fleet_of(a=found, b=found[1:])
    currents = {"a": name(4), "b": name(4)}
    assert rollback_target(releases, currents, name(2)) == name(2)
    with pytest.raises(PreflightError, match="b: missing"):
        rollback_target(releases, currents, name(1))
    with pytest.raises(PreflightError, match="a: failed; b: failed"):
        rollback_target(releases, currents, name(3))
    with pytest.raises(PreflightError, match="already the current"):
        rollback_target(releases, currents, name(4))
    # Hosts that disagree (a limited or killed deploy) are brought level by naming a release.
    assert rollback_target(releases, {"a": name(4), "b": name(2)}, name(4)) == name(4)


def test_host_listing_marks_current_and_the_rollback_target():
    found = [release(name(3)), release(name(1)), release(name(2), FAILED), HostRelease(name(4))]
    listing = host_listing(found, name(3), rollback_target=name(1))
    assert [r["name"] for r in listing["releases"]] == [name(1), name(2), name(3), name(4)]
    assert (listing["current"], listing["rollback_target"]) == (name(3), name(1))
    # The fleet's rollback target as given (FleetSnapshot.would_roll_back_to), never
    # the host's own previous good release: none where `rollback` would refuse.
    assert host_listing(found, name(3))["rollback_target"] is None
    assert listing["releases"][3] == {"name": name(4), "status": FAILED, "commit": None, "branch": None,
                                      "deployed_by": None, "created_at": None, "keep_until": None, "wheels": None}
    # The wheel set a release's venv was installed from, where it records one.
    with_set = host_listing(found, name(3), wheel_sets={name(3): ("ab" * 8, 7)})
    assert [r["wheels"] for r in with_set["releases"]] == [None, None, {"set": "ab" * 8, "count": 7}, None]
    assert host_listing([], None) == {"current": None, "rollback_target": None, "releases": []}


def test_a_deploy_goes_on_with_the_release_prepared_for_its_commit_on_every_host():
    from fab import releases as rel

    def prepared(name, commit, status=rel.PREPARED):
        return rel.HostRelease(name, rel.ReleaseMeta(name, commit, "main", "me", "t", status=status))

    good = rel.HostRelease("2026-01-01_00.00.00", rel.ReleaseMeta("2026-01-01_00.00.00", "c0", "main", "me", "t",
                                                                 status=rel.GOOD))
    currents = {"web1": good.name, "web2": good.name}
    both = {"web1": [good, prepared("2026-01-02_00.00.00", "c1")], "web2": [good, prepared("2026-01-02_00.00.00", "c1")]}
    assert rel.prepared_release(both, currents, "c1") == "2026-01-02_00.00.00"
    assert rel.prepared_release(both, currents, "c2") is None  # another commit
    one = {"web1": both["web1"], "web2": [good, prepared("2026-01-02_00.00.00", "c1", rel.FAILED)]}
    assert rel.prepared_release(one, currents, "c1") is None  # not prepared everywhere
    older = {"web1": [prepared("2025-12-31_00.00.00", "c1"), good], "web2": [prepared("2025-12-31_00.00.00", "c1"), good]}
    assert rel.prepared_release(older, currents, "c1") is None  # older than current
    assert rel.prepared_release(both, {"web1": None, "web2": None}, "c1") == "2026-01-02_00.00.00"


@pytest.mark.parametrize("web2, hint", [
    # A limited deploy:hosts=web1 that succeeded: nothing to resume; a full deploy levels.
    ([release(name(1))], "a full `deploy`"),
    # A deploy that failed on web2 before its swap: resuming finishes it.
    ([release(name(1)), release(name(2), FAILED)], "deploy:resume=yes"),
])
def test_rollback_refusal_on_hosts_that_disagree_names_what_levels_them(web2, hint):
    from fab.errors import PreflightError
    from fab.releases import rollback_target

    host_releases = {"web1": [release(name(1)), release(name(2))], "web2": web2}
    with pytest.raises(PreflightError) as refused:
        rollback_target(host_releases, {"web1": name(2), "web2": name(1)})
    assert "rollback:release=NAME" in str(refused.value) and hint in str(refused.value)
    other = "deploy:resume=yes" if "full" in hint else "full `deploy`"
    assert other not in str(refused.value)


@pytest.mark.parametrize("task,host,kept", [
    (None, "2026-12-01T00:00:00+00:00", "2026-12-01T00:00:00+00:00"),
    ("2026-12-01T00:00:00+00:00", None, "2026-12-01T00:00:00+00:00"),
    ("2026-11-30T00:00:00+00:00", "2026-11-30T01:00:00+01:00", "2026-11-30T00:00:00+00:00"),  # the same moment
    ("2026-11-30T00:00:00+00:00", "2026-12-01T00:00:00+00:00", "2026-12-01T00:00:00+00:00"),
    ("2026-12-02T00:00:00+00:00", "2026-12-01T00:00:00+00:00", "2026-12-02T00:00:00+00:00"),
    (None, None, None),
])
def test_a_task_s_record_takes_the_later_keep_until_a_host_has(task, host, kept):
    record = release("2026-11-20_00.00.00", keep=task).meta
    own = release("2026-11-20_00.00.00", keep=host).meta
    assert record.with_later_keep_until(own) == dataclasses.replace(record, keep_until=kept)
