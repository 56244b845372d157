"""fab.transfer on the test fleet: a host receives only what its store lacks, a
transfer cut short goes on from where it stopped, and a file whose digest does not
match is refused, naming the file. With peers (the default) the controller sends
each artifact once and the hosts pass it on, a receiver whose peer dies going on
from its part; without them the controller sends to every host."""
import os
import socket
import subprocess
import threading
import time

import pytest

from fab import config, events, transfer
from fab.events import stream
from fab.errors import StepFailed
from fab.opening import open_fleet

pytestmark = pytest.mark.fleet


@pytest.fixture
def artifacts(tmp_path):
    made = []
    for name, size in (("one-1.0-py3-none-any.whl", 300_000), ("app.bundle", 5_000)):
        path = tmp_path / name
        path.write_bytes(os.urandom(size))
        made.append(transfer.artifact(str(path)))
    return made


def stored(deploy_env, host, a):
    path = os.path.join(deploy_env.code_root(host), "store", a.sha256, a.name)
    return open(path, "rb").read() if os.path.exists(path) else None


def put_part(deploy_env, host, a, content):
    """Leave `content` where a cut transfer of `a` leaves its part (as the host's user)."""
    directory = os.path.join(deploy_env.code_root(host), "store", a.sha256)
    deploy_env.remote(host, f"mkdir -p {directory}")
    path = os.path.join(directory, a.name + ".part")
    with open(path, "wb") as handle:
        handle.write(content)
    owner = os.stat(directory)
    os.chown(path, owner.st_uid, owner.st_gid)
    return path


def test_each_host_receives_what_it_lacks_goes_on_from_a_part_and_refuses_a_wrong_digest(deploy_env, artifacts):
    env = config.load_environment(deploy_env.name, deploy_env.directory)
    whl, bundle = artifacts
    with open_fleet(env) as fleet:
        received = transfer.deliver(fleet, {"web1": [whl, bundle], "web2": [whl]})
        assert {name: r.sources for name, r in received.items()} == {
            "web1": {"controller": whl.size + bundle.size}, "web2": {"web1": whl.size}}
        for host in ("web1", "web2"):
            assert stored(deploy_env, host, whl) == open(whl.local, "rb").read()
        assert stored(deploy_env, "pillow1", whl) is None

        again = transfer.deliver(fleet, {"web1": [whl, bundle]})
        assert (again["web1"].sources, again["web1"].had) == ({}, 2)

        # A cut transfer: half of the file arrived; the rest is all that is sent.
        put_part(deploy_env, "pillow1", whl, open(whl.local, "rb").read()[:100_000])
        resumed = transfer.deliver(fleet, {"pillow1": [whl]})
        assert resumed["pillow1"].sources == {"controller": whl.size - 100_000}
        assert stored(deploy_env, "pillow1", whl) == open(whl.local, "rb").read()

        # A part that is not the start of the file: the host refuses the result and names it.
        bad = put_part(deploy_env, "web2", bundle, bytes(10))
        with pytest.raises(StepFailed) as failed:
            transfer.deliver(fleet, {"web2": [bundle]})
        assert "app.bundle: sha256" in str(failed.value.failures["web2"])
        assert stored(deploy_env, "web2", bundle) is None and not os.path.exists(bad)


ALL = ("web1", "web2", "pillow1", "proxy1")


def big_artifact(tmp_path, size):
    path = tmp_path / "app-1.0-py3-none-any.whl"
    path.write_bytes(os.urandom(size))
    return transfer.artifact(str(path))


def four_hosts(deploy_env, **transfer_settings):
    deploy_env.write_config(with_proxy=True, transfer={"ports": "47300-47399", **transfer_settings})
    return config.load_environment(deploy_env.name, deploy_env.directory)


def listening(deploy_env):
    """The addresses:ports the test hosts listen on in the transfer's port range."""
    out = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True, check=True).stdout
    addresses = {deploy_env.spec.hosts[name] for name in ALL}
    return [word for line in out.splitlines() for word in line.split()
            if word.rsplit(":", 1)[0] in addresses and 47300 <= int(word.rsplit(":", 1)[1] or 0) <= 47399]


def test_with_peers_the_controller_sends_one_copy_and_hosts_pass_it_on_as_a_tree(deploy_env, tmp_path):
    env = four_hosts(deploy_env, fanout=1)
    whl = big_artifact(tmp_path, 2_000_000)
    with open_fleet(env) as fleet:
        received = transfer.deliver(fleet, {name: [whl] for name in ALL})
    controller = sum(r.sources.get("controller", 0) for r in received.values())
    assert controller <= 1.5 * whl.size
    seeds = [name for name, r in received.items() if "controller" in r.sources]
    assert len(seeds) == 1
    peers = {name: next(iter(r.sources)) for name, r in received.items() if name not in seeds}
    assert set(peers.values()) - set(seeds), f"no receiver became a source: {peers}"  # a tree, not a star
    assert all(r.bytes == whl.size for r in received.values())
    for name in ALL:
        assert stored(deploy_env, name, whl) == open(whl.local, "rb").read()
    assert listening(deploy_env) == []  # every server stopped with the step


def test_a_host_that_held_it_before_serves_it_and_parts_go_on_from_where_they_stopped(deploy_env, tmp_path):
    env = four_hosts(deploy_env)
    whl = big_artifact(tmp_path, 400_000)
    content = open(whl.local, "rb").read()
    with open_fleet(env) as fleet:
        assert transfer.deliver(fleet, {"web1": [whl]})["web1"].sources == {"controller": whl.size}
        for name in ("web2", "pillow1"):  # a transfer cut short left these
            put_part(deploy_env, name, whl, content[:120_000])
        received = transfer.deliver(fleet, {name: [whl] for name in ALL})
    assert {name: r.sources for name, r in received.items()} == {
        "web1": {}, "web2": {"web1": whl.size - 120_000}, "pillow1": {"web1": whl.size - 120_000},
        "proxy1": {"web1": whl.size}}
    assert received["web1"].had == 1
    assert all(stored(deploy_env, name, whl) == content for name in ALL)


def test_bytes_a_peer_sends_that_are_not_the_file_are_refused_and_sent_again_by_the_controller(deploy_env, tmp_path):
    env = four_hosts(deploy_env)
    whl = big_artifact(tmp_path, 100_000)
    content = open(whl.local, "rb").read()
    warnings = []
    subscriber = stream.subscribe(lambda event: warnings.append((event.host, event.text))
                                  if isinstance(event, events.Note) and event.level == "warning" else None)
    try:
        with open_fleet(env) as fleet:
            transfer.deliver(fleet, {"web1": [whl]})
            with open(os.path.join(deploy_env.code_root("web1"), "store", whl.sha256, whl.name), "r+b") as kept:
                kept.write(bytes(1000))  # web1's copy goes bad (or web1 lies)
            received = transfer.deliver(fleet, {name: [whl] for name in ALL})
    finally:
        stream.unsubscribe(subscriber)
    receivers = ("web2", "pillow1", "proxy1")
    assert {name: received[name].sources for name in receivers} == {
        name: {"web1": whl.size, "controller": whl.size} for name in receivers}
    assert all(stored(deploy_env, name, whl) == content for name in receivers)
    assert sorted(host for host, _ in warnings) == sorted(receivers)
    assert all(text.startswith(f"{whl.name}: sha256 ") and text.endswith(
        "(refused), from web1: the controller sends it again") for _, text in warnings)


def test_receivers_of_a_peer_that_dies_mid_transfer_go_on_from_their_part(deploy_env, tmp_path, monkeypatch):
    env = four_hosts(deploy_env, fanout=3)
    whl = big_artifact(tmp_path, 3_000_000)
    monkeypatch.setattr(transfer, "PEER_RATE", 1_000_000)  # 3 s per receiver: time to cut it
    parts = {name: os.path.join(deploy_env.code_root(name), "store", whl.sha256, whl.name + ".part")
             for name in ALL}
    killed = []

    def kill_the_serving_peer():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            if any(os.path.exists(p) and 200_000 < os.path.getsize(p) < whl.size for p in parts.values()):
                for pid in server_pids(deploy_env):
                    os.kill(pid, 9)
                    killed.append(pid)
            time.sleep(0.02)

    watcher = threading.Thread(target=kill_the_serving_peer)
    watcher.start()
    try:
        with open_fleet(env) as fleet:
            received = transfer.deliver(fleet, {name: [whl] for name in ALL})
    finally:
        killed.append("done")
        watcher.join()
    assert isinstance(killed[0], int), "no server was found to kill"
    (seed,) = [name for name, r in received.items() if set(r.sources) == {"controller"}]
    for name, r in received.items():
        assert r.bytes == whl.size and stored(deploy_env, name, whl) == open(whl.local, "rb").read()
        if name != seed:  # part from the seed, the rest from the controller, going on from the part
            assert 0 < r.sources[seed] < whl.size and r.sources["controller"] == whl.size - r.sources[seed]


def server_pids(deploy_env):
    """The pids of the peer servers (fab/remote/peer.py serve) on the test hosts' addresses."""
    addresses = {deploy_env.spec.hosts[name].encode() for name in ALL}
    found = []
    for entry in os.listdir("/proc"):
        try:
            words = open(f"/proc/{entry}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if (len(words) > 5 and words[1] == b"-c" and words[3] == b"serve" and words[5] in addresses
                and words[2].startswith(b'"""Artifacts passed from host to host')):
            found.append(int(entry))
    return found


def test_when_no_host_can_serve_the_controller_sends_to_every_host_and_says_why(deploy_env, tmp_path):
    env = four_hosts(deploy_env, ports="47390-47390")
    whl = big_artifact(tmp_path, 100_000)
    taken = []
    for name in ALL:  # the one port allowed is taken on every host
        held = socket.socket()
        held.bind((deploy_env.spec.hosts[name], 47390))
        held.listen()
        taken.append(held)
    warnings = []
    subscriber = stream.subscribe(lambda event: warnings.append(event.text)
                                  if isinstance(event, events.Note) and event.level == "warning" else None)
    try:
        with open_fleet(env) as fleet:
            received = transfer.deliver(fleet, {name: [whl] for name in ALL})
    finally:
        stream.unsubscribe(subscriber)
        for held in taken:
            held.close()
    assert {name: r.sources for name, r in received.items()} == {name: {"controller": whl.size} for name in ALL}
    assert warnings == ["no host could serve on ports 47390-47390: the controller sends the rest "
                        "(`transfer: {peers: false}` skips trying)"]
    assert all(stored(deploy_env, name, whl) == open(whl.local, "rb").read() for name in ALL)


def test_without_peers_every_host_receives_from_the_controller(deploy_env, tmp_path):
    env = four_hosts(deploy_env, peers=False)
    whl = big_artifact(tmp_path, 200_000)
    with open_fleet(env) as fleet:
        received = transfer.deliver(fleet, {name: [whl] for name in ALL})
    assert {name: r.sources for name, r in received.items()} == {name: {"controller": whl.size} for name in ALL}
    assert listening(deploy_env) == []
