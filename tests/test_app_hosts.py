"""Hosts that run no app code (fab.topology.Topology.runs_app), on the real fleet: the
nginx proxy (a port-controlled service, `app: false` by default) gets the release's
code and service configs but no virtualenv and no build commands, and still serves
each release, reloads in place and rolls back like the others."""
import json
import os
import urllib.request

import pytest

from conftest import assert_ok, environment_of_its_own
from test_deploy import live_release

PROXY = "proxy1"


@pytest.fixture
def proxy_env(fleet, tmp_path):
    """An environment of its own, removed whole after: the shared one (deploy_env) keeps
    its venvs on the hosts from test to test, so its plan said "reused" where this one's
    first deploy builds, once any test before it in the worker had deployed."""
    with environment_of_its_own(fleet, str(tmp_path / "environments"), "fabproxy", 8190) as env:
        yield env


def through_proxy(env):
    """What the web hosts answer at /version, asked through the proxy."""
    url = f"http://{env.spec.hosts[PROXY]}:{env.proxy_port}/version"
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read().decode())


def release_dir(env, host, release):
    return os.path.join(env.code_root(host), "releases", release)


def test_a_proxy_gets_no_venv_and_still_goes_live_reloads_and_rolls_back(proxy_env):
    env = proxy_env
    env.write_config(with_proxy=True, keep_releases=1, build_commands=["touch built-here"],
                     service_settings={"web": {"restart": "reload"}})
    plan = json.loads(assert_ok(env.fab("deploy:plan=yes,json=yes")).stdout)["plan"]
    assert plan["hosts"][PROXY]["virtualenv"]["action"] == "none"
    assert plan["hosts"]["web1"]["virtualenv"]["action"] == "built"

    first = json.loads(assert_ok(env.fab("deploy:json=yes")).stdout)
    release = live_release(env)
    proxy_release = release_dir(env, PROXY, release)
    assert os.path.isfile(os.path.join(proxy_release, "app.py"))  # the code: a proxy may serve its files
    assert not os.path.lexists(os.path.join(proxy_release, "python_env"))
    assert not os.path.exists(os.path.join(proxy_release, "built-here"))
    assert not os.path.exists(os.path.join(env.code_root(PROXY), "venvs"))
    for host in ("web1", "web2", "pillow1"):
        assert os.path.islink(os.path.join(release_dir(env, host, release), "python_env"))
        assert os.path.exists(os.path.join(release_dir(env, host, release), "built-here"))
    steps = {host: {step["step"] for step in found["steps"]} for host, found in first["hosts"].items()}
    assert {"virtualenv", "build"} <= steps["web1"] and not {"virtualenv", "build"} & steps[PROXY]
    assert through_proxy(env)["commit"] == env.head()

    commit = env.commit("NEWS.txt", "code only\n", "code only")
    second = assert_ok(env.fab("deploy"))  # a code-only change: reloads in place, as before
    assert "reloaded in place" in second.stdout and "drain" not in second.stdout
    assert through_proxy(env)["commit"] == commit
    newer = live_release(env)
    assert not os.path.lexists(os.path.join(release_dir(env, PROXY, newer), "python_env"))
    assert env.releases(PROXY) == sorted([release, newer])  # keep 1 + the rollback target

    assert_ok(env.fab("rollback"))
    assert live_release(env) == release
    assert through_proxy(env)["commit"] != commit
    assert_ok(env.fab("clean_releases"))
    assert not os.path.exists(os.path.join(env.code_root(PROXY), "venvs"))
