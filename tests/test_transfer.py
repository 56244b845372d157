"""fab.transfer on the test fleet: a host receives only what its store lacks, a
transfer cut short goes on from where it stopped, and a file whose digest does not
match is refused, naming the file."""
import os

import pytest

from fab import config, transfer
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
            "web1": {"controller": whl.size + bundle.size}, "web2": {"controller": whl.size}}
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
