"""What `releases` shows of the proxies' rotation: the upstream lists read and parsed
(pure, on the text the deployer writes), and the listing per proxy."""
import base64

import pytest

from fab.operations import proxy as proxy_ops
from fab.rotation import rotation_listing
from fab.outputs.tables import rotation_lines

ADDRESSES = {"web1": "10.0.0.1", "web2": "10.0.0.2", "web3": "10.0.0.3"}


def with_proxy(env):
    """The test environment with proxy1 balancing web (settings as a file would give them)."""
    from fab.settings import Environment

    data = env.model_dump()
    data["roles"] = {**data["roles"], "proxy": ["proxy1"]}
    data["services"]["proxy"] = {"role": "proxy", "control": "port", "port": 8080, "template": "nginx/proxy.conf.j2",
                                 "balances": "web", "start": "nginx"}
    return Environment.model_validate(data)


@pytest.mark.parametrize("drained", [set(), {"10.0.0.2"}, {"10.0.0.1", "10.0.0.3"}])
def test_an_upstream_list_is_read_back_as_written(drained):
    backends = [(address, 8000) for address in ADDRESSES.values()]
    text = proxy_ops.upstream_config("prod_web", backends, drained)
    assert proxy_ops.parse_upstream(text) == (list(ADDRESSES.values()), drained)


def test_the_scripts_lines_parse_by_position_and_ignore_the_rest():
    text = proxy_ops.upstream_config("u", [("10.0.0.1", 8000)])
    output = "\n".join([f"upstream 2 {base64.b64encode(text.encode()).decode()}", "upstream 1 missing",
                        "upstream 9 eA==", "upstream x eA==", "upstream 1 !!notbase64", "noise"])
    assert proxy_ops.parse_upstreams(output, ["a", "b"]) == {"a": None, "b": text}


def test_rotation_listing_names_hosts_in_and_out(env):
    env = with_proxy(env)
    text = proxy_ops.upstream_config("u", [(a, 8000) for a in (*ADDRESSES.values(), "10.9.9.9")], {"10.0.0.2"})
    listing = rotation_listing(env, {"proxy1": {"proxy": text}}, {}, ADDRESSES.get)
    assert listing == {"proxy1": [{"service": "proxy", "balances": "web", "in_rotation": ["web1", "web3", "10.9.9.9"],
                                   "out_of_rotation": ["web2"], "error": None, "maintenance": None}]}
    lines = rotation_lines(listing)
    assert lines == [("rotation of proxy1 (proxy, balances web): in rotation: web1, web3, 10.9.9.9; "
                      "out of rotation: web2", "yellow")]


def test_rotation_listing_says_why_it_knows_nothing(env):
    env = with_proxy(env)
    assert rotation_listing(env, {}, {"proxy1": "cannot connect"}, ADDRESSES.get)["proxy1"][0]["error"] == \
        "not read: cannot connect"
    assert "no upstream list yet" in rotation_listing(env, {"proxy1": {"proxy": None}}, {},
                                                      ADDRESSES.get)["proxy1"][0]["error"]


def test_no_proxy_no_rotation(env):
    assert rotation_listing(env, {}, {}, ADDRESSES.get) == {}


def test_maintenance_shows_once_another_part_reads_it():
    entry = {"service": "proxy", "balances": "web", "in_rotation": ["web1"], "out_of_rotation": [], "error": None}
    assert rotation_lines({"p": [{**entry, "maintenance": None}]})[0][0].endswith("out of rotation: none")
    assert rotation_lines({"p": [{**entry, "maintenance": True}]})[0][0].endswith("maintenance: on")




# --- on the fleet ------------------------------------------------------------------------


def test_releases_groups_identical_hosts_and_shows_who_is_out_of_rotation(deploy_env):
    import json

    from conftest import assert_ok

    env = deploy_env
    env.write_config(with_proxy=True)
    assert_ok(env.fab("deploy"))
    # The preflight finds the proxy's port held by its own nginx, and its directory writable.
    assert "ready: 4 hosts checked" in assert_ok(env.fab("check")).stdout
    listed = assert_ok(env.fab("releases"))
    # The app hosts have the same one release, installed from one wheel set: one table
    # naming them; the proxy's release has no venv (it runs no app code): its own table.
    assert "web1, web2, pillow1" in listed.stdout.splitlines() and "proxy1" in listed.stdout.splitlines()
    assert "rotation of proxy1 (proxy, balances web): in rotation: web1, web2; out of rotation: none" in listed.stdout

    # web2 left drained, as a deploy killed while restarting it would leave it.
    upstream = f"~/{env.code_root_rel}/shared/proxy/{env.name}-proxy-upstream.conf"
    address = env.spec.hosts["web2"]
    env.remote("proxy1", f"sed -i 's/{address}:\\([0-9]*\\) max_fails=0;/{address}:\\1 max_fails=0 down;/' {upstream}")
    doc = json.loads(assert_ok(env.fab("releases:json=yes")).stdout)
    assert doc["rotation"] == {"proxy1": [{"service": "proxy", "balances": "web", "in_rotation": ["web1"],
                                           "out_of_rotation": ["web2"], "error": None, "maintenance": None}]}
    # A restart puts it back.
    assert_ok(env.fab("restart_services"))
    assert "in rotation: web1, web2; out of rotation: none" in assert_ok(env.fab("releases")).stdout
