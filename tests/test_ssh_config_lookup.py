"""fab.hosts.IndexedSSHConfig: the options of every host are paramiko's own, while a
lookup reads only the blocks that can apply to its name (a fleet's ssh_config of one
Host block per host no longer costs hosts x blocks pattern matches)."""
import paramiko
from hypothesis import given, settings
from hypothesis import strategies as st

from fab import hosts

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


def test_match_blocks_or_canonicalization_read_every_block():
    for extra in ("Match host web1\n  User m\n", "Host *\n  CanonicalizeHostname no\n"):
        text = "Host web1\n  Port 2201\n" + extra
        original = parsed(text)
        assert hosts.IndexedSSHConfig(original).lookup("web1") == original.lookup("web1")
        assert hosts.IndexedSSHConfig(original)._whole
