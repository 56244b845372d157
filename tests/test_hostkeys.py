"""Host keys are checked as OpenSSH checks them, on every hop.

Unit tests (no SSH) cover the known_hosts format and writing; the tests marked
`fleet` connect to a small fleet of real sshd hosts of their own (hk1, hk2 and a
jump host on 127.0.<run id>.31-33, its root and users named by the run id too, as the
main test fleet's), started for this module and always destroyed.
"""
import concurrent.futures
import os
import pwd
import re
import socket
import stat
import time
import warnings

import paramiko
import pytest
from fabric import Config, Connection

from conftest import RUN_ID, assert_one_line_error, run_fab
from fab import events, hostkeys, sandbox
from fab.settings import Environment
from fab.errors import ConfigError
from fab.hosts import connect, describe_error

# Named by the run id (root, users, addresses), as the main test fleet: two runs on one
# machine, or two pytest-xdist workers, never share its hosts.
_SUFFIX = str(RUN_ID) if RUN_ID else ""
HK_FLEET = sandbox.FleetSpec(
    root=f"/srv/fab-hk-fleet{_SUFFIX}",
    user_prefix=f"fabhk{_SUFFIX}",
    hosts={name: f"127.0.{RUN_ID}.{31 + index}" for index, name in enumerate(("hk1", "hk2", "jump"))},
)
HK1, HK2, JUMP = (HK_FLEET.hosts[name] for name in ("hk1", "hk2", "jump"))


def new_key():
    return paramiko.ECDSAKey.generate()


@pytest.fixture
def published():
    """Every event published while the test runs."""
    seen = []
    events.stream.subscribe(seen.append)
    try:
        yield seen
    finally:
        events.stream.unsubscribe(seen.append)


@pytest.fixture(autouse=True)
def fresh_run(monkeypatch):
    """Each test is a run of its own: no host has been warned about yet."""
    monkeypatch.setattr(hostkeys, "_warned", set())


def warnings_in(published):
    return [e for e in published if isinstance(e, events.Note) and e.level == "warning"]


# --- settings -----------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [
    (None, hostkeys.YES), ("yes", hostkeys.YES), ("ask", hostkeys.YES), ("Yes", hostkeys.YES),
    ("accept-new", hostkeys.ACCEPT_NEW), ("no", hostkeys.NO), ("off", hostkeys.NO),
])
def test_strictness(value, expected):
    ssh_config = {} if value is None else {"stricthostkeychecking": value}
    assert hostkeys.strictness(ssh_config) == expected


def test_unknown_strictness_is_a_config_error():
    with pytest.raises(ConfigError, match="StrictHostKeyChecking 'maybe' for web1"):
        hostkeys.strictness({"stricthostkeychecking": "maybe"}, "web1")


def test_known_hosts_files():
    assert hostkeys.known_hosts_files({}) == [
        os.path.expanduser("~/.ssh/known_hosts"), "/etc/ssh/ssh_known_hosts"]
    config = {"userknownhostsfile": "/a/one ~/two", "globalknownhostsfile": "none"}
    assert hostkeys.user_known_hosts_files(config) == ["/a/one", os.path.expanduser("~/two")]
    assert hostkeys.known_hosts_files(config) == ["/a/one", os.path.expanduser("~/two")]
    assert hostkeys.known_hosts_files({"userknownhostsfile": "none"}) == ["/etc/ssh/ssh_known_hosts"]


# --- the known_hosts format and writing -----------------------------------------


def test_known_hosts_line_plain_and_hashed(tmp_path):
    key = new_key()
    plain = hostkeys.known_hosts_line("[10.0.0.5]:2222", key)
    assert plain == f"[10.0.0.5]:2222 {key.get_name()} {key.get_base64()}\n"
    assert hostkeys.known_hosts_line("10.0.0.5", key).startswith("10.0.0.5 ")
    hashed = hostkeys.known_hosts_line("[10.0.0.5]:2222", key, hashed=True)
    assert hashed.startswith("|1|") and "10.0.0.5" not in hashed
    (tmp_path / "known_hosts").write_text(hashed)
    assert hostkeys.known_keys([str(tmp_path / "known_hosts")], "[10.0.0.5]:2222") == {key.get_name(): key}
    assert hostkeys.known_keys([str(tmp_path / "known_hosts")], "10.0.0.5") == {}


def test_record_new_key_creates_private_file_and_directory(tmp_path):
    path = tmp_path / "ssh" / "known_hosts"
    key = new_key()
    assert hostkeys.record_new_key(str(path), "[10.0.0.5]:2222", key)
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert path.read_text() == hostkeys.known_hosts_line("[10.0.0.5]:2222", key)
    # Recorded already: nothing more is written.
    assert not hostkeys.record_new_key(str(path), "[10.0.0.5]:2222", key)
    assert len(path.read_text().splitlines()) == 1


def test_record_new_key_appends_after_a_line_without_newline(tmp_path):
    path = tmp_path / "known_hosts"
    first, second = new_key(), new_key()
    path.write_text(hostkeys.known_hosts_line("one.example", first).rstrip("\n"))
    hostkeys.record_new_key(str(path), "two.example", second)
    assert hostkeys.known_keys([str(path)], "one.example") == {first.get_name(): first}
    assert hostkeys.known_keys([str(path)], "two.example") == {second.get_name(): second}


def test_record_new_key_refuses_a_key_recorded_differently_meanwhile(tmp_path):
    path = tmp_path / "known_hosts"
    hostkeys.record_new_key(str(path), "[10.0.0.5]:2222", new_key())
    with pytest.raises(paramiko.BadHostKeyException) as raised:
        hostkeys.record_new_key(str(path), "[10.0.0.5]:2222", new_key())
    assert describe_error(raised.value) == "host key mismatch for [10.0.0.5]:2222: refusing to connect"


def test_record_new_key_from_many_threads(tmp_path):
    """Hosts connect in parallel: every key lands once, on a line of its own."""
    path = str(tmp_path / "known_hosts")
    keys = {f"[10.0.0.{i}]:2222": new_key() for i in range(20)}
    shared_key = new_key()
    jobs = [(name, key) for name, key in keys.items()] + [("[10.0.1.1]:2222", shared_key)] * 10
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        written = list(pool.map(lambda job: hostkeys.record_new_key(path, *job, hashed=True), jobs))
    assert sum(written) == 21
    with open(path) as handle:
        assert len(handle.read().splitlines()) == 21
    for name, key in [*keys.items(), ("[10.0.1.1]:2222", shared_key)]:
        assert hostkeys.known_keys([path], name) == {key.get_name(): key}


# --- policies, without a network ------------------------------------------------


def policy(setting, tmp_path, **settings):
    config = {"stricthostkeychecking": setting,
              "userknownhostsfile": str(tmp_path / "known_hosts"),
              "globalknownhostsfile": "none", **settings}
    return hostkeys._Policy("web1", hostkeys.strictness(config), config)


def test_yes_refuses_an_unknown_key(tmp_path):
    with pytest.raises(paramiko.SSHException) as raised:
        policy("yes", tmp_path).missing_host_key(None, "[10.0.0.5]:2222", new_key())
    assert describe_error(raised.value).startswith("unknown host key (web1 at [10.0.0.5]:2222 not found")


def test_accept_new_records_the_key_hashed_when_asked(tmp_path):
    key = new_key()
    policy("accept-new", tmp_path, hashknownhosts="yes").missing_host_key(None, "[10.0.0.5]:2222", key)
    text = (tmp_path / "known_hosts").read_text()
    assert text.startswith("|1|")
    assert hostkeys.known_keys([str(tmp_path / "known_hosts")], "[10.0.0.5]:2222") == {key.get_name(): key}


def test_no_warns_once_per_host_and_never_through_python_warnings(tmp_path, published):
    checker = policy("no", tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any UserWarning would fail the test
        for _ in range(3):
            checker.missing_host_key(None, "[10.0.0.5]:2222", new_key())
        checker.missing_host_key(None, "[10.0.0.6]:2222", new_key())
    lines = [e.text for e in warnings_in(published)]
    assert len(lines) == 2, lines
    assert "is not in known_hosts" in lines[0] and "StrictHostKeyChecking is no" in lines[0]
    assert not (tmp_path / "known_hosts").exists()


def test_no_is_silent_for_a_matching_key_and_says_when_it_differs(tmp_path, published):
    known, other = new_key(), new_key()
    (tmp_path / "known_hosts").write_text(hostkeys.known_hosts_line("[10.0.0.5]:2222", known))
    checker = policy("no", tmp_path)
    checker.missing_host_key(None, "[10.0.0.5]:2222", known)
    assert warnings_in(published) == []
    checker.missing_host_key(None, "[10.0.0.5]:2222", other)
    [warning] = warnings_in(published)
    assert "DIFFERS from known_hosts" in warning.text and warning.host == "web1"


def test_secure_covers_every_hop_of_a_chained_proxyjump(tmp_path):
    (tmp_path / "ssh_config").write_text(
        "Host target\n  HostName 10.9.0.3\n  ProxyJump outer,inner\n  StrictHostKeyChecking accept-new\n"
        "Host outer\n  HostName 10.9.0.1\n"
        "Host inner\n  HostName 10.9.0.2\n  StrictHostKeyChecking no\n"
        f"Host *\n  UserKnownHostsFile {tmp_path}/known_hosts\n")
    connection = Connection("target", config=Config(runtime_ssh_path=str(tmp_path / "ssh_config")),
                            connect_timeout=7)
    hostkeys.secure(connection)
    inner = connection.gateway
    outer = inner.gateway
    hops = {c.original_host: c for c in (connection, inner, outer)}
    assert set(hops) == {"target", "inner", "outer"}
    # Each hop: its own ssh_config settings (outer has none: strict), and a bounded connect.
    assert hops["target"].client._policy.setting == hostkeys.ACCEPT_NEW
    assert hops["inner"].client._policy.setting == hostkeys.NO
    assert hops["outer"].client._policy.setting == hostkeys.YES
    assert all(c.connect_timeout == 7 for c in hops.values())


# --- on real sshd hosts -----------------------------------------------------------


# One pytest-xdist worker runs every test of this module, so its fleet is started once.
pytestmark = pytest.mark.xdist_group("hostkeys-fleet")


@pytest.fixture(scope="module")
def hk_fleet():
    if os.geteuid() != 0:
        pytest.skip("the host-key fleet needs root (it creates users and runs sshd)")
    destroy_fleet(HK_FLEET)  # whatever a crashed earlier run left behind
    try:
        sandbox.up(HK_FLEET)
        yield HK_FLEET
    finally:
        destroy_fleet(HK_FLEET)


def destroy_fleet(spec, tries=50):
    """sandbox.destroy, again while a host's user remains: userdel refuses a user whose
    last sshd session process is still exiting."""
    for _ in range(tries):
        sandbox.destroy(spec)
        if not any(user_exists(spec.user(host)) for host in spec.hosts):
            return
        time.sleep(0.1)


def user_exists(name):
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def real_known_hosts_lines(spec):
    """{alias: its `[address]:port type key` line} from the fleet's own known_hosts."""
    with open(spec.known_hosts) as handle:
        lines = handle.read().splitlines()
    return {alias: next(line for line in lines if line.startswith(f"[{address}]:"))
            for alias, address in spec.hosts.items()}


def write_ssh_config(directory, spec, strict, jump_for=(), **extra):
    """An ssh_config for the fleet's hosts with known_hosts in `directory`; the
    hosts in `jump_for` are reached through `jump`."""
    blocks = []
    for alias, address in spec.hosts.items():
        lines = [f"Host {alias}", f"  HostName {address}", f"  Port {sandbox.daemons.SSH_PORT}",
                 f"  User {spec.user(alias)}", f"  IdentityFile {spec.identity}",
                 "  IdentitiesOnly yes", f"  UserKnownHostsFile {directory}/known_hosts",
                 "  GlobalKnownHostsFile none", f"  StrictHostKeyChecking {strict}"]
        lines += [f"  {name} {value}" for name, value in extra.items()]
        if alias in jump_for:
            lines.append("  ProxyJump jump")
        blocks.append("\n".join(lines) + "\n")
    path = os.path.join(directory, "ssh_config")
    with open(path, "w") as handle:
        handle.write("\n".join(blocks))
    return path


def environment(ssh_config, hosts=("hk1", "hk2")):
    return Environment(name="hk", app={"repo": "/nonexistent.git"}, code_root="~/www/hk",
                       ssh_config=ssh_config, roles={"web": list(hosts)})


def whoami(name, env):
    host = connect(name, env)
    try:
        return host.run("id -un").strip()
    finally:
        close_every_hop(host.connection)


def close_every_hop(connection):
    """Close `connection` and its ProxyJump gateways (Fabric's close leaves them open)."""
    while isinstance(connection, Connection):
        connection.close()
        connection = connection.gateway


@pytest.mark.fleet
def test_yes_refuses_an_unknown_host(hk_fleet, tmp_path):
    env = environment(write_ssh_config(tmp_path, hk_fleet, "yes"))
    (tmp_path / "known_hosts").write_text(real_known_hosts_lines(hk_fleet)["hk2"] + "\n")
    with pytest.raises(paramiko.SSHException) as raised:
        whoami("hk1", env)
    message = describe_error(raised.value)
    assert message.startswith(f"unknown host key (hk1 at [{HK1}]:2222 not found in known_hosts")
    assert whoami("hk2", env) == HK_FLEET.user("hk2")


@pytest.mark.fleet
def test_accept_new_records_the_key_then_verifies_it(hk_fleet, tmp_path):
    env = environment(write_ssh_config(tmp_path, hk_fleet, "accept-new"))
    assert whoami("hk1", env) == HK_FLEET.user("hk1")
    assert (tmp_path / "known_hosts").read_text() == real_known_hosts_lines(hk_fleet)["hk1"] + "\n"
    # The next run verifies the recorded key: a host that now shows another key is refused.
    assert whoami("hk1", env) == HK_FLEET.user("hk1")
    hk2_key_for_hk1 = real_known_hosts_lines(hk_fleet)["hk2"].replace(HK2, HK1)
    (tmp_path / "known_hosts").write_text(hk2_key_for_hk1 + "\n")
    with pytest.raises(paramiko.BadHostKeyException) as raised:
        whoami("hk1", env)
    assert describe_error(raised.value) == f"host key mismatch for {HK1}: refusing to connect"
    assert (tmp_path / "known_hosts").read_text() == hk2_key_for_hk1 + "\n"


@pytest.mark.fleet
def test_accept_new_with_a_changed_key_is_one_line_from_fab(hk_fleet, tmp_path):
    ssh_config = write_ssh_config(tmp_path, hk_fleet, "accept-new")
    lines = real_known_hosts_lines(hk_fleet)
    (tmp_path / "known_hosts").write_text(lines["hk2"].replace(HK2, HK1) + "\n")
    (tmp_path / "hk.yml").write_text(environment(ssh_config).model_dump_json(exclude={"name", "folder"}))
    result = run_fab("hk", "releases", environments=str(tmp_path), timeout=120)
    line = assert_one_line_error(result, "hk1", f"host key mismatch for {HK1}")
    assert "hk2" not in line


@pytest.mark.fleet
def test_accept_new_hashed_from_parallel_connections_through_a_jump_host(hk_fleet, tmp_path):
    """hk1 and hk2 connect at once, each through its own connection to `jump`: every
    key, the jump host's included, is recorded once."""
    env = environment(write_ssh_config(tmp_path, hk_fleet, "accept-new", jump_for=("hk1", "hk2"),
                                       HashKnownHosts="yes"))
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        users = list(pool.map(lambda name: whoami(name, env), ["hk1", "hk2"]))
    assert users == [HK_FLEET.user("hk1"), HK_FLEET.user("hk2")]
    known_hosts = str(tmp_path / "known_hosts")
    with open(known_hosts) as handle:
        recorded = handle.read().splitlines()
    assert len(recorded) == 3 and all(line.startswith("|1|") for line in recorded)
    for alias, line in real_known_hosts_lines(hk_fleet).items():
        name, key_type, key = line.split()
        assert hostkeys.known_keys([known_hosts], name)[key_type].get_base64() == key


@pytest.mark.fleet
def test_proxyjump_refuses_a_jump_host_not_in_known_hosts(hk_fleet, tmp_path):
    env = environment(write_ssh_config(tmp_path, hk_fleet, "yes", jump_for=("hk1",)))
    lines = real_known_hosts_lines(hk_fleet)
    (tmp_path / "known_hosts").write_text(lines["hk1"] + "\n")
    with pytest.raises(paramiko.SSHException) as raised:
        whoami("hk1", env)
    assert describe_error(raised.value).startswith(
        f"unknown host key (jump at [{JUMP}]:2222 not found in known_hosts")
    (tmp_path / "known_hosts").write_text(lines["hk1"] + "\n" + lines["jump"] + "\n")
    assert whoami("hk1", env) == HK_FLEET.user("hk1")


@pytest.mark.fleet
def test_proxyjump_refuses_a_changed_target_key_behind_a_known_jump_host(hk_fleet, tmp_path):
    env = environment(write_ssh_config(tmp_path, hk_fleet, "yes", jump_for=("hk1",)))
    lines = real_known_hosts_lines(hk_fleet)
    (tmp_path / "known_hosts").write_text(
        lines["jump"] + "\n" + lines["hk2"].replace(HK2, HK1) + "\n")
    with pytest.raises(paramiko.BadHostKeyException) as raised:
        whoami("hk1", env)
    assert describe_error(raised.value) == f"host key mismatch for {HK1}: refusing to connect"


@pytest.mark.fleet
def test_no_prints_one_warning_line_per_host(hk_fleet, tmp_path):
    """Through `fab`: hk1 and hk2 are both reached through `jump` (two connections to
    it), every host is warned about exactly once, and paramiko's UserWarning is gone."""
    ssh_config = write_ssh_config(tmp_path, hk_fleet, "no", jump_for=("hk1", "hk2"))
    (tmp_path / "hk.yml").write_text(environment(ssh_config).model_dump_json(exclude={"name", "folder"}))
    result = run_fab("hk", "releases", environments=str(tmp_path), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    warned = [line for line in result.stdout.splitlines() if "warning: host key of" in line]
    hosts = [re.search(r"s\] (\S+) ", line).group(1) for line in warned]
    assert sorted(hosts) == ["hk1", "hk2", "jump"], result.stdout
    assert all("is not in known_hosts" in line for line in warned)
    assert "UserWarning" not in result.stderr and "Unknown" not in result.stderr, result.stderr
    assert not (tmp_path / "known_hosts").exists()


def test_a_host_whose_name_does_not_resolve_is_asked_about_in_one_line():
    error = socket.gaierror(-2, "Name or service not known")
    assert describe_error(error) == ("cannot connect: its name does not resolve (Name or service not known); "
                                     "is the host in the environment's ssh_config, with a HostName?")


@pytest.mark.parametrize("bad,why", [
    (b"web9 ssh-ed25519 AAAA!!not-base64\n", "line 3: not a host key line"),
    (b"web9 ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQ\n", "line 3: not a host key line"),
    (b"web9 ssh-ed25519 \xff\xfe\n", "line 3: not UTF-8 text"),
])
def test_a_malformed_known_hosts_line_is_a_config_error_naming_file_and_line(tmp_path, bad, why):
    good = hostkeys.known_hosts_line("web1", new_key()).encode()
    path = tmp_path / "known_hosts"
    path.write_bytes(good + b"# a comment\n" + bad + good.replace(b"web1", b"web2"))
    for fresh in (True, False):
        with pytest.raises(ConfigError) as raised:
            hostkeys.known_keys([str(path)], "web1", fresh=fresh)
        assert str(raised.value) == f"known_hosts file {path}: {why} (fix or delete that line)"
