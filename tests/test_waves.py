"""The rollout plan: which hosts go live in which wave (pure, no SSH)."""
from hypothesis import given, strategies as st

import pytest

from fab.waves import Wave, continuing_after_pause, describe, failure_budget, parse_size, divide_into_waves


def test_canary_first_then_batches_then_proxies():
    waves = divide_into_waves(["web1", "web2", "web3", "pillow1", "proxy1"], canary=1, batch=2,
                       balanced=["web1", "web2", "web3"], last=["proxy1"])
    assert waves == [
        Wave("canary", ("web1",), canary=True),
        Wave("wave 1", ("web2", "web3")),
        Wave("wave 2", ("pillow1",)),
        Wave("proxies", ("proxy1",)),
    ]
    assert describe(waves) == "canary: web1 | wave 1: web2, web3 | wave 2: pillow1 | proxies: proxy1"


def test_named_canary_and_percentages():
    hosts = [f"web{i}" for i in range(1, 11)]
    waves = divide_into_waves(hosts, canary=["web7"], batch="30%")
    assert waves[0] == Wave("canary", ("web7",), canary=True)
    assert [len(w.hosts) for w in waves[1:]] == [3, 3, 3]


def test_a_count_canary_prefers_hosts_that_serve_traffic():
    waves = divide_into_waves(["pillow1", "web1", "web2"], canary=1, batch=1, balanced=["web1", "web2"])
    assert waves[0].hosts == ("web1",)


def test_no_wave_drains_every_balanced_host():
    waves = divide_into_waves(["web1", "web2"], canary=0, batch="100%", balanced=["web1", "web2"])
    assert [w.hosts for w in waves] == [("web1",), ("web2",)]
    # A lone web host has nothing to stand in for it: it goes alone.
    assert divide_into_waves(["web1"], canary=1, batch=1, balanced=["web1"]) == [Wave("canary", ("web1",), True)]


def test_sizes_and_failure_budget():
    assert parse_size("25%", 10, minimum=1) == 3  # batches round up
    assert parse_size("1%", 10, minimum=1) == 1
    assert failure_budget("25%", 10) == 2  # limits round down
    assert failure_budget(0, 10) == 0
    assert failure_budget(3, 10) == 3


host_names = st.lists(st.sampled_from([f"h{i}" for i in range(40)]), min_size=1, max_size=40, unique=True)


@given(host_names, st.data())
def test_plan_property_every_host_once_canary_first_sizes_respected(hosts, data):
    balanced = data.draw(st.lists(st.sampled_from(hosts), unique=True))
    last = data.draw(st.lists(st.sampled_from(hosts), unique=True, max_size=2))
    canary = data.draw(st.one_of(st.integers(0, 5), st.lists(st.sampled_from(hosts), unique=True, max_size=3)))
    batch = data.draw(st.one_of(st.integers(1, 10), st.sampled_from(["10%", "25%", "50%", "100%"])))
    waves = divide_into_waves(hosts, canary, batch, balanced=balanced, last=last)

    placed = [h for wave in waves for h in wave.hosts]
    assert sorted(placed) == sorted(hosts)  # every host in exactly one wave
    assert all(wave.hosts for wave in waves)
    assert [w for w in waves if w.canary] in ([], [waves[0]])  # the canary, if any, is first
    if last:
        assert set(waves[-1].hosts) == set(last)
    size = parse_size(batch, len(hosts), minimum=1)
    serving = [h for h in balanced if h not in last]
    for wave in waves:
        if not wave.canary and wave.name != "proxies":
            assert len(wave.hosts) <= size
        if len(serving) > 1:
            assert not set(serving) <= set(wave.hosts)  # some balanced host always serves


PAUSED_WAVES = [Wave("canary", ("web1",), canary=True), Wave("wave 1", ("web2", "web3")), Wave("wave 2", ("pillow1",)),
                Wave("proxies", ("proxy1",))]


@pytest.mark.parametrize("live, expected", [
    ([], PAUSED_WAVES),  # nothing live (a failed deploy, or a new one): the waves as they are
    (["web1"], [Wave("canary (live already)", ("web1",), canary=True, live=True), *PAUSED_WAVES[1:]]),
    # the canary setting changed since the pause: what runs the release is checked, the rest goes live
    (["web1", "web3"], [Wave("live already", ("web1", "web3"), canary=True, live=True),
                        Wave("wave 1", ("web2",)), *PAUSED_WAVES[2:]]),
    (["web3"], [Wave("live already", ("web3",), canary=True, live=True), Wave("canary", ("web1",), canary=True),
                Wave("wave 1", ("web2",)), *PAUSED_WAVES[2:]]),
    (["pillow1", "web1"], [Wave("live already", ("web1", "pillow1"), canary=True, live=True), *PAUSED_WAVES[1:2],
                           PAUSED_WAVES[3]]),
])
def test_a_resumed_pause_checks_what_runs_the_release_first_and_goes_live_with_the_rest(live, expected):
    waves = continuing_after_pause(PAUSED_WAVES, live)
    assert waves == expected
    if live:
        assert describe(waves).startswith(f"{waves[0].name}: ")


@given(host_names, st.data())
def test_resuming_a_pause_keeps_every_host_in_exactly_one_wave_and_restarts_none_of_the_live(hosts, data):
    waves = divide_into_waves(hosts, data.draw(st.integers(0, 3)), data.draw(st.integers(1, 5)))
    live = data.draw(st.lists(st.sampled_from(hosts), unique=True))
    resumed = continuing_after_pause(waves, live)
    assert sorted(h for wave in resumed for h in wave.hosts) == sorted(hosts)
    assert all(wave.hosts for wave in resumed)
    assert [set(wave.hosts) for wave in resumed if wave.live] == ([set(live)] if live else [])
    assert not live or resumed[0].live
    going = [h for wave in resumed if not wave.live for h in wave.hosts]
    assert going == [h for wave in waves for h in wave.hosts if h not in live]  # in their order


def test_without_services_every_host_swaps_in_one_wave():
    """Nothing restarts or is health-checked: a canary would prove nothing."""
    assert divide_into_waves(["a", "b", "c"], canary=1, batch=1, services=False) == [Wave("all hosts", ("a", "b", "c"))]
    assert divide_into_waves([], canary=1, batch=1, services=False) == []


def test_a_task_limited_to_some_hosts_drains_them_on_the_proxies_outside_its_list(tmp_path):
    from fab.config import load_environment

    (tmp_path / "prod.yml").write_text("""
app: {repo: /srv/app.git, branch: main}
code_root: ~/www/prod
roles: {webworkers: [web1, web2], pillowtop: [pillow1], proxy: [proxy1, proxy2]}
services:
  web: {role: webworkers, template: supervisor/gunicorn.conf.j2, port: 8000}
  pillow: {role: pillowtop, template: supervisor/pillow.conf.j2}
  proxy: {role: proxy, control: port, port: 8080, template: nginx/proxy.conf.j2, balances: web,
          start: "true", reload: "true"}
""")
    env = load_environment("prod", str(tmp_path))
    assert env.topology.balancers_outside(["web2"]) == ["proxy1", "proxy2"]
    assert env.topology.balancers_outside(["web1", "proxy2"]) == ["proxy1"]
    assert env.topology.balancers_outside(["pillow1"]) == []  # nothing it runs is balanced
