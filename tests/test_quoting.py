"""Every value reaches a remote shell quoted: a hostile code_root runs nothing."""
import os

import pytest

from conftest import assert_ok
from fab import sandbox

pytestmark = pytest.mark.fleet


def test_a_code_root_holding_shell_runs_nothing_on_any_host(deploy_env):
    env = deploy_env
    # No spaces (${IFS} instead): with a space in its path, virtualenv's own launcher
    # scripts fall back to a /bin/sh shim that would evaluate the path itself.
    weird = "www/inj$(touch${IFS}pwned);`touch${IFS}pwned2`"
    # (No proxy: nginx's own config syntax cannot hold ; or { in a path unquoted.)
    env.write_config(code_root=f"~/{weird}")
    try:
        result = assert_ok(env.fab("deploy"))
        assert "deploy finished" in result.stdout
        for host in env.hosts:
            home = env.spec.home(host)
            assert not os.path.exists(os.path.join(home, "pwned")), host
            assert not os.path.exists(os.path.join(home, "pwned2")), host
            assert os.path.islink(os.path.join(home, weird, "current")), host
        # The app really runs from there.
        assert env.version("web1")["release"].startswith(os.path.join(env.spec.home("web1"), weird))
    finally:
        for host in env.spec.hosts:
            env.remote(host, f"rm -rf ~/'{weird}'; {sandbox.tools.TOOLS}/bin/supervisorctl -c ~/supervisor/supervisord.conf update >/dev/null", check=False)
