"""fab.operations.inline_transfer without SSH: which artifacts ride in a command, the
command length that sends one back to a delivery, and the `transfer` step itself,
run here by the real batch script (fab/remote/batch.sh, receive.sh) on a local store:
it keeps the file it carries, or refuses a wrong byte naming the file."""
import base64
import os
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fab import events, steps, transfer
from fab.config import load_environment
from fab.operations import inline_transfer
from fab.operations.state import HostState
from fab.paths import Paths


class Host:
    def __init__(self, env, root):
        self.name, self.env = "web1", env
        self.state = HostState(home=str(root), paths=Paths(str(root / "www")))

    @property
    def paths(self):
        return self.state.paths


@pytest.fixture
def host(tmp_path):
    (tmp_path / "prod.yml").write_text("""
app: {repo: /srv/app.git}
code_root: ~/www
roles: {webworkers: [web1]}
services: {web: {role: webworkers, template: supervisor/gunicorn.conf.j2, port: 8000}}
""")
    return Host(load_environment("prod", str(tmp_path)), tmp_path / "home")


def made(tmp_path, size, name="app.bundle"):
    path = tmp_path / f"{size}-{name}"
    path.write_bytes(os.urandom(size))
    return transfer.artifact(str(path), name)


@pytest.mark.parametrize("size,carried", [(0, True), (486, True), (inline_transfer.INLINE_MAX_BYTES, True),
                                          (inline_transfer.INLINE_MAX_BYTES + 1, False), (300_000, False)])
def test_only_an_artifact_up_to_the_bound_rides_in_a_command(tmp_path, size, carried):
    assert inline_transfer.carried(made(tmp_path, size)) is carried


def test_the_bound_leaves_a_build_batchs_command_well_under_linuxs_limit_for_one_argument():
    max_arg_strlen = 128 << 10
    # A bundle at the bound is 4/3 of it in base64: with a build batch of ~25 KB of
    # scripts (measured: tests/test_stages.py) there is room for the services' configs.
    assert inline_transfer.INLINE_MAX_BYTES * 4 // 3 + 25_000 < inline_transfer.COMMAND_MAX_CHARS
    assert inline_transfer.COMMAND_MAX_CHARS <= max_arg_strlen * 3 // 4


def test_a_batch_whose_command_would_be_too_long_does_not_fit(host, tmp_path):
    step = inline_transfer.receive(host, made(tmp_path, 20_000))
    assert inline_transfer.fits([step])
    long_command = steps.Step("build", "echo " + "x" * inline_transfer.COMMAND_MAX_CHARS)
    assert not inline_transfer.fits([step, long_command])
    assert inline_transfer.command_chars([step]) > 20_000 * 4 // 3


def run_batch(host, batch):
    """The batch's command run here by bash, as a host's login shell runs it."""
    os.makedirs(host.state.home, exist_ok=True)
    return subprocess.run(["bash", "-c", steps.compose(batch)], capture_output=True, text=True,
                          env={**os.environ, "HOME": host.state.home})


def test_the_step_keeps_the_file_it_carries_and_says_what_the_host_received(host, tmp_path):
    bundle = made(tmp_path, 486)
    step = inline_transfer.receive(host, bundle)
    result = run_batch(host, [step])
    assert result.returncode == 0, result.stderr
    (outcome,), failed = steps.parse([step], result.stdout)
    assert failed is None and outcome.note == "received 486 B from controller"
    assert isinstance(outcome.result, events.ArtifactsReceived)
    assert (outcome.result.host, outcome.result.sources) == ("web1", {"controller": 486})
    kept = os.path.join(host.paths.store, bundle.sha256, bundle.name)
    assert open(kept, "rb").read() == open(bundle.local, "rb").read()
    assert not os.path.exists(kept + ".part")

    (again,), _ = steps.parse([step], run_batch(host, [step]).stdout)  # a resume: kept already
    assert again.note == "had all 1" and again.result is None


def corrupted(step, bundle):
    """`step` with one character of its base64 changed (still base64: another byte)."""
    encoded = base64.b64encode(open(bundle.local, "rb").read()).decode()
    flipped = encoded[:10] + ("A" if encoded[10] != "A" else "B") + encoded[11:]
    assert encoded in step.body
    return steps.Step(step.name, step.body.replace(encoded, flipped), then=step.then, result=step.result)


@pytest.mark.parametrize("damage", ["a byte", "not base64"])
def test_a_wrong_byte_is_refused_naming_the_file_and_nothing_is_kept(host, tmp_path, damage):
    bundle = made(tmp_path, 4000, "0123abcd.bundle")
    step = inline_transfer.receive(host, bundle)
    if damage == "a byte":
        step = corrupted(step, bundle)
    else:
        encoded = base64.b64encode(open(bundle.local, "rb").read()).decode()
        step = steps.Step(step.name, step.body.replace(encoded, encoded[:100] + "!" + encoded[100:]))
    result = run_batch(host, [step])
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("0123abcd.bundle: "), last
    assert ("(refused)" if damage == "a byte" else "not kept: base64: invalid input") in last
    folder = os.path.join(host.paths.store, bundle.sha256)
    assert not os.path.exists(folder) or os.listdir(folder) == []


@settings(max_examples=25, deadline=None)
@given(st.binary(max_size=3000))
def test_any_bytes_arrive_as_they_were(tmp_path_factory, content):
    root = tmp_path_factory.mktemp("any")
    (root / "prod.yml").write_text("app: {repo: /srv/app.git}\ncode_root: ~/www\nroles: {webworkers: [web1]}\n")
    host = Host(load_environment("prod", str(root)), root / "home")
    (root / "x.bundle").write_bytes(content)
    bundle = transfer.artifact(str(root / "x.bundle"))
    step = inline_transfer.receive(host, bundle)
    result = run_batch(host, [step])
    assert result.returncode == 0, result.stderr
    assert open(os.path.join(host.paths.store, bundle.sha256, bundle.name), "rb").read() == content
    (outcome,), _ = steps.parse([step], result.stdout)  # its size, as the host read it from the base64
    assert outcome.result.sources == {"controller": len(content)}
