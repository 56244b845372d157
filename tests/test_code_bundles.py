"""Code from the controller, on the test fleet: the app's repository is readable by
root (the controller) only, so no host can fetch from it. A cold deploy sends each
host a full bundle (one file for all: their caches are alike), the next commit's
deploy only an incremental one, a redeploy none; hotfix_deploy gets its commit the
same way; `app.fetch: hosts` against that repository fails in one clear line. A
code-only change's small bundle rides in each host's build batch (no round trip of
its own), a wrong byte in it fails its host naming the file, and resume goes on."""
import json
import os
import subprocess

import pytest

from conftest import (CONTROLLER_CACHE, assert_ok, assert_one_line_error, environment_of_its_own, sshd_log_sizes,
                      sshd_sessions)
from fab import PROJECT_ROOT, config, history, sandbox

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

    return type("PrivateRepo", (), {"url": str(bare), "work": work, "commit": staticmethod(commit),
                                    "head": staticmethod(lambda: git("rev-parse", "HEAD", cwd=work))})


@pytest.fixture
def bundle_env(fleet, tmp_path):
    """An environment of its own (own code root and git cache: a cold deploy), removed whole after."""
    with environment_of_its_own(fleet, str(tmp_path / "environments"), "fabbundle", 8170) as env:
        yield env


def deploy(env, tmp_path, *args, environ=None):
    """`fab <env> <args>` (deploy by default) and its JSON summary's {host: {step: note}}."""
    result, hosts = summarized(env, tmp_path, *args, environ=environ)
    return result, {name: {s["step"]: s["note"] for s in host["steps"]} for name, host in hosts.items()}


def summarized(env, tmp_path, *args, environ=None):
    """`fab <env> <args>` (deploy by default) and its JSON summary's hosts."""
    summary = tmp_path / "summary.json"
    result = assert_ok(env.fab(*(args or ["deploy"]), environ={"FAB_JSON": str(summary), **(environ or {})}))
    return result, json.loads(summary.read_text())["hosts"]


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
        assert notes[host]["transfer"].startswith("received ")  # from the controller or a peer that had it
        store = os.path.join(env.code_root(host), "store")
        assert not [name for digest in os.listdir(store) for name in os.listdir(os.path.join(store, digest))
                    if name.endswith(".bundle")]  # used, then removed (the wheels stay)
    assert any("from controller" in notes[host]["transfer"] for host in env.hosts)
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


def code_change(env, private_repo, line):
    return private_repo.commit("app.py", open(os.path.join(env.spec.app_workdir, "app.py")).read() + f"\n# {line}\n")


def revision(env, host):
    with open(os.path.join(env.code_root(host), "current", "REVISION")) as handle:
        return handle.read().strip()


#: Remote commands per host of a code-only deploy to this fleet whose bundle rides in the
#: build batch (measured: 4 on web1 and web2, 3 on pillow1). Delivering it cost 3 commands
#: and an SFTP session more per host (the release made first, the store's check, the keep).
CODE_ONLY_COMMANDS = 4


def test_a_code_only_change_carries_its_bundle_in_the_build_batch_and_a_hotfix_in_its_fetch(
        bundle_env, private_repo, tmp_path):
    env = bundle_env
    env.write_config(app={"repo": private_repo.url, "branch": "main"})
    deploy(env, tmp_path)  # cold: a full bundle (over 300 KB), delivered
    second = code_change(env, private_repo, "two")
    before, since = set(bundles_made()), sshd_log_sizes(env.spec, env.hosts)
    _, hosts = summarized(env, tmp_path)
    sessions = sshd_sessions(env.spec, since)
    (size,) = [size for name, size in bundles_made().items() if name not in before]
    assert size < 32 << 10
    for host in env.hosts:
        notes = {step["step"]: step["note"] for step in hosts[host]["steps"]}
        assert notes["transfer"] == f"received {size} B from controller", notes
        assert notes["code"].startswith(f"exported {second[:12]} from bundle ("), notes
        assert hosts[host]["received"] == {"bytes": size, "from": {"controller": size}}
        commands, sftp = sessions[host]
        assert sftp == 0 and commands <= CODE_ONLY_COMMANDS, (host, sessions)
        assert revision(env, host) == second
    assert env.version("web1")["commit"] == second and env.version("web2")["commit"] == second
    store = history.open_store(config.load_environment(env.name, env.directory))
    assert store.received(store.operation(env.name)["id"]) == {host: {"controller": size} for host in env.hosts}

    # A hotfix's small bundle rides in its fetch round trip the same way.
    third = code_change(env, private_repo, "three")
    before, since = set(bundles_made()), sshd_log_sizes(env.spec, env.hosts)
    _, hosts = summarized(env, tmp_path, "hotfix_deploy")
    sessions = sshd_sessions(env.spec, since)
    (size,) = [size for name, size in bundles_made().items() if name not in before]
    for host in env.hosts:
        notes = {step["step"]: step["note"] for step in hosts[host]["steps"]}
        assert notes["transfer"] == f"received {size} B from controller", notes
        assert notes["fetch"] == f"fetched {third[:12]} from bundle ({size} B)", notes
        assert hosts[host]["received"] == {"bytes": size, "from": {"controller": size}}
        assert sessions[host][1] == 0 and revision(env, host) == third, sessions
    assert env.version("web1")["commit"] == third


FLIP_ON_WEB1 = """
import base64
from fab.operations import inline_transfer
from fab.steps import Step

carry = inline_transfer.receive


def receive(host, artifact):  # web1's copy with one byte changed (its base64 still base64)
    step = carry(host, artifact)
    if host.name != "web1":
        return step
    encoded = base64.b64encode(open(artifact.local, "rb").read()).decode()
    flipped = encoded[:10] + ("A" if encoded[10] != "A" else "B") + encoded[11:]
    return Step(step.name, step.body.replace(encoded, flipped), then=step.then, result=step.result)


inline_transfer.receive = receive
"""


def test_a_wrong_byte_in_a_carried_bundle_fails_its_host_naming_the_file_and_resume_goes_on(
        bundle_env, private_repo, tmp_path):
    env = bundle_env
    env.write_config(app={"repo": private_repo.url, "branch": "main"})
    deploy(env, tmp_path)
    live = {host: env.current(host) for host in env.hosts}
    third = code_change(env, private_repo, "three")
    hook = tmp_path / "flip"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(FLIP_ON_WEB1)  # loaded by the deployer's python at its start
    line = assert_one_line_error(env.fab("deploy", environ={"PYTHONPATH": f"{hook}:{PROJECT_ROOT}"}),
                                 "step 'transfer' failed on web1", f"{third}.bundle: sha256 ", "(refused)")
    assert {host: env.current(host) for host in env.hosts} == live, line
    (failed,) = [name for name in env.releases("web1") if name not in live.values()]
    assert env.meta("web1", failed)["status"] == "failed"

    _, notes = deploy(env, tmp_path, "deploy:resume=yes")
    assert notes["web1"]["transfer"].startswith("received ") and notes["web1"]["transfer"].endswith(
        " B from controller")
    assert notes["web1"]["code"].startswith(f"exported {third[:12]} from bundle ("), notes["web1"]
    for host in env.hosts:
        assert env.current(host) == failed and revision(env, host) == third
    assert env.version("web1")["commit"] == third


FEW_REFS_AND_PACKS = """
from fab.operations import cleanup

cleanup.HOST_KEPT_REFS = 4
cleanup.HOST_MAX_PACKS = 3
"""


def test_a_rolled_back_release_older_than_the_kept_refs_takes_a_hotfix_and_caches_stay_tidy(
        bundle_env, private_repo, tmp_path):
    """A release on a branch of its own, deployed before 6 commits of main: its commit
    is off the newest refs kept (4 here) and no ancestor of theirs, yet cleanup keeps
    it for the release still there, through repacks (past 3 packs here) and whatever
    git's own gc prunes later; rolled back to, it takes a hotfix. Each deploy's bundle
    adds a pack; no host's cache holds more than 3 after its deploy. The store keeps
    the wheels the venvs use and a fresh leftover, and loses a day-old one."""
    env = bundle_env
    env.write_config(app={"repo": private_repo.url, "branch": "main"}, keep_releases=8)
    hook = tmp_path / "few"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(FEW_REFS_AND_PACKS)  # loaded by the deployer's python at its start
    few = {"PYTHONPATH": f"{hook}:{PROJECT_ROOT}"}
    work = private_repo.work
    git("checkout", "-q", "-b", "release-1", cwd=work)
    (work / "app.py").write_text((work / "app.py").read_text() + "\n# release 1\n")
    git("commit", "-q", "-am", "release 1", cwd=work)
    git("push", "-q", "--", private_repo.url, "release-1", cwd=work)
    old = git("rev-parse", "HEAD", cwd=work)
    git("checkout", "-q", "main", cwd=work)
    assert_ok(env.fab(f"deploy:rev={old}", environ=few))
    old_release = env.current("web1")
    stale, fresh = "a" * 64, "f" * 64  # a failed deploy's bundles, never fetched: two days old, and just now
    for host in env.hosts:
        store = f"{env.code_root(host)}/store"
        env.remote(host, f"mkdir {store}/{stale} {store}/{fresh} && echo x > {store}/{stale}/{'b' * 40}.bundle"
                         f" && echo x > {store}/{fresh}/{'c' * 40}.bundle && touch -d '2 days ago' {store}/{stale}")

    main, packs, repacked = [], [], False
    for number in range(6):
        main.append(code_change(env, private_repo, f"main {number}"))
        _, notes = deploy(env, tmp_path, "deploy", environ=few)
        repacked |= any("git cache repacked" in notes[host]["cleanup"] for host in env.hosts)
        packs.append(max(int(env.remote(host, f"ls {env.code_root(host)}/git-cache/objects/pack | grep -c 'pack$'"))
                         for host in env.hosts))
    assert max(packs) <= 3 and repacked, packs
    for host in env.hosts:
        root = env.code_root(host)
        stored = set(os.listdir(f"{root}/store"))
        assert stale not in stored and fresh in stored, (host, stored)
        manifests = [f"{root}/venvs/{venv}/.wheels" for venv in os.listdir(f"{root}/venvs")]
        used = {line.split()[0] for manifest in manifests if os.path.isfile(manifest) for line in open(manifest)}
        assert used and used <= stored, (host, used - stored)
    # Two weeks on, git's own gc would drop whatever no ref holds: drop it now.
    for host in env.hosts:
        env.remote(host, f"git --git-dir={env.code_root(host)}/git-cache -c gc.pruneExpire=now gc --quiet")

    assert_ok(env.fab(f"rollback:release={old_release}", environ=few))
    assert env.version("web1")["commit"] == old
    _, notes = deploy(env, tmp_path, f"hotfix_deploy:commit={main[1]}", environ=few)
    for host in env.hosts:
        assert env.current(host) == old_release and revision(env, host) == main[1], notes[host]
    assert env.version("web1")["commit"] == main[1] and env.version("web2")["commit"] == main[1]


def test_a_lock_file_a_killed_git_left_in_a_hosts_cache_stops_no_later_deploy(bundle_env, private_repo, tmp_path):
    """A deployer killed while web1 fetched a commit's bundle left the lock of that
    commit's ref in web1's cache: the rerun of that deploy removes it and goes live.
    With app.fetch: hosts, the mirror's fetch prunes refs under packed-refs.lock, which
    a killed fetch leaves too: the next deploy removes it and goes live."""
    env = bundle_env
    env.write_config(app={"repo": private_repo.url, "branch": "main"})
    deploy(env, tmp_path)
    second = code_change(env, private_repo, "two")
    cache = f"{env.code_root('web1')}/git-cache"
    lock = f"{cache}/refs/fab/deployed/{second}.lock"
    env.remote("web1", f": > {lock}")  # as the host's user, as its git left it
    _, notes = deploy(env, tmp_path)
    assert notes["web1"]["code"].startswith(f"exported {second[:12]} from bundle (")
    assert notes["web1"]["code"].endswith(f"; removed stale git locks: refs/fab/deployed/{second}.lock")
    assert not os.path.exists(lock)
    assert all(revision(env, host) == second for host in env.hosts) and env.version("web1")["commit"] == second

    env.write_config(app={"repo": env.spec.app_repo, "branch": "main", "fetch": "hosts"})  # the hosts can read it
    first = env.head()
    deploy(env, tmp_path, f"deploy:rev={first}")
    lock = f"{env.code_root('pillow1')}/git-cache/packed-refs.lock"
    env.remote("pillow1", f": > {lock}")
    app = open(os.path.join(env.spec.app_workdir, "app.py")).read()
    try:
        changed = env.commit("app.py", app + "\n# a stale lock\n", "a stale lock")
        _, notes = deploy(env, tmp_path, f"deploy:rev={changed}")
    finally:
        env.commit("app.py", app, "no stale lock")
    assert notes["pillow1"]["code"] == f"exported {changed[:12]} from the repository; " \
                                       "removed stale git locks: packed-refs.lock", notes["pillow1"]
    assert not os.path.exists(lock)
    assert all(revision(env, host) == changed for host in env.hosts) and env.version("web2")["commit"] == changed
