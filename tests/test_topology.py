"""Which services, programs and balancers sit on which hosts (fab.topology): on a fixed
environment, then as properties over random ones."""
import pytest
from hypothesis import given, settings, strategies as st

from fab.errors import ConfigError
from fab.settings import Environment
from fab.topology import Topology

SERVICES = {
    "web": {"role": "webworkers", "template": "gunicorn.conf.j2", "port": 8000},
    "api": {"role": "apiworkers", "template": "gunicorn.conf.j2", "port": 8001},
    "pillow": {"role": "pillowtop", "template": "pillow.conf.j2"},
    "legacy": {"role": "webworkers", "control": "port", "port": 9000, "start": "./run"},
    "proxy": {"role": "proxy", "template": "nginx.conf.j2", "port": 8080, "balances": "web"},
    "apiproxy": {"role": "apiproxy", "template": "nginx.conf.j2", "port": 8081, "balances": "api"},
}
ROLES = {
    "webworkers": ["web1", "web2"],
    "apiworkers": ["web2", "api1"],
    "pillowtop": ["pillow1", "web2"],
    "proxy": ["proxy1", "proxy2"],
    "apiproxy": ["proxy2"],
}


def environment(roles=ROLES, services=SERVICES, name="prod"):
    return Environment.model_validate({"name": name, "app": {"repo": "/dev/null"}, "code_root": "/srv/app",
                                       "roles": roles, "services": services})


TOPOLOGY = environment().topology


def test_an_environment_makes_its_topology_once():
    env = environment()
    assert env.topology is env.topology
    assert env.hosts == env.topology.hosts == ["web1", "web2", "api1", "pillow1", "proxy1", "proxy2"]


@pytest.mark.parametrize("host,roles,services,supervised,port_services,balanced", [
    ("web1", ["webworkers"], ["web", "legacy"], ["web"], ["legacy"], ["web"]),
    ("web2", ["webworkers", "apiworkers", "pillowtop"], ["web", "api", "pillow", "legacy"],
     ["web", "api", "pillow"], ["legacy"], ["web", "api"]),
    ("api1", ["apiworkers"], ["api"], ["api"], [], ["api"]),
    ("pillow1", ["pillowtop"], ["pillow"], ["pillow"], [], []),
    ("proxy2", ["proxy", "apiproxy"], ["proxy", "apiproxy"], ["proxy", "apiproxy"], [], []),
    ("nowhere", [], [], [], [], []),
])
def test_what_runs_on_a_host(host, roles, services, supervised, port_services, balanced):
    assert TOPOLOGY.roles_of(host) == roles
    assert sorted(TOPOLOGY.services_on(host)) == sorted(services)
    assert sorted(TOPOLOGY.supervised_on(host)) == sorted(supervised)
    assert sorted(TOPOLOGY.port_services_on(host)) == sorted(port_services)
    assert sorted(TOPOLOGY.balanced_services(host)) == sorted(balanced)


@pytest.mark.parametrize("host,pillows", [("pillow1", ["prod-pillow"]), ("web2", ["prod-pillow"]), ("web1", [])])
def test_pillows_are_the_pillow_roles_programs_on_its_hosts(host, pillows):
    assert TOPOLOGY.pillows_on(host) == pillows


def test_programs_are_named_after_the_environment_and_ports_after_the_services():
    assert TOPOLOGY.program_name("web") == "prod-web"
    assert TOPOLOGY.service_ports() == {"web": 8000, "api": 8001, "legacy": 9000, "proxy": 8080, "apiproxy": 8081}


def test_an_unknown_role_is_one_line_naming_the_known_ones():
    assert TOPOLOGY.hosts_of("proxy") == ["proxy1", "proxy2"]
    with pytest.raises(ConfigError, match=r"^prod: unknown role 'celery' \(roles: apiproxy, apiworkers, pillowtop"):
        TOPOLOGY.hosts_of("celery")


@pytest.mark.parametrize("limited,outside", [
    (["web1"], ["proxy1", "proxy2"]),
    (["api1"], ["proxy2"]),
    (["web1", "proxy2"], ["proxy1"]),
    (["api1", "proxy2"], []),
    (["pillow1"], []),  # nothing it runs is balanced
    (["proxy1"], []),
    (TOPOLOGY.hosts, []),
])
def test_a_limited_task_drains_its_hosts_on_the_proxies_outside_its_list(limited, outside):
    assert TOPOLOGY.balancers_outside(limited) == outside


def test_the_waves_put_balanced_hosts_apart_and_proxies_last():
    hosts = TOPOLOGY.hosts
    assert TOPOLOGY.balanced_hosts(hosts) == ["web1", "web2", "api1"]
    assert TOPOLOGY.balancer_hosts(hosts) == ["proxy1", "proxy2"]
    assert TOPOLOGY.balancer_hosts(["web1", "proxy2"]) == ["proxy2"]


# --- properties over random environments ---------------------------------------------

HOSTS = [f"h{i}" for i in range(6)]


@st.composite
def environments(draw):
    """A valid environment: 1-4 roles over up to 6 hosts; app services with and without
    ports, port-controlled services, and proxies balancing some of the app services."""
    roles = {f"r{i}": draw(st.lists(st.sampled_from(HOSTS), min_size=1, max_size=4, unique=True))
             for i in range(draw(st.integers(1, 4)))}
    role = st.sampled_from(sorted(roles))
    services = {}
    for i in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["app", "worker", "port"]))
        services[f"s{i}"] = ({"role": draw(role), "template": "gunicorn.conf.j2", "port": 8000 + i} if kind == "app"
                             else {"role": draw(role), "template": "pillow.conf.j2"} if kind == "worker"
                             else {"role": draw(role), "control": "port", "port": 9000 + i, "start": "./run"})
    apps = [name for name, s in services.items() if "template" in s and "port" in s]
    for i in range(draw(st.integers(0, 2)) if apps else 0):
        services[f"p{i}"] = {"role": draw(role), "template": "nginx.conf.j2", "port": 7000 + i,
                             "balances": draw(st.sampled_from(apps))}
    pillow_role = draw(st.sampled_from([*sorted(roles), "pillowtop"]))
    return Environment.model_validate({"name": "env", "app": {"repo": "/dev/null"}, "code_root": "/srv/app",
                                       "roles": roles, "services": services, "pillow_role": pillow_role})


def proxies_of(topology, host):
    """{proxy service: the service it balances} of the services `host` runs."""
    return {name: s.balances for name, s in topology.services_on(host).items() if s.balances}


@settings(max_examples=200, deadline=None)
@given(environments(), st.data())
def test_every_balanced_host_in_a_limited_set_is_drained_on_each_proxy_outside_it(env, data):
    topology = env.topology
    limited = data.draw(st.lists(st.sampled_from(topology.hosts), unique=True))
    outside = topology.balancers_outside(limited)
    assert len(set(outside)) == len(outside) and not set(outside) & set(limited)
    named = set()
    for host in limited:
        for balanced in topology.balanced_services(host):
            for proxy in topology.hosts:
                if proxy not in limited and balanced in proxies_of(topology, proxy).values():
                    assert proxy in outside, (host, balanced, proxy)
                    named.add(proxy)
    assert set(outside) == named  # and no other host: each one balances a limited host's service


@settings(max_examples=200, deadline=None)
@given(environments())
def test_a_hosts_services_are_its_roles_services_each_controlled_one_way(env):
    topology = env.topology
    assert topology.hosts == [h for h in dict.fromkeys(h for hosts in env.roles.values() for h in hosts)]
    for host in topology.hosts:
        assert all(host in topology.hosts_of(role) for role in topology.roles_of(host))
        on = topology.services_on(host)
        assert on == {n: s for n, s in env.services.items() if host in topology.hosts_of(s.role)}
        supervised, port = topology.supervised_on(host), topology.port_services_on(host)
        assert not set(supervised) & set(port) and {**supervised, **port} == on
        assert set(topology.balanced_services(host)) <= set(supervised)
        pillows = topology.pillows_on(host)
        assert pillows == ([] if env.pillow_role not in topology.roles_of(host) else
                           [f"env-{n}" for n, s in env.services.items()
                            if s.role == env.pillow_role and s.control == "supervisor"])
    assert topology.balanced_hosts(topology.hosts) == [h for h in topology.hosts if topology.balanced_services(h)]
    assert topology.balancer_hosts(topology.hosts) == [h for h in topology.hosts if proxies_of(topology, h)]


def test_a_topology_is_built_from_the_settings_alone():
    built = Topology.of(environment())
    assert (built.environment, built.pillow_role, built.roles["apiproxy"]) == ("prod", "pillowtop", ("proxy2",))


# --- which hosts run the app's code -----------------------------------------------------

PROXIED = {
    "web": {"role": "webworkers", "template": "gunicorn.conf.j2", "port": 8000},
    "proxy": {"role": "proxy", "control": "port", "port": 8080, "start": "nginx", "balances": "web"},
    "memcached": {"role": "cache", "template": "memcached.conf.j2", "app": False},
}


@pytest.mark.parametrize("roles,settings,runs_app", [
    ({"proxy": ["h"]}, {}, False),  # a proxy alone: port services run no app code by default
    ({"cache": ["h"]}, {}, False),  # a supervisor service that says it runs none
    ({"proxy": ["h"], "cache": ["h"]}, {}, False),
    ({"proxy": ["h"], "webworkers": ["h"]}, {}, True),  # beside a web service
    ({"proxy": ["h"]}, {"proxy": {"app": True}}, True),  # the environment says it does
    ({"webworkers": ["h"]}, {"web": {"app": False}}, False),
    ({"proxy": ["h"], "tools": ["h"]}, {"manage": {"role": "tools"}}, True),  # manage runs there
    ({"proxy": ["h"]}, {"manage": {"role": "proxy"}}, True),
    ({"proxy": ["h"]}, {"migrate": {"role": "proxy", "command": "m"}}, True),
    ({"proxy": ["h"]}, {"predeploy": {"role": "proxy", "commands": ["p"]}}, True),
    ({"tools": ["h"]}, {}, True),  # no service at all: nothing says it runs no app code
])
def test_a_host_runs_the_app_unless_all_its_services_run_none_and_no_app_role_names_it(roles, settings, runs_app):
    services = {name: {**service, **settings.get(name, {})} for name, service in PROXIED.items()}
    others = {key: value for key, value in settings.items() if key not in services}
    roles = {"webworkers": ["w"], "proxy": ["p"], "cache": ["c"], **roles}
    env = Environment.model_validate({"name": "prod", "app": {"repo": "/dev/null"}, "code_root": "/srv/app",
                                      "roles": roles, "services": services, **others})
    assert env.topology.runs_app("h") is runs_app


@pytest.mark.parametrize("service,runs_app", [
    ({"template": "t.j2"}, True),
    ({"template": "t.j2", "app": False}, False),
    ({"control": "port", "port": 80, "start": "nginx"}, False),
    ({"control": "port", "port": 80, "start": "./serve", "app": True}, True),
])
def test_a_service_runs_app_code_by_default_when_supervisor_runs_it(service, runs_app):
    from fab.settings.services import Service

    assert Service.model_validate({"role": "r", **service}).runs_app is runs_app


def test_a_service_that_runs_no_app_code_may_not_start_the_releases_python():
    from pydantic import ValidationError

    from fab.settings.services import Service

    port = {"role": "r", "control": "port", "port": 80, "start": "python_env/bin/python serve.py"}
    with pytest.raises(ValidationError, match="uses the release's virtualenv|use the release's virtualenv"):
        Service.model_validate(port)
    assert Service.model_validate({**port, "app": True}).runs_app


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["app", "web", "proxy", "db"]),
                       st.lists(st.sampled_from(["h1", "h2", "h3", "h4"]), max_size=5), max_size=4))
def test_a_hosts_roles_are_those_that_name_it_in_the_files_order(roles):
    """roles_of answers from an index made once (a deploy asks it a dozen times per host)."""
    topology = Topology("env", {role: tuple(hosts) for role, hosts in roles.items()}, {}, "pillowtop")
    for host in ["h1", "h2", "h3", "h4", "elsewhere"]:
        assert topology.roles_of(host) == [role for role, hosts in roles.items() if host in hosts]
