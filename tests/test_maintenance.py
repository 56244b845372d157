"""The maintenance page (fab.operations.maintenance): what the proxy is told, and on the
real fleet, a real nginx answering 503 with the page and Retry-After, the health
path still open, through a deploy, until it is switched off."""
import json
import time
import urllib.error
import urllib.request

import pytest

from conftest import assert_ok, assert_one_line_error
from fab.errors import UsageError
from fab.operations import maintenance
from fab.outputs.plain import step_notes
from fab.paths import Paths
from fab.settings import Environment
from fab.task_input import on_or_off


def environment(**settings):
    return Environment(**{
        "name": "prod", "app": {"repo": "/r.git"}, "code_root": "/srv/app",
        "roles": {"web": ["web1"], "proxy": ["proxy1"]},
        "services": {
            "web": {"role": "web", "template": "supervisor/gunicorn.conf.j2", "port": 8000,
                    "health_check": {"path": "/health", "version_path": "/version"}},
            "proxy": {"role": "proxy", "control": "port", "port": 8080, "template": "nginx/proxy.conf.j2",
                      "balances": "web", "start": "nginx", "health_check": {"path": "/up"}},
        },
        **settings})


def test_the_snippet_answers_503_with_the_page_except_on_the_health_and_version_paths():
    env = environment(maintenance_retry_after=120)
    text = maintenance.snippet(env, Paths("/srv/app"), "prod-proxy", env.services["proxy"])
    assert 'if ($uri !~ "^(?:/health|/up|/version)$") {\n    return 503;\n}' in text
    assert "error_page 503 @fab_maintenance;" in text
    assert 'root "/srv/app/shared/proxy";' in text and 'rewrite ^ "/prod-proxy-maintenance.html" break;' in text
    assert "add_header Retry-After 120 always;" in text


def test_the_page_escapes_the_message_and_an_environment_may_have_its_own(tmp_path):
    stock = maintenance.page(environment(), "Back at <b>5</b> & then some")
    assert "Back at &lt;b&gt;5&lt;/b&gt; &amp; then some" in stock and "<b>" not in stock
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "down.html.j2").write_text("{{ environment }}: {{ message }}\n")
    own = environment(maintenance_template="down.html.j2", folder=str(tmp_path))
    assert maintenance.page(own, "soon") == "prod: soon\n"


@pytest.mark.parametrize("switch", ["", "yes", "ON", "of"])
def test_maintenance_is_on_or_off(switch):
    with pytest.raises(UsageError, match="maintenance: say on or off"):
        on_or_off("maintenance", switch)


def test_the_include_pattern_matches_only_the_snippet():
    import fnmatch

    paths = Paths("/srv/app")
    pattern = paths.proxy_maintenance_include("prod-proxy")
    assert fnmatch.fnmatchcase(paths.proxy_maintenance("prod-proxy"), pattern)
    for other in (paths.proxy_maintenance("prod-proxy") + ".tmp.123", paths.proxy_maintenance_page("prod-proxy"),
                  paths.proxy_upstream("prod-proxy")):
        assert not fnmatch.fnmatchcase(other, pattern)


# --- on the fleet ----------------------------------------------------------------------


def answer(url):
    """(status, headers, body) of a GET, whatever the status."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode()


def settled_answer(url, status, seconds=5):
    """The answer at `url` once it has `status`, or the last one after `seconds`: an old
    nginx worker may still take a connection for a moment after a reload."""
    deadline = time.monotonic() + seconds
    while True:
        got = answer(url)
        if got[0] == status or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


@pytest.mark.fleet
def test_maintenance_on_answers_the_page_keeps_health_open_lasts_through_a_deploy_and_off_ends_it(deploy_env):
    env = deploy_env
    env.write_config(with_proxy=True, maintenance_retry_after=90)
    assert_ok(env.fab("deploy"))
    proxy = f"http://{env.spec.hosts['proxy1']}:{env.proxy_port}"
    assert answer(f"{proxy}/")[0] == 200

    result = assert_ok(env.fab("maintenance:on,message=Back at <5>"))
    assert "proxy: maintenance on" in step_notes(result.stdout, "maintenance")["proxy1"]
    assert "on, reloaded pid" in step_notes(result.stdout, "maintenance")["proxy1"]  # never restarted
    status, headers, body = settled_answer(f"{proxy}/some/page", 503)
    assert (status, headers["Retry-After"]) == (503, "90") and "Back at &lt;5&gt;" in body
    assert answer(f"{proxy}/health")[0] == 200 and answer(f"{proxy}/version")[0] == 200
    assert env.version("web1")  # the hosts' own checks, unaffected
    listed = json.loads(assert_ok(env.fab("releases:json=yes")).stdout)["releases"]
    assert listed["proxy1"]["maintenance"] == [f"{env.name}-proxy"] and "maintenance" not in listed["web1"]
    assert "MAINTENANCE" in assert_ok(env.fab("releases")).stdout

    env.commit("NEWS.txt", "during maintenance\n", "a deploy in maintenance")
    assert_ok(env.fab("deploy"))
    assert settled_answer(f"{proxy}/", 503)[0] == 503

    assert_ok(env.fab("maintenance:off"))
    assert settled_answer(f"{proxy}/", 200)[0] == 200
    assert "maintenance" not in json.loads(assert_ok(env.fab("releases:json=yes")).stdout)["releases"]["proxy1"]
    assert_one_line_error(env.fab("maintenance:of"), "say on or off")
