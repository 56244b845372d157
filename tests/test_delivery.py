"""Delivery figures (fab.dashboard.delivery) on constructed histories, computed by hand."""
import datetime

import pytest
from hypothesis import given, settings, strategies as st

from fab.dashboard.delivery import figures

DAY = 86400
#: 2026-11-01 00:00:00 UTC: the window in most tests is the 3 days from there.
SINCE = datetime.datetime(2026, 11, 1, tzinfo=datetime.timezone.utc).timestamp()
UNTIL = SINCE + 3 * DAY
NOW = UNTIL + 3600


def op(id_, task, outcome, start, end=None, release=None, previous=None, commit_time=None):
    """An operation summary; times in seconds from SINCE; an operation lasts 60 s unless `end`."""
    started = SINCE + start
    finished = None if outcome == "running" else started + 60 if end is None else SINCE + end
    return {"id": id_, "environment": "production", "task": task, "started_at": started,
            "finished_at": finished, "seconds": None if finished is None else finished - started,
            "outcome": outcome, "release": release, "previous_release": previous,
            "commit_time": None if commit_time is None else SINCE + commit_time}


def deploy(id_, start, outcome="succeeded", release=None, **kw):
    return op(id_, "deploy", outcome, start, release=release or f"r{id_}", **kw)


def rollback(id_, start, left=None, to=None, outcome="succeeded"):
    return op(id_, "rollback", outcome, start, release=to, previous=left)


def test_no_operations():
    result = figures([], SINCE, UNTIL, NOW)
    assert result["deploys"] == 0 and result["deploys_per_day"] == 0.0
    assert result["change_failure_rate"] is None
    assert result["time_to_restore"] == {"median": None, "mean": None, "count": 0, "incidents": [],
                                         "unrestored": []}
    assert result["lead_time"] == {"median": None, "mean": None, "count": 0}
    assert result["window"] == {"since": SINCE, "until": UNTIL, "days": 3.0}
    assert result["per_day"] == [{"day": "2026-11-01", "deploys": 0, "failed": 0},
                                 {"day": "2026-11-02", "deploys": 0, "failed": 0},
                                 {"day": "2026-11-03", "deploys": 0, "failed": 0}]


def test_an_empty_window_has_no_days():
    result = figures([deploy(1, 0)], SINCE, SINCE, NOW)
    assert (result["deploys"], result["deploys_per_day"], result["per_day"]) == (0, 0.0, [])


def test_deploys_and_hotfixes_count_other_tasks_do_not():
    ops = [deploy(1, 100), op(2, "hotfix_deploy", "succeeded", 200, release="r1"), deploy(3, DAY + 5),
           op(4, "restart_services", "succeeded", 300), op(5, "setup_release", "succeeded", 400),
           op(6, "deploy", "refused", 500), rollback(7, DAY + 600, left="r3", to="r1")]
    result = figures(ops, SINCE, UNTIL, NOW)
    assert result["deploys"] == 3
    assert result["deploys_per_day"] == pytest.approx(1.0)
    assert [d["deploys"] for d in result["per_day"]] == [2, 1, 0]


def test_failed_and_interrupted_deploys_are_failures():
    ops = [deploy(1, 0), deploy(2, 1000, "failed"), deploy(3, 2000, "interrupted"), deploy(4, 3000)]
    result = figures(ops, SINCE, UNTIL, NOW)
    assert result["failed"] == [2, 3]
    assert result["change_failure_rate"] == 0.5
    assert result["per_day"][0] == {"day": "2026-11-01", "deploys": 4, "failed": 2}


def test_a_rollback_marks_the_deploy_it_undid_and_restores():
    ops = [deploy(1, 0), deploy(2, 1000), rollback(3, 5000, left="r2", to="r1")]
    result = figures(ops, SINCE, UNTIL, NOW)
    assert result["rolled_back"] == [2] and result["failed"] == []
    assert result["change_failure_rate"] == 0.5
    # from deploy 2's end (1060) to the rollback's end (5060)
    assert result["time_to_restore"]["incidents"] == [{"failed_id": 2, "restored_id": 3, "seconds": 4000.0}]
    assert result["time_to_restore"]["median"] == 4000.0


def test_a_rollback_after_a_failed_deploy_undoes_the_deploy_before_it():
    # the failure put every host back on r1, which the rollback then leaves
    ops = [deploy(1, 0), deploy(2, 1000, "failed"), rollback(3, 2000, left="r1", to="r0")]
    result = figures(ops, SINCE, UNTIL, NOW)
    assert (result["failed"], result["rolled_back"]) == ([2], [1])
    assert result["change_failure_rate"] == 1.0
    # one incident, from deploy 1's end (60) to the rollback's (2060); deploy 2 joined it
    assert result["time_to_restore"]["incidents"] == [{"failed_id": 1, "restored_id": 3, "seconds": 2000.0}]


def test_a_rollback_whose_left_release_differs_marks_nothing():
    ops = [deploy(1, 0), rollback(2, 1000, left="elsewhere", to="r0")]
    assert figures(ops, SINCE, UNTIL, NOW)["rolled_back"] == []


def test_a_rollback_of_a_rollback_marks_nothing_more():
    ops = [deploy(1, 0, release="r1"), deploy(2, 1000), rollback(3, 2000, left="r2", to="r1"),
           rollback(4, 3000, left="r1", to="r2")]
    result = figures(ops, SINCE, UNTIL, NOW)
    assert result["rolled_back"] == [2]
    assert result["time_to_restore"]["incidents"] == [{"failed_id": 2, "restored_id": 3, "seconds": 1000.0}]


def test_a_failed_rollback_neither_marks_nor_restores():
    ops = [deploy(1, 0), rollback(2, 1000, left="r1", to="r0", outcome="failed"), deploy(3, 2000, "failed")]
    result = figures(ops, SINCE, UNTIL, NOW)
    assert result["rolled_back"] == [] and result["failed"] == [3]
    assert result["time_to_restore"]["unrestored"] == [3]


def test_a_rollback_of_a_hotfix_marks_the_hotfix():
    ops = [deploy(1, 0), op(2, "hotfix_deploy", "succeeded", 1000, release="r1", previous="r1"),
           rollback(3, 2000, left="r1", to="r0")]
    assert figures(ops, SINCE, UNTIL, NOW)["rolled_back"] == [2]


def test_consecutive_failures_are_one_incident_restored_by_the_next_good_deploy():
    ops = [deploy(1, 0, "failed"), deploy(2, 1000, "failed"), deploy(3, 2000), deploy(4, 5000, "failed"),
           op(5, "hotfix_deploy", "succeeded", 6000, release="r3")]
    result = figures(ops, SINCE, UNTIL, NOW)
    assert result["time_to_restore"]["incidents"] == [
        {"failed_id": 1, "restored_id": 3, "seconds": 2000.0},
        {"failed_id": 4, "restored_id": 5, "seconds": 1000.0}]
    assert result["time_to_restore"]["median"] == 1500.0
    assert result["time_to_restore"]["mean"] == 1500.0
    assert result["time_to_restore"]["count"] == 2


def test_a_deploy_later_rolled_back_does_not_restore():
    ops = [deploy(1, 0, "failed"), deploy(2, 1000), rollback(3, 3000, left="r2", to="r0")]
    result = figures(ops, SINCE, UNTIL, NOW)
    assert result["time_to_restore"]["incidents"] == [{"failed_id": 1, "restored_id": 3, "seconds": 3000.0}]


def test_only_failures():
    ops = [deploy(1, 0, "failed"), deploy(2, DAY, "interrupted")]
    result = figures(ops, SINCE, UNTIL, NOW)
    assert result["change_failure_rate"] == 1.0
    assert result["time_to_restore"]["count"] == 0 and result["time_to_restore"]["unrestored"] == [1]
    assert result["lead_time"]["count"] == 0


def test_a_failure_at_the_windows_end_not_yet_restored():
    ops = [deploy(1, 0), deploy(2, 3 * DAY - 100, "failed")]
    result = figures(ops, SINCE, UNTIL, NOW)
    assert result["failed"] == [2]
    assert result["time_to_restore"]["incidents"] == [] and result["time_to_restore"]["unrestored"] == [2]


def test_a_restore_after_the_window_counts_for_a_failure_inside_it():
    ops = [deploy(1, 3 * DAY - 100, "failed"), deploy(2, 3 * DAY + 500)]
    result = figures(ops, SINCE, UNTIL, NOW)
    assert result["deploys"] == 1
    assert result["time_to_restore"]["incidents"] == [{"failed_id": 1, "restored_id": 2, "seconds": 600.0}]


def test_running_operations_are_ignored():
    ops = [deploy(1, 0, "running"), rollback(2, 100, left="r0", to="r9", outcome="running"),
           deploy(3, 200, "failed"), deploy(4, 300, "running")]
    result = figures(ops, SINCE, UNTIL, NOW)
    assert result["deploys"] == 1 and result["time_to_restore"]["unrestored"] == [3]


def test_operations_ending_after_now_have_not_ended():
    ops = [deploy(1, 0, end=NOW - SINCE + 10)]
    assert figures(ops, SINCE, UNTIL, NOW)["deploys"] == 0


def test_an_interrupted_row_without_an_end_ends_after_its_seconds():
    interrupted = {**deploy(1, 0, "interrupted"), "finished_at": None, "seconds": 30.0}
    result = figures([interrupted, deploy(2, 1000)], SINCE, UNTIL, NOW)
    assert result["time_to_restore"]["incidents"] == [{"failed_id": 1, "restored_id": 2, "seconds": 1030.0}]


def test_operations_outside_the_window_are_not_counted():
    ops = [deploy(1, -DAY), deploy(2, -100, "failed"), deploy(3, 100), deploy(4, 3 * DAY), deploy(5, 4 * DAY)]
    result = figures(ops, SINCE, UNTIL, NOW + 2 * DAY)
    assert result["deploys"] == 1 and result["failed"] == []
    assert result["time_to_restore"]["incidents"] == []  # deploy 2's failure is not the window's


def test_a_rollback_in_the_window_of_a_deploy_before_it_counts_nothing():
    ops = [deploy(1, -1000), rollback(2, 100, left="r1", to="r0")]
    result = figures(ops, SINCE, UNTIL, NOW)
    assert (result["deploys"], result["rolled_back"], result["change_failure_rate"]) == (0, [], None)


def test_a_paused_deploy_and_its_continuation_are_one_deploy():
    ops = [deploy(1, 0, "paused", release="ra"), deploy(2, 1000, release="ra"),
           deploy(3, 2000, "paused", release="rb")]
    result = figures(ops, SINCE, UNTIL, NOW)
    assert result["deploys"] == 2 and result["change_failure_rate"] == 0.0


def test_a_paused_deploy_given_up_by_a_rollback_is_rolled_back():
    ops = [deploy(1, 0, "paused"), rollback(2, 1000, left=None, to="r0")]  # the hosts differed
    result = figures(ops, SINCE, UNTIL, NOW)
    assert result["rolled_back"] == [1]
    assert result["time_to_restore"]["incidents"] == [{"failed_id": 1, "restored_id": 2, "seconds": 1000.0}]


def test_lead_time_from_commit_to_live():
    ops = [deploy(1, 1000, commit_time=0), deploy(2, 5000, commit_time=3060),  # 1060 s and 2000 s
           deploy(3, 6000), deploy(4, 7000, "failed", commit_time=0),
           op(5, "hotfix_deploy", "succeeded", 8000, release="r2", commit_time=8000)]  # 60 s
    result = figures(ops, SINCE, UNTIL, NOW)
    assert result["lead_time"] == {"median": 1060.0, "mean": pytest.approx((1060 + 2000 + 60) / 3), "count": 3}


def test_a_commit_time_after_the_deploy_counts_as_zero():
    result = figures([deploy(1, 0, commit_time=500)], SINCE, UNTIL, NOW)
    assert result["lead_time"]["median"] == 0.0


@pytest.mark.parametrize("since_hour, until_hour, days", [
    (0, 24, ["2026-11-01"]),
    (12, 36, ["2026-11-01", "2026-11-02"]),
    (23, 24 * 3 + 1, ["2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04"]),
])
def test_per_day_covers_every_utc_day_the_window_touches(since_hour, until_hour, days):
    result = figures([], SINCE + since_hour * 3600, SINCE + until_hour * 3600, NOW)
    assert [d["day"] for d in result["per_day"]] == days


TASKS = st.sampled_from(["deploy", "deploy", "hotfix_deploy", "rollback", "restart_services"])
OUTCOMES = st.sampled_from(["succeeded", "failed", "interrupted", "paused", "refused", "running"])


@st.composite
def histories(draw):
    count = draw(st.integers(0, 30))
    starts = sorted(draw(st.lists(st.integers(-DAY, 4 * DAY), min_size=count, max_size=count)))
    releases = st.sampled_from([None, "r1", "r2", "r3"])
    return [op(i + 1, draw(TASKS), draw(OUTCOMES), start, release=draw(releases), previous=draw(releases),
               commit_time=draw(st.one_of(st.none(), st.integers(-2 * DAY, 4 * DAY))))
            for i, start in enumerate(starts)]


@settings(max_examples=300, deadline=None)
@given(histories())
def test_figures_hold_together_on_any_history(operations):
    result = figures(operations, SINCE, UNTIL, NOW)
    deploys = result["deploys"]
    assert sum(d["deploys"] for d in result["per_day"]) == deploys
    assert sum(d["failed"] for d in result["per_day"]) == len(result["failed"]) + len(result["rolled_back"])
    assert not set(result["failed"]) & set(result["rolled_back"])
    rate = result["change_failure_rate"]
    assert (rate is None) == (deploys == 0)
    assert rate is None or 0.0 <= rate <= 1.0
    assert result["deploys_per_day"] == pytest.approx(deploys / 3)
    restore = result["time_to_restore"]
    assert restore["count"] == len(restore["incidents"])
    assert all(i["seconds"] >= 0 for i in restore["incidents"])
    assert len(restore["unrestored"]) <= 1
    assert result["lead_time"]["count"] <= deploys
    assert all(value is None or value >= 0 for value in (result["lead_time"]["median"], restore["median"]))
    assert figures(list(reversed(operations)), SINCE, UNTIL, NOW) == result  # any order
