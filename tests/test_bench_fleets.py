"""The bench fleets (bench/fleets.py) stay on loopback, clear of the sandbox and the test
fleets, and their environment files are valid (no hosts needed)."""
import importlib.util
import ipaddress
import os

from fab import PROJECT_ROOT, sandbox
from fab.settings import Environment

_spec = importlib.util.spec_from_file_location("bench_fleets", os.path.join(PROJECT_ROOT, "bench", "fleets.py"))
fleets = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fleets)


def test_loopback_only_and_clear_of_the_other_fleets():
    seen = set()
    for spec in fleets.FLEETS.values():
        assert not spec.root.startswith(("/srv/fab-sandbox", "/srv/fab-test-fleet"))
        assert not spec.user_prefix.startswith(("fabsbx", "fabtest"))
        for host, address in spec.hosts.items():
            ip = ipaddress.ip_address(address)
            assert ip in ipaddress.ip_network("127.0.0.0/8")
            assert address not in sandbox.SANDBOX.hosts.values()
            # The test fleets use 127.0.<run id>.21-24.
            assert not 21 <= int(address.split(".")[-1]) <= 24
            assert address not in seen
            seen.add(address)
            assert len(spec.user(host)) <= 32  # useradd's limit
        assert spec.sshd_log_level == "VERBOSE"
    assert not fleets.FLEETS["code50"].supervisord and fleets.FLEETS["web5"].supervisord


def test_environments_are_valid_and_each_has_its_own_tree():
    roots = set()
    for name, (fleet, settings) in fleets.environments().items():
        env = Environment.model_validate({**settings, "name": name})
        assert set(env.hosts) <= set(fleets.FLEETS[fleet].hosts)
        roots.add((fleet, env.code_root))
    assert len(roots) == len(fleets.environments())
    web = Environment.model_validate({**fleets.environments()["benchweb5"][1], "name": "benchweb5"})
    assert web.services["web"].restart == "reload"
    assert (web.rollout.canary, web.rollout.batch) == (1, 4)
