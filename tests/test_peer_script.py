"""fab/remote/peer.py and peers.sh run here as a delivery runs them on hosts (real
processes on a loopback address, no SSH): a store served read-only under its random
path, downloads going on from a part with HTTP Range, another source tried when one
fails, what arrived whole checked and kept, a server that exits when idle and that
`stop` ends only if it is still the one started."""
import hashlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from fab import shell
from fab.transfer import _Report

PYTHON = "/usr/bin/python3"
ADDRESS = f"127.0.{int(os.environ.get('FAB_TEST_FLEET', '0')) % 200}.90"
PORTS = "47300-47399"
TOKEN = "a" * 32


def peer(*args, timeout=30):
    return subprocess.run([PYTHON, "-c", shell.remote_script("peer.py"), *args], capture_output=True, text=True,
                          timeout=timeout, check=True).stdout


def peers_sh(*args, check=True):
    return subprocess.run(["bash", "-c", shell.remote_script("peers"), "peers.sh", *args], capture_output=True,
                          text=True, timeout=60, check=check)


def put(store, content, name="one-1.0-py3-none-any.whl"):
    sha = hashlib.sha256(content).hexdigest()
    os.makedirs(store / sha, exist_ok=True)
    (store / sha / name).write_bytes(content)
    return sha, name


@pytest.fixture
def servers():
    """Start servers with `start(store, idle=60, rate=0)`: (port, pid); each killed afterwards."""
    started = []

    def start(store, idle=60, rate=0):
        words = peer("serve", str(store), ADDRESS, PORTS, str(idle), TOKEN, str(rate)).split()
        assert words[0] == "serving", words
        port, pid = int(words[1]), int(words[2])
        started.append(pid)
        return port, pid

    yield start
    for pid in started:
        if alive(pid):
            os.kill(pid, signal.SIGTERM)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    return status != "Z"


def url(port, sha, name, token=TOKEN):
    return f"http://{ADDRESS}:{port}/{token}/{sha}/{name}"


def job(sha, name, size, *sources):
    return json.dumps([{"sha256": sha, "name": name, "size": size, "sources": [list(s) for s in sources]}])


def test_a_download_goes_on_from_the_part_and_only_the_store_is_served(tmp_path, servers):
    content = os.urandom(300_000)
    sha, name = put(tmp_path / "served", content)
    (tmp_path / "served" / sha / f"{name}.part").write_bytes(b"half")
    os.symlink("/etc/passwd", tmp_path / "served" / sha / "passwd")
    port, _ = servers(tmp_path / "served")

    store = tmp_path / "receiving"
    os.makedirs(store / sha)
    (store / sha / f"{name}.part").write_bytes(content[:100_000])
    assert peer("fetch", str(store), job(sha, name, len(content), ("web2", url(port, sha, name)))) == "from web2 200000\n"
    assert (store / sha / f"{name}.part").read_bytes() == content

    for refused in (url(port, sha, name, token="b" * 32), url(port, sha, f"{name}.part"), url(port, sha, "passwd"),
                    f"http://{ADDRESS}:{port}/{TOKEN}/../../etc/passwd", f"http://{ADDRESS}:{port}/{TOKEN}/{sha}"):
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(refused, timeout=10)
        assert error.value.code == 404, refused


def test_a_dead_source_is_passed_over_for_the_next_and_peers_sh_keeps_what_arrived_whole(tmp_path, servers):
    content = os.urandom(50_000)
    sha, name = put(tmp_path / "served", content)
    port, _ = servers(tmp_path / "served")
    store = tmp_path / "receiving"
    dead = f"http://{ADDRESS}:1/{TOKEN}/{sha}/{name}"
    fetching = job(sha, name, len(content), ("web1", dead), ("web2", url(port, sha, name)))
    result = peers_sh("receive", PYTHON, shell.remote_script("peer.py"), shell.remote_script("receive"), str(store),
                      fetching, "", "", "", "", "", sha, name, str(len(content)), "peer")
    assert result.returncode == 0, result.stderr
    report = _Report(result.stdout, {"web1", "web2"}, [sha])
    assert (report.sent, report.failed, report.lack) == ({"web2": 50_000}, {"web1"}, {})
    assert f"received {sha} 50000" in result.stdout
    assert (store / sha / name).read_bytes() == content and not (store / sha / f"{name}.part").exists()


def test_a_part_that_cannot_be_written_fails_the_host_naming_it_without_blaming_the_source(tmp_path, servers):
    content = os.urandom(20_000)
    sha, name = put(tmp_path / "served", content)
    port, _ = servers(tmp_path / "served")
    store = tmp_path / "receiving"
    os.makedirs(store / sha / f"{name}.part")  # as a full disk would, the write fails here
    result = subprocess.run([PYTHON, "-c", shell.remote_script("peer.py"), "fetch", str(store),
                             job(sha, name, len(content), ("web2", url(port, sha, name)))],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and result.stderr.startswith(f"{name}.part: cannot write: ")
    assert "failed" not in result.stdout


def test_a_part_cut_short_is_reported_and_a_wrong_one_refused_for_the_controller_to_send_again(tmp_path):
    content = os.urandom(10_000)
    sha = hashlib.sha256(content).hexdigest()
    store = tmp_path / "store"
    os.makedirs(store / sha)
    part = store / sha / "app.bundle.part"
    part.write_bytes(content[:4_000])
    scripts = (PYTHON, shell.remote_script("peer.py"), shell.remote_script("receive"), str(store), "",
               "", "", "", "", "")
    cut = peers_sh("receive", *scripts, sha, "app.bundle", str(len(content)), "peer")
    assert cut.returncode == 0 and f"lack {sha} 4000" in cut.stdout
    part.write_bytes(bytes(len(content)))
    wrong = peers_sh("receive", *scripts, sha, "app.bundle", str(len(content)), "peer")
    report = _Report(wrong.stdout, (), [sha])
    assert report.refused[sha].startswith("app.bundle: sha256 ") and report.refused[sha].endswith("(refused)")
    assert not part.exists()
    # From the controller, it fails the host, naming the file.
    part.write_bytes(bytes(len(content)))
    failed = peers_sh("receive", *scripts, sha, "app.bundle", str(len(content)), "controller", check=False)
    assert failed.returncode == 1 and "app.bundle: sha256" in failed.stderr and not part.exists()


def test_the_server_exits_when_idle_and_stop_ends_only_the_server_it_names(tmp_path, servers):
    _, idle_pid = servers(tmp_path, idle=1)
    deadline = time.monotonic() + 15
    while alive(idle_pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(idle_pid)

    _, pid = servers(tmp_path)
    assert peers_sh("stop", str(pid), "c" * 32).stdout == f"gone {pid}\n"
    assert alive(pid)
    assert peers_sh("stop", str(pid), TOKEN).stdout == f"stopped {pid}\n"
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(pid)
