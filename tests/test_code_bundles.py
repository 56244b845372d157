"""Code from the controller, on the test fleet: the app's repository is readable by
root (the controller) only, so no host can fetch from it. A cold deploy sends each
host a full bundle (one file for all: their caches are alike), the next commit's
deploy only an incremental one, a redeploy none; hotfix_deploy gets its commit the
same way; `app.fetch: hosts` against that repository fails in one clear line."""
import json
import os
import shutil
import subprocess

import pytest

from conftest import CONTROLLER_CACHE, DeployEnv, assert_ok, assert_one_line_error
from fab import sandbox

git = sandbox.tools.git


@pytest.fixture
def private_repo(fleet, tmp_path):
    """The sample app in a bare repository only root can read (its folder is 0700),
    with a 300 KB file git cannot compress; `commit(path, text)` pushes a change."""
    top = tmp_path / "private"
    top.mkdir(mode=0o700)
    bare, work = top / "app.git", tmp_path / "work"
    git("clone", "-q", "--", fleet.app_workdir, str(work))
    (work / "blob.bin").write_bytes(os.urandom(300_000))
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "a large file", cwd=work)
    git("clone", "-q", "--bare", "--", str(work), str(bare))
    os.chmod(top, 0o700)

    def commit(path, text):
        (work / path).write_text(text)
        git("commit", "-q", "-am", f"change {path}", cwd=work)
        git("push", "-q", "--", str(bare), "HEAD:main", cwd=work)
        return git("rev-parse", "HEAD", cwd=work)

    return type("PrivateRepo", (), {"url": str(bare), "commit": staticmethod(commit),
                                    "head": staticmethod(lambda: git("rev-parse", "HEAD", cwd=work))})


@pytest.fixture
def bundle_env(fleet, tmp_path):
    """An environment of its own (own code root and git cache), removed whole after."""
    directory = tmp_path / "environments"
    directory.mkdir()
    env = DeployEnv(fleet, str(directory), "fabbundle", 8170)
    try:
        yield env
    finally:
        env.remove_from_hosts()
        for host in fleet.hosts:
            shutil.rmtree(env.code_root(host), ignore_errors=True)


def deploy(env, tmp_path, *args):
    """`fab <env> <args>` (deploy by default) and its JSON summary's {host: {step: note}}."""
    summary = tmp_path / "summary.json"
    result = assert_ok(env.fab(*(args or ["deploy"]), environ={"FAB_JSON": str(summary)}))
    hosts = json.loads(summary.read_text())["hosts"]
    return result, {name: {s["step"]: s["note"] for s in host["steps"]} for name, host in hosts.items()}


def bundles_made():
    """{bundle file name: size} in the controller's cache (fab.app_repo keeps them)."""
    found = {}
    for folder, _, files in os.walk(os.path.join(CONTROLLER_CACHE["XDG_CACHE_HOME"], "fab-deploy", "repos")):
        found.update({name: os.path.getsize(os.path.join(folder, name)) for name in files
                      if name.endswith(".bundle")})
    return found


def test_hosts_that_cannot_read_the_repository_get_the_code_in_bundles(bundle_env, private_repo, tmp_path):
    env = bundle_env
    env.write_config(app={"repo": private_repo.url, "branch": "main"})
    for host in env.hosts:  # the host users really cannot read it
        assert env.remote(host, f"git ls-remote {private_repo.url} >/dev/null 2>&1 && echo read || echo refused") \
            == "refused"

    first = private_repo.head()
    before = set(bundles_made())
    _, notes = deploy(env, tmp_path)
    cold = {name: size for name, size in bundles_made().items() if name not in before}
    assert list(cold) == [f"{first}-{cold_key(cold)}.bundle"] and list(cold.values())[0] > 300_000
    for host in env.hosts:
        assert notes[host]["code"].startswith(f"exported {first[:12]} from bundle ("), notes[host]
        assert notes[host]["transfer"].startswith("received ") and "from controller" in notes[host]["transfer"]
        assert os.listdir(os.path.join(env.code_root(host), "store")) == []  # used, then removed
    assert env.version("web1")["commit"] == first

    second = private_repo.commit("app.py", open(os.path.join(env.spec.app_workdir, "app.py")).read() + "\n# two\n")
    before = set(bundles_made())
    _, notes = deploy(env, tmp_path)
    incremental = {name: size for name, size in bundles_made().items() if name not in before}
    assert len(incremental) == 1 and list(incremental.values())[0] < list(cold.values())[0] / 50, incremental
    for host in env.hosts:
        assert notes[host]["code"].startswith(f"exported {second[:12]} from bundle ("), notes[host]
    assert env.version("web1")["commit"] == second

    # The same commit again: every cache has it, nothing is sent.
    _, notes = deploy(env, tmp_path)
    for host in env.hosts:
        assert notes[host]["code"] == f"exported {second[:12]} from cache" and "transfer" not in notes[host]

    third = private_repo.commit("app.py", open(os.path.join(env.spec.app_workdir, "app.py")).read() + "\n# three\n")
    live = env.current("web1")
    _, notes = deploy(env, tmp_path, "hotfix_deploy")
    for host in env.hosts:
        assert notes[host]["fetch"].startswith(f"fetched {third[:12]} from bundle ("), notes[host]
        with open(os.path.join(env.code_root(host), "current", "REVISION")) as handle:
            assert handle.read().strip() == third
    assert env.current("web1") == live and env.version("web1")["commit"] == third


def cold_key(made):
    """The bases key of the one bundle in `made` ({name: size})."""
    name = next(iter(made))
    return name.removesuffix(".bundle").rpartition("-")[2]


def test_hosts_fetching_a_repository_they_cannot_read_fail_in_one_clear_line(bundle_env, private_repo):
    env = bundle_env
    env.write_config(app={"repo": private_repo.url, "branch": "main", "fetch": "hosts"})
    line = assert_one_line_error(env.fab("deploy"), "step 'code' failed on ",
                                 f"this host cannot fetch from {private_repo.url} (app.fetch: hosts): fatal: ")
    assert line.endswith("does not exist)"), line
    assert all(env.current(host) is None for host in env.hosts)
    assert subprocess.run(["git", "--git-dir", private_repo.url, "rev-parse", "HEAD"],
                          capture_output=True).returncode == 0  # the controller could have read it
