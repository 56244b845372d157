"""fab.operations.supervisor's pure parts: whether applying service configs changes
anything, and how the restart's result line reads."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fab.operations import supervisor
from fab.operations.state import config_digest

WEB = "[program:prod-web]\ncommand=gunicorn\n"
PROXY = "events {}\n"
PORTS = {"web": 8000, "proxy": 8080}


def recorded(**hosts):
    return {name: {program: config_digest(text) for program, text in configs.items()}
            for name, configs in hosts.items()}


@pytest.mark.parametrize("rendered,ports,expected", [
    ({"web1": {"prod-web": WEB}, "proxy1": {"prod-proxy": PROXY}, "db1": {}}, PORTS, True),
    ({"web1": {"prod-web": WEB + "environment=X=1\n"}, "proxy1": {"prod-proxy": PROXY}, "db1": {}}, PORTS, False),
    ({"web1": {"prod-web": WEB}, "proxy1": {"prod-proxy": "events { }\n"}, "db1": {}}, PORTS, False),  # a port service
    ({"web1": {"prod-web": WEB, "prod-pillow": WEB}, "proxy1": {"prod-proxy": PROXY}, "db1": {}}, PORTS, False),
    ({"web1": {}, "proxy1": {"prod-proxy": PROXY}, "db1": {}}, PORTS, False),  # a program removed
    ({"web1": {"prod-web": WEB}, "proxy1": {"prod-proxy": PROXY}, "db1": {}}, {"web": 8001, "proxy": 8080}, False),
])
def test_nothing_to_apply_only_when_every_host_has_these_configs_and_ports(rendered, ports, expected):
    on_hosts = recorded(web1={"prod-web": WEB}, proxy1={"prod-proxy": PROXY}, db1={})
    assert supervisor.nothing_to_apply(on_hosts, rendered, tuple(sorted(PORTS.items())), ports) is expected


def test_a_release_that_recorded_no_ports_applies_once():
    on_hosts = recorded(web1={"prod-web": WEB})
    assert not supervisor.nothing_to_apply(on_hosts, {"web1": {"prod-web": WEB}}, (), PORTS)


programs = st.dictionaries(st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True), st.text(max_size=30), max_size=4)
fleets = st.dictionaries(st.sampled_from(["web1", "web2", "pillow1", "proxy1"]), programs, min_size=1)


@given(fleets, st.data())
def test_configs_equal_to_the_recorded_ones_apply_nothing_and_any_change_applies(rendered, data):
    on_hosts = {name: supervisor.digests(configs) for name, configs in rendered.items()}
    ports = tuple(sorted(PORTS.items()))
    assert supervisor.nothing_to_apply(on_hosts, rendered, ports, PORTS)
    host = data.draw(st.sampled_from(sorted(rendered)))
    changed = dict(rendered, **{host: data.draw(programs.filter(lambda new: new != rendered[host]))})
    assert not supervisor.nothing_to_apply(on_hosts, changed, ports, PORTS)


@pytest.mark.parametrize("line,note", [
    ("running p1 p2", "running: p1, p2"),
    ("running", "running: no programs"),
    ("reloaded p1", "reloaded in place: p1"),
])
def test_the_restart_result_line_in_words(line, note):
    assert supervisor.describe_restart(line) == note


@pytest.mark.parametrize("mode,restart,reloads,action", [
    ("changed", "restart", False, "keep"),
    ("changed", "reload", True, "keep"),
    ("all", "restart", False, "restart"),
    ("all", "reload", False, "restart"),
    ("all", "restart", True, "hup"),
    ("graceful", "reload", False, "hup"),
    ("graceful", "restart", False, "restart"),
])
def test_what_a_program_update_left_alone_gets(mode, restart, reloads, action):
    service = type("Service", (), {"restart": restart})()
    assert supervisor.action_after_update(mode, service, reloads) == action
