"""`ssh_compression`: the connections to the hosts negotiate zlib with their sshd (the
scripts each command carries shrink about fourfold), and do not when it is off."""
import pytest

from fab import hosts
from fab.config import load_environment


@pytest.mark.parametrize("setting, negotiated", [(None, "zlib@openssh.com"), (False, "none")])
def test_connections_negotiate_compression_as_the_environment_says(deploy_env, setting, negotiated):
    deploy_env.write_config(**({} if setting is None else {"ssh_compression": setting}))
    env = load_environment(deploy_env.name, deploy_env.directory)
    host = hosts.connect("web1", env)
    try:
        host.open()
        transport = host.connection.transport
        assert (transport.local_compression, transport.remote_compression) == (negotiated, negotiated)
        assert host.connection.run("echo reached", hide=True, in_stream=False).stdout.strip() == "reached"
    finally:
        host.close()
