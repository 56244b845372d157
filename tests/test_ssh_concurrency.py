"""`ssh_concurrency`: at most N of a fleet's connections open at once, while every
host's step still runs at the same time as the others' (no SSH: fake connections)."""
import threading
import time

import pytest

from fab import fleet as fleets
from fab import hosts
from fab.settings import Environment


def environment(**settings):
    return Environment.model_validate({
        "name": "bound", "app": {"repo": "/nowhere.git"}, "code_root": "~/www/bound",
        "roles": {"app": [f"host{i}" for i in range(1, 41)]}, **settings,
    })


class FakeConnection:
    """Counts how many connections are opening at the same moment."""

    opening = 0
    most = 0
    lock = threading.Lock()

    def __init__(self, name):
        self.host = name
        self.transport = None

    def open(self):
        with FakeConnection.lock:
            FakeConnection.opening += 1
            FakeConnection.most = max(FakeConnection.most, FakeConnection.opening)
        time.sleep(0.05)
        with FakeConnection.lock:
            FakeConnection.opening -= 1
        self.transport = self

    def is_active(self):
        return True

    def close(self):
        self.transport = None


@pytest.fixture
def fake_connections(monkeypatch):
    FakeConnection.opening = FakeConnection.most = 0
    monkeypatch.setattr(fleets, "connect", lambda name, env: hosts.Host(name, env, FakeConnection(name)))


def test_the_default_is_thirty():
    assert environment().ssh_concurrency == 30


def test_connections_open_at_most_ssh_concurrency_at_once(fake_connections):
    env = environment(ssh_concurrency=3)
    fleet = fleets.Fleet.connect(env)
    assert all(host.connection.transport for host in fleet.hosts.values())
    assert FakeConnection.most == 3


def test_every_host_works_at_once_whatever_the_bound(fake_connections):
    env = environment(ssh_concurrency=2)
    fleet = fleets.Fleet.connect(env)
    # 40 parties (more than any fixed pool of 32): passes only if all 40 hosts' steps run at the same time.
    together = threading.Barrier(len(env.hosts), timeout=10)
    results = fleet.each("together", lambda host: together.wait() is not None and "ok")
    assert sorted(results) == sorted(env.hosts)


def test_reconnects_are_bounded_too(fake_connections):
    env = environment(ssh_concurrency=4)
    fleet = fleets.Fleet.connect(env)
    for host in fleet.hosts.values():
        host.connection.close()  # as a lost connection: the next open reconnects
    FakeConnection.most = 0
    fleet.each("reopen", lambda host: host.open())
    assert FakeConnection.most == 4


def test_ssh_concurrency_must_be_positive():
    with pytest.raises(ValueError):
        environment(ssh_concurrency=0)
