"""Connecting a fleet reads each host's ssh_config and known_hosts entries without reading
every other host's: fab.hosts.IndexedSSHConfig and fab.hostkeys.IndexedHostKeys answer
exactly what paramiko's own lookups answer (a file with a block or line per host no
longer costs hosts x lines on the controller)."""
import fnmatch

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import given, settings
from hypothesis import strategies as st
from fabric import Config, Connection

from fab import hostkeys, hosts

NAMES = ["web1", "web2", "db1", "proxy", "WEB1", "web1.example.org"]
PATTERNS = NAMES + ["*", "web*", "!web2", "!db*", "w?b1", "*.example.org"]


def parsed(text):
    config = paramiko.SSHConfig()
    config.parse(text.splitlines())
    return config


block = st.tuples(st.lists(st.sampled_from(PATTERNS), min_size=1, max_size=3),
                  st.dictionaries(st.sampled_from(["User", "Port", "HostName", "IdentityFile"]),
                                  st.sampled_from(["a", "b", "2201", "%h.internal", "~/.ssh/k1", "~/.ssh/k2"]),
                                  min_size=1, max_size=3))


@settings(max_examples=300, deadline=None)
@given(st.lists(block, max_size=8))
def test_every_lookup_is_paramikos(blocks):
    text = "\n".join(f"Host {' '.join(patterns)}\n" + "".join(f"  {key} {value}\n" for key, value in options.items())
                     for patterns, options in blocks)
    original = parsed(text)
    indexed = hosts.IndexedSSHConfig(original)
    for name in NAMES:
        assert indexed.lookup(name) == original.lookup(name)


def test_a_lookup_reads_only_the_blocks_that_can_apply():
    text = "".join(f"Host host{n}\n  HostName 127.0.1.{n}\n" for n in range(200)) + "Host *\n  User deploy\n"
    indexed = hosts.IndexedSSHConfig(parsed(text))
    matched = []
    pattern_matches = paramiko.SSHConfig._pattern_matches

    def counting(self, patterns, target):
        matched.append(patterns)
        return pattern_matches(self, patterns, target)

    paramiko.SSHConfig._pattern_matches = counting
    try:
        options = indexed.lookup("host7")
    finally:
        paramiko.SSHConfig._pattern_matches = pattern_matches
    assert (options["hostname"], options["user"]) == ("127.0.1.7", "deploy")
    assert len(matched) <= 8  # a few over its own block and `Host *`, not 2 x 201


def test_a_plain_host_name_is_matched_without_compiling_it(monkeypatch):
    """fnmatch compiles each pattern it has not seen into a regular expression: a fleet's
    worth of host names, once each, for one equality each."""
    text = "".join(f"Host host{n}\n  HostName 127.0.1.{n}\n" for n in range(20)) + "Host *\n  User deploy\n"
    indexed = hosts.IndexedSSHConfig(parsed(text))
    compiled = []
    monkeypatch.setattr(fnmatch, "fnmatch", lambda name, pattern: compiled.append(pattern) or
                        fnmatch.fnmatchcase(name, pattern))
    options = indexed.lookup("host7")
    assert (options["hostname"], options["user"]) == ("127.0.1.7", "deploy")
    assert set(compiled) == {"*"}  # `Host *` alone


def test_a_value_without_tokens_costs_no_lookup_of_the_controller_s_name(monkeypatch):
    text = "Host web1\n  HostName 10.0.0.1\n  IdentityFile /keys/deploy\nHost web2\n  IdentityFile ~/.ssh/%h-%r\n"
    indexed = hosts.IndexedSSHConfig(parsed(text))

    def unreachable(*args):
        raise AssertionError("the controller's FQDN looked up")

    with monkeypatch.context() as patched:
        for name in ("getfqdn", "gethostbyaddr", "getaddrinfo"):
            patched.setattr(paramiko.config.socket, name, unreachable)
        assert indexed.lookup("web1")["identityfile"] == ["/keys/deploy"]
    home = paramiko.config.os.path.expanduser("~")
    assert indexed.lookup("web2")["identityfile"] == [f"{home}/.ssh/web2-{paramiko.config.getpass.getuser()}"]


def test_a_connection_is_fabrics_without_rewriting_its_configuration():
    """fab.hosts.StoppableConnection sets its attributes without dir() and keeps
    inline_ssh_env an attribute: the same attributes and configuration as Fabric's."""
    config = Config()  # not the process's shared one (fab.hosts.fabric_config): Fabric's writes into it
    before = dict(config._config)
    ours = hosts.StoppableConnection("deploy@web1:2201", config=config, connect_timeout=10,
                                     connect_kwargs={"compress": True})
    assert config._modifications == {}  # each modification merged the configuration again
    fabrics = Connection("deploy@web1:2201", config=config, connect_timeout=10, connect_kwargs={"compress": True})
    skipped = {"client", "_config", "_sessions", "_sessions_lock", "inline_ssh_env"}
    assert ({key: repr(value) for key, value in vars(ours).items() if key not in skipped} ==
            {key: repr(value) for key, value in vars(fabrics).items() if key not in skipped})
    assert ours.inline_ssh_env is fabrics.inline_ssh_env is config.inline_ssh_env
    ours.made_up = 1  # what is not an attribute is still a configuration key
    assert ours.config.made_up == 1 and "made_up" not in vars(ours)
    assert {key: value for key, value in config._config.items() if key != "made_up"} == before


def test_match_blocks_or_canonicalization_read_every_block():
    for extra in ("Match host web1\n  User m\n", "Host *\n  CanonicalizeHostname no\n"):
        text = "Host web1\n  Port 2201\n" + extra
        original = parsed(text)
        assert hosts.IndexedSSHConfig(original).lookup("web1") == original.lookup("web1")
        assert hosts.IndexedSSHConfig(original)._whole


# --- known_hosts: fab.hostkeys.IndexedHostKeys ---------------------------------------

def _keys():
    made = []
    for _ in range(3):
        private = ed25519.Ed25519PrivateKey.generate()
        blob = private.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        made.append(blob.decode().split()[1])
    return made


BLOBS = _keys()
HOSTS = ["web1", "[127.0.0.1]:2222", "db1", "web2"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.lists(st.sampled_from(HOSTS), min_size=1, max_size=3), st.booleans(),
                          st.sampled_from(range(len(BLOBS)))), max_size=8))
def test_every_known_hosts_lookup_is_paramikos(tmp_path_factory, entries):
    lines = []
    for names, hashed, blob in entries:
        shown = [paramiko.HostKeys.hash_host(name) if hashed else name for name in names]
        lines.append(f"{','.join(shown)} ssh-ed25519 {BLOBS[blob]}\n")
    path = tmp_path_factory.mktemp("known") / "known_hosts"
    path.write_text("".join(lines))
    original = paramiko.HostKeys(str(path))
    indexed = hostkeys.IndexedHostKeys(original)
    for name in HOSTS + ["absent"]:
        expected, got = original.lookup(name), indexed.lookup(name)
        assert (None if expected is None else dict(expected)) == (None if got is None else dict(got))
