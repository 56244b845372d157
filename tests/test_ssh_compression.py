"""`ssh_compression`: the connections to the hosts negotiate zlib with their sshd (the
scripts each command carries shrink about fourfold), and do not when it is off."""
import zlib

import pytest

from fab import hosts, shell
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
        compressing = transport.packetizer._Packetizer__compress_engine_out  # paramiko's own, private
        assert isinstance(compressing, hosts.StreamCompressor) if setting is None else compressing is None
        for word in ("again", "and again"):  # packets that refer back to the ones before
            assert host.run(SCRIPT, [word]).strip() == word
    finally:
        host.close()


#: A command as big as a build batch's, whose script each command sends again.
SCRIPT = shell.remote_script("batch") + '\nprintf "%s\\n" "$1"\n'


def test_the_packets_of_a_connection_are_one_zlib_stream():
    """As sshd inflates them (RFC 4253, 6.2): the script a second command sends again
    costs a few bytes, not its compressed size once more."""
    compressor, inflate = hosts.StreamCompressor(), zlib.decompressobj()
    packets = [shell.step_command(SCRIPT, [word]).encode() for word in ("once", "twice")]
    first, second = (compressor(packet) for packet in packets)
    assert [inflate.decompress(first), inflate.decompress(second)] == packets
    assert len(second) < len(first) / 20
