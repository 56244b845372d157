"""The sandbox's machinery without starting a fleet (tests/conftest.py starts real ones):
its command line, its client config, and how it finds and judges processes."""
import os
import subprocess
import sys

import pytest

from fab import PROJECT_ROOT, sandbox
from fab.sandbox import daemons


def test_the_command_line_is_python_dash_m_fab_sandbox_with_its_four_actions():
    result = subprocess.run([sys.executable, "-m", "fab.sandbox", "--help"], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, check=True)
    assert result.stdout.startswith("usage: python -m fab.sandbox [-h] {up,down,destroy,status}")
    assert "The built-in sandbox: a local fleet of real SSH hosts on loopback addresses." in result.stdout
    refused = subprocess.run([sys.executable, "-m", "fab.sandbox", "start"], cwd=PROJECT_ROOT,
                             capture_output=True, text=True)
    assert refused.returncode == 2 and "invalid choice: 'start'" in refused.stderr


def test_the_client_config_names_each_host_with_its_own_address_user_and_key(tmp_path):
    spec = sandbox.FleetSpec(root=str(tmp_path), user_prefix="t", hosts={"web1": "127.0.0.91", "db1": "127.0.0.92"})
    os.makedirs(spec.client_dir)
    for host in spec.hosts:
        os.makedirs(os.path.join(spec.host_dir(host), "sshd"))
        with open(os.path.join(spec.host_dir(host), "sshd", "ssh_host_ed25519_key.pub"), "w") as handle:
            handle.write(f"ssh-ed25519 KEY-{host} {host}\n")
    daemons.write_client_config(spec)
    with open(spec.ssh_config) as handle:
        config = handle.read()
    assert "Host db1\n  HostName 127.0.0.92\n  Port 2222\n  User t-db1\n" in config
    assert f"  IdentityFile {spec.identity}\n  IdentitiesOnly yes\n" in config
    with open(spec.known_hosts) as handle:
        assert handle.read() == "[127.0.0.91]:2222 ssh-ed25519 KEY-web1\n[127.0.0.92]:2222 ssh-ed25519 KEY-db1\n"


@pytest.mark.parametrize("content,expected", [("1234\n", 1234), ("", None), ("0", None), ("pid", None)])
def test_a_pidfile_is_read_as_a_pid_or_none(tmp_path, content, expected):
    path = tmp_path / "x.pid"
    path.write_text(content)
    assert daemons.read_pid(str(path)) == expected
    assert daemons.read_pid(str(tmp_path / "missing.pid")) is None


def test_a_process_is_alive_until_it_exits_even_before_it_is_collected():
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    assert daemons.alive(child.pid)
    child.stdin.close()
    daemons.wait_for(lambda: not daemons.alive(child.pid), "the child to exit")  # a zombie: not alive
    child.wait()
    assert not daemons.alive(child.pid)


def test_a_pid_is_our_daemon_only_while_that_process_runs_with_its_config(tmp_path):
    """A pidfile or state file may outlive its process, and its pid be another's since
    (a reboot, a busy machine): that one is neither taken for the sandbox's sshd nor
    stopped (it once made a bench fleet skip starting three sshds)."""
    config = str(tmp_path / "sshd_config")
    ours = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()", "-f", config],
                            stdin=subprocess.PIPE)
    other = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()", "-f", config + ".old"],
                             stdin=subprocess.PIPE)
    try:
        assert daemons.started_with(ours.pid, config)
        assert not daemons.started_with(other.pid, config)  # a longer path is not it
        assert not daemons.started_with(os.getpid(), config) and not daemons.started_with(None, config)
    finally:
        for child in (ours, other):
            child.stdin.close()
            child.wait()
    assert not daemons.started_with(ours.pid, config)
