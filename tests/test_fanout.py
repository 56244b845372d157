"""The fan-out plan of a delivery (fab.fanout): which host fetches what from which
source each round."""
import math

import pytest
from hypothesis import given, settings, strategies as st

from fab.fanout import CONTROLLER, after, next_round, rounds, servers_after


def hosts(n):
    return [f"h{i}" for i in range(n)]


def test_the_controller_seeds_one_host_then_holders_serve_at_most_fanout_each():
    needs = {host: ["a"] for host in hosts(10)}
    made = rounds(needs, {}, fanout=2)
    assert made[0] == {"h0": {"a": CONTROLLER}}
    assert made[1] == {"h1": {"a": "h0"}, "h2": {"a": "h0"}}
    assert set(made[2]) == {"h3", "h4", "h5", "h6", "h7", "h8"}
    assert sorted(assigned["a"] for assigned in made[2].values()) == ["h0", "h0", "h1", "h1", "h2", "h2"]
    assert made[3] == {"h9": {"a": "h0"}}


def test_a_small_artifact_goes_from_the_controller_to_every_host_at_once_and_starts_no_server():
    needs = {host: ["bundle", "wheel"] for host in hosts(10)}
    made = rounds(needs, {}, fanout=2, direct={"bundle"})
    assert all(made[0][host]["bundle"] == CONTROLLER for host in hosts(10))
    assert sorted(sha for plan in made for assigned in plan.values() for sha, source in assigned.items()
                  if source == CONTROLLER) == ["bundle"] * 10 + ["wheel"]  # the big one still once
    assert servers_after(made[0], needs, {}) == {"h0"}  # h0 serves the wheel, nobody the bundle
    assert rounds({host: ["bundle"] for host in hosts(10)}, {}, fanout=2, direct={"bundle"}) == [
        {host: {"bundle": CONTROLLER} for host in hosts(10)}]


def test_hosts_that_hold_an_artifact_already_serve_it_and_the_controller_sends_nothing():
    plan = next_round({"h1": ["a"], "h2": ["a", "b"]}, {"a": ["h0"]}, fanout=3)
    assert plan == {"h2": {"b": CONTROLLER, "a": "h0"}, "h1": {"a": "h0"}}


def test_a_receiver_takes_what_it_can_from_a_source_it_already_has():
    plan = next_round({"h2": ["a", "b"]}, {"a": ["h0", "h1"], "b": ["h1"]}, fanout=1)
    assert plan == {"h2": {"a": "h1", "b": "h1"}}


def test_without_peers_every_host_gets_everything_from_the_controller():
    needs = {"h0": ["a", "b"], "h1": ["a"], "h2": []}
    assert next_round(needs, {"a": ["h3"]}, fanout=3, peers=False) == {
        "h0": {"a": CONTROLLER, "b": CONTROLLER}, "h1": {"a": CONTROLLER}}


def test_only_receivers_that_someone_still_needs_serve():
    needs = {host: ["a"] for host in hosts(3)}
    first = next_round(needs, {}, fanout=1)
    assert servers_after(first, needs, {}) == {"h0"}
    needs, holders = after(first, needs, {})
    second = next_round(needs, holders, fanout=1)
    assert second == {"h1": {"a": "h0"}}
    assert servers_after(second, needs, holders) == {"h1"}
    needs, holders = after(second, needs, holders)
    assert servers_after(next_round(needs, holders, fanout=1), needs, holders) == set()


@pytest.mark.parametrize("n, fanout, expected", [(1, 3, 1), (4, 3, 2), (5, 3, 3), (16, 3, 3), (50, 3, 4),
                                                 (200, 3, 5), (50, 1, 7), (2, 1, 2)])
def test_rounds_grow_as_the_log_of_the_fleet(n, fanout, expected):
    assert len(rounds({host: ["a", "b"] for host in hosts(n)}, {}, fanout)) == expected


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 120), fanout=st.integers(1, 6))
def test_one_artifact_set_reaches_every_host_in_log_rounds(n, fanout):
    made = rounds({host: ["a", "b", "c"] for host in hosts(n)}, {}, fanout)
    assert len(made) == 1 + math.ceil(round(math.log(n, fanout + 1), 9))
    controller = [(host, sha) for plan in made for host, assigned in plan.items()
                  for sha, source in assigned.items() if source == CONTROLLER]
    assert controller == [("h0", "a"), ("h0", "b"), ("h0", "c")]  # one copy of each


@settings(max_examples=120, deadline=None)
@given(wants=st.dictionaries(st.sampled_from(hosts(30)), st.sets(st.sampled_from("abcdef"), max_size=6),
                             min_size=1),
       held=st.dictionaries(st.sampled_from("abcdef"), st.sets(st.sampled_from(hosts(30)), max_size=3)),
       fanout=st.integers(1, 5))
def test_every_receiver_is_covered_each_source_bounded_and_sending_only_what_it_holds(wants, held, fanout):
    holders = {sha: sorted(h for h in holding if sha not in wants.get(h, ())) for sha, holding in held.items()}
    needs = {host: sorted(shas) for host, shas in wants.items()}
    got = {host: set() for host in needs}
    current_needs, current_holders = needs, holders
    made = rounds(needs, holders, fanout)
    for plan in made:
        receivers = {}
        for host, assigned in plan.items():
            for sha, source in assigned.items():
                assert sha in current_needs[host]
                if source != CONTROLLER:
                    assert source in current_holders[sha] and source != host
                    receivers.setdefault(source, set()).add(host)
                got[host].add(sha)
        assert all(len(served) <= fanout for served in receivers.values())
        current_needs, current_holders = after(plan, current_needs, current_holders)
    assert got == {host: set(shas) for host, shas in wants.items()}
    # The controller sends only what no host held, each artifact once.
    sent = [sha for plan in made for assigned in plan.values() for sha, s in assigned.items() if s == CONTROLLER]
    assert sorted(sent) == sorted({sha for shas in wants.values() for sha in shas if not holders.get(sha)})
    distinct = len({sha for shas in wants.values() for sha in shas})
    assert len(made) <= 1 + distinct * math.ceil(math.log(len(wants) + 1, fanout + 1))
