"""fab/remote/checkout.sh run here, as the code step and a hotfix's fetch run it on a
host (the lines fab.operations.code builds, with the local bash), against a bare
repository in tmp_path.

Fetching on the host (app.fetch: hosts): the mirror is cloned once and fetched only
for a commit it lacks, the export writes the commit's files and REVISION, a commit
the repository lacks is one clear line, and a hostile revision is never read as an
option. From bundles (app.fetch: controller, the default): bundles made by the
controller's code (fab.app_repo) against the tips the host's state reports
(fab/remote/state.sh, parsed), put where fab.transfer leaves them, fill an empty
cache, then only what it lacks; a bundle that does not hold the commit or does not
apply is refused in one line; a used bundle leaves the store; refs stay bounded. A lock
file a killed git left in the cache does not stop the next checkout or cleanup."""
import os
import shlex
import shutil
import subprocess
import types

import pytest

from fab import app_repo, shell, steps, transfer
from fab.operations import cleanup, code, state
from fab.paths import Paths


def git(*args, cwd=None):
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True,
                          env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x",
                               "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x"}).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    """A bare repository with a `commit(path, text)` that pushes a new commit and returns its id."""
    bare, work = tmp_path / "app.git", tmp_path / "work"
    git("init", "--quiet", "--bare", str(bare))
    git("init", "--quiet", "-b", "main", str(work))

    def commit(path, text):
        (work / path).write_text(text)
        git("add", path, cwd=work)
        git("commit", "--quiet", "-m", path, cwd=work)
        git("push", "--quiet", str(bare), "main", cwd=work)
        return git("rev-parse", "HEAD", cwd=work)

    return types.SimpleNamespace(url=str(bare), commit=commit)


def host_for(tmp_path, url, fetch="hosts"):
    env = types.SimpleNamespace(app=types.SimpleNamespace(repo=url, fetch=fetch), pip_args=[])
    return types.SimpleNamespace(env=env, paths=Paths(str(tmp_path / "root")))


def run(script):
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)


def export(host, name, commit, bundle=None):
    os.makedirs(host.paths.release(name), exist_ok=True)
    step = code.checkout(host, name, commit, bundle)
    result = run(steps.compose([step]))
    done, failed = steps.parse([step], result.stdout)
    return result, (done[0].note if done else None)


def fetch(host, commit, bundle=None):
    return run(shell.script(code._checkout(host, "fetch", commit, bundle=bundle)))


def test_the_mirror_is_cloned_once_then_fetched_only_for_a_commit_it_lacks(tmp_path, repo):
    first = repo.commit("app.py", "one\n")
    host = host_for(tmp_path, repo.url)
    result, note = export(host, "r1", first)
    assert result.returncode == 0 and note == f"exported {first[:12]} from the repository", result.stderr
    release = tmp_path / "root" / "releases" / "r1"
    assert (release / "app.py").read_text() == "one\n" and (release / "REVISION").read_text() == first + "\n"

    second = repo.commit("app.py", "two\n")
    os.rename(repo.url, repo.url + ".moved")  # the mirror has `first`: nothing to fetch
    assert export(host, "r2", first)[1] == f"exported {first[:12]} from cache"
    assert fetch(host, second).returncode != 0  # it needs the repository now
    os.rename(repo.url + ".moved", repo.url)
    assert fetch(host, second).returncode == 0
    assert export(host, "r3", second)[1] == f"exported {second[:12]} from cache"
    assert (tmp_path / "root" / "releases" / "r3" / "app.py").read_text() == "two\n"


def test_a_commit_the_repository_lacks_is_one_clear_line(tmp_path, repo):
    repo.commit("app.py", "one\n")
    host = host_for(tmp_path, repo.url)
    missing = "0" * 40
    for result in (fetch(host, missing), export(host, "r1", missing)[0]):
        assert result.returncode == 1
        assert result.stderr.strip().splitlines()[-1] == f"commit {missing} is not in {repo.url}"
    assert os.listdir(tmp_path / "root" / "releases" / "r1") == []


def test_a_repository_the_host_cannot_read_is_one_clear_line(tmp_path, repo):
    first = repo.commit("app.py", "one\n")
    host = host_for(tmp_path, str(tmp_path / "elsewhere.git"))
    result = fetch(host, first)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"this host cannot fetch from {tmp_path}/elsewhere.git (app.fetch: hosts): "
        f"fatal: repository '{tmp_path}/elsewhere.git' does not exist"]


@pytest.mark.parametrize("revision", ["--output=/tmp/pwned", "-o", "--upload-pack=touch pwned", "HEAD~0 --", "main:"])
def test_a_hostile_revision_is_refused_and_read_as_no_option(tmp_path, repo, revision):
    repo.commit("app.py", "one\n")
    host = host_for(tmp_path, repo.url)
    fetch(host, repo.commit("b.py", "b\n"))  # a mirror to look in
    result, _ = export(host, "r1", revision)
    assert result.returncode == 1 and f"commit {revision} is not in" in result.stderr
    assert not os.path.exists("/tmp/pwned") and not (tmp_path / "pwned").exists()
    assert os.listdir(tmp_path / "root" / "releases" / "r1") == []


def test_an_old_mirror_keeping_a_url_with_credentials_gets_the_url_without(tmp_path, repo):
    first = repo.commit("app.py", "one\n")
    host = host_for(tmp_path, repo.url)
    assert fetch(host, first).returncode == 0
    cache = host.paths.git_cache
    git("--git-dir", cache, "config", "remote.origin.url", "https://ci:s3cret@git.example.com/app.git")
    assert fetch(host, first).returncode == 0
    assert git("--git-dir", cache, "config", "remote.origin.url") == repo.url


def test_git_gets_no_terminal_prompt_and_the_helpers_options(tmp_path, repo):
    host = host_for(tmp_path, "https://ci:s3cret@git.example.com/app.git")
    script = code._checkout(host, "fetch", "a" * 40)
    assert "s3cret" not in script and "https://git.example.com/app.git" in script
    assert "credential.helper=" in script
    assert "GIT_TERMINAL_PROMPT=0 git" in shell.remote_script("checkout")


def test_an_unknown_mode_is_refused(tmp_path):
    for mode, source in (("delete", "bundle"), ("fetch", "elsewhere")):
        result = run(shell.script_command("checkout", mode, str(tmp_path), "a" * 40, source, "/srv/app.git", "x",
                                          "", ""))
        assert result.returncode == 2 and f"unknown {'mode' if mode == 'delete' else 'source'}" in result.stderr


# --- from bundles the controller made (app.fetch: controller) ---------------------


@pytest.fixture
def controller(tmp_path):
    """The controller's cache (fab.app_repo.holding) in tmp_path: `bundle(url, commit,
    host)` makes the bundle `host` needs for `commit` against the tips its state
    reports, and puts it where fab.transfer leaves it; None if it needs none."""
    environ = {"XDG_CACHE_HOME": str(tmp_path / "controller")}

    def bundle(url, commit, host):
        with app_repo.holding(url, commit, environ) as cache:
            tips = tips_of(host)
            path = None if commit in tips else cache.bundle(commit, cache.commits_among(sorted(tips)))
        if path is None:
            return None
        made = transfer.artifact(path, f"{commit}.bundle")
        delivered = host.paths.stored(made.sha256, made.name)
        os.makedirs(os.path.dirname(delivered), exist_ok=True)
        shutil.copy(made.local, delivered)
        return made

    return types.SimpleNamespace(bundle=bundle, environ=environ)


def tips_of(host):
    """The tips fab/remote/state.sh reports for the host's git cache, parsed."""
    result = subprocess.run(["bash", "-c", shell.remote_script("state"), "state", *state.arguments(host.paths)],
                            capture_output=True, text=True, check=True)
    return state.parse(f"home /\n{result.stdout}", host.paths.code_root).tips


def in_store(host):
    return os.listdir(host.paths.store) if os.path.isdir(host.paths.store) else []


def test_an_empty_cache_gets_a_full_bundle_then_only_what_it_lacks(tmp_path, repo, controller):
    big = os.urandom(20_000).hex() + "\n"  # what git cannot compress away
    first = repo.commit("app.py", big)
    host = host_for(tmp_path, repo.url, fetch="controller")
    full = controller.bundle(repo.url, first, host)
    result, note = export(host, "r1", first, full)
    assert result.returncode == 0 and note == f"exported {first[:12]} from bundle ({transfer.human_bytes(full.size)})"
    release = tmp_path / "root" / "releases" / "r1"
    assert (release / "app.py").read_text() == big and (release / "REVISION").read_text() == first + "\n"
    assert in_store(host) == []  # used, then removed
    assert tips_of(host) == {first}

    second = repo.commit("b.py", "two\n")
    incremental = controller.bundle(repo.url, second, host)
    os.rename(repo.url, repo.url + ".gone")  # the host never reads the repository
    assert incremental.size < full.size / 20
    assert export(host, "r2", second, incremental)[1].startswith(f"exported {second[:12]} from bundle (")
    assert (tmp_path / "root" / "releases" / "r2" / "app.py").exists()
    assert tips_of(host) == {first, second} and in_store(host) == []
    # Nothing to send for a commit the cache has: exported from it.
    assert controller.bundle(repo.url, first, host) is None
    assert export(host, "r3", first)[1] == f"exported {first[:12]} from cache"


def test_a_commit_the_cache_has_under_no_ref_of_ours_needs_no_bundle(tmp_path, repo, controller):
    old = repo.commit("app.py", "one\n")
    new = repo.commit("app.py", "two\n")
    host = host_for(tmp_path, repo.url, fetch="controller")
    assert export(host, "r1", new, controller.bundle(repo.url, new, host))[0].returncode == 0
    assert controller.bundle(repo.url, old, host) is None  # an ancestor of a tip: the host has it
    result, note = export(host, "r2", old)
    assert note == f"exported {old[:12]} from cache", result.stderr
    assert tips_of(host) == {old, new}


def test_the_tips_the_state_reads_without_git_are_git_s_own_loose_and_packed(tmp_path, repo, controller):
    """state.sh reads refs/fab/deployed/ itself (no git process): loose refs and
    packed-refs (cleanup's git may pack them), the loose one winning, as git's own
    for-each-ref lists them."""
    commits = [repo.commit("app.py", f"{n}\n") for n in range(3)]
    host = host_for(tmp_path, repo.url, fetch="controller")
    for n, commit in enumerate(commits[:2]):
        assert export(host, f"r{n}", commit, controller.bundle(repo.url, commit, host))[0].returncode == 0
    cache = host.paths.git_cache
    subprocess.run(["git", "--git-dir", cache, "pack-refs", "--all"], check=True)
    assert export(host, "r2", commits[2], controller.bundle(repo.url, commits[2], host))[0].returncode == 0
    listed = subprocess.run(["git", "--git-dir", cache, "for-each-ref", "--format=%(objectname)",
                             "refs/fab/deployed/"], capture_output=True, text=True, check=True).stdout.split()
    assert tips_of(host) == set(commits) == set(listed)
    assert os.path.exists(os.path.join(cache, "refs", "fab", "deployed", commits[2]))  # loose, the others packed


def test_a_bundle_that_does_not_hold_the_commit_is_refused_in_one_line(tmp_path, repo, controller):
    first = repo.commit("app.py", "one\n")
    second = repo.commit("app.py", "two\n")
    host = host_for(tmp_path, repo.url, fetch="controller")
    wrong = controller.bundle(repo.url, first, host)
    result, _ = export(host, "r1", second, wrong)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"the bundle {host.paths.stored(wrong.sha256, wrong.name)} does not hold commit {second} (refused)")
    assert os.listdir(tmp_path / "root" / "releases" / "r1") == [] and tips_of(host) == set()


def test_a_bundle_whose_bases_the_cache_lacks_is_refused_in_one_line(tmp_path, repo, controller):
    first = repo.commit("app.py", "one\n")
    second = repo.commit("app.py", "two\n")
    elsewhere = host_for(tmp_path / "other", repo.url, fetch="controller")
    assert fetch(elsewhere, first, controller.bundle(repo.url, first, elsewhere)).returncode == 0
    incremental = controller.bundle(repo.url, second, elsewhere)  # made for a host that has `first`
    host = host_for(tmp_path, repo.url, fetch="controller")
    path = host.paths.stored(incremental.sha256, incremental.name)
    os.makedirs(os.path.dirname(path))
    shutil.copy(incremental.local, path)
    result = fetch(host, second, incremental)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"the bundle {path} does not apply to the git cache {host.paths.git_cache}: "
        "error: Repository lacks these prerequisite commits:")


def test_a_garbled_bundle_and_a_missing_one_are_one_clear_line(tmp_path, repo):
    first = repo.commit("app.py", "one\n")
    host = host_for(tmp_path, repo.url, fetch="controller")
    result = fetch(host, first)
    assert result.returncode == 1 and result.stderr.strip().splitlines()[-1] == (
        f"commit {first} is not in the git cache {host.paths.git_cache}, and no bundle was sent")
    garbage = tmp_path / "garbage.bundle"
    garbage.write_bytes(b"not a bundle\n")
    made = transfer.artifact(str(garbage))
    os.makedirs(os.path.dirname(host.paths.stored(made.sha256, made.name)))
    shutil.copy(garbage, host.paths.stored(made.sha256, made.name))
    result = fetch(host, first, made)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(
        f"the bundle {host.paths.stored(made.sha256, made.name)} is unreadable: "), result.stderr


@pytest.mark.parametrize("revision", ["--output=/tmp/pwned", "-o", "--upload-pack=touch pwned", "HEAD~0 --", "main:"])
def test_a_hostile_revision_with_a_bundle_is_refused_and_read_as_no_option(tmp_path, repo, controller, revision):
    first = repo.commit("app.py", "one\n")
    host = host_for(tmp_path, repo.url, fetch="controller")
    made = controller.bundle(repo.url, first, host)
    result, _ = export(host, "r1", revision, made)
    assert result.returncode == 1 and f"does not hold commit {revision} (refused)" in result.stderr
    assert not os.path.exists("/tmp/pwned") and not (tmp_path / "pwned").exists()
    assert os.listdir(tmp_path / "root" / "releases" / "r1") == []


def test_fetches_never_gc_and_cleanup_keeps_the_present_releases_refs_and_repacks(tmp_path, repo, controller,
                                                                                 monkeypatch):
    """Each bundle fetched is a pack, and git's auto-gc never starts (the cache asks
    for it past 2 packs here); cleanup then keeps a ref for the newest commits and for
    every release present, however old, and past HOST_MAX_PACKS packs repacks into
    one: what no ref holds is gone, the present release's commit (on a branch of its
    own, older than all) stays, so a hotfix of it can still diff against it."""
    host = host_for(tmp_path, repo.url, fetch="controller")
    work = tmp_path / "work"
    repo.commit("app.py", "base\n")
    kept, gone = side_commit(work, repo.url, "kept", 1), side_commit(work, repo.url, "gone", 2)
    assert export(host, "r-old", kept, controller.bundle(repo.url, kept, host))[0].returncode == 0
    assert fetch(host, gone, controller.bundle(repo.url, gone, host)).returncode == 0
    cache = host.paths.git_cache
    git("--git-dir", cache, "config", "gc.autoPackLimit", "2")
    git("--git-dir", cache, "config", "gc.autoDetach", "false")
    main = []
    for number in range(cleanup.HOST_KEPT_REFS + 2):
        main.append(dated_commit(repo, number))
        assert fetch(host, main[-1], controller.bundle(repo.url, main[-1], host)).returncode == 0
    assert packs_in(cache) == cleanup.HOST_KEPT_REFS + 4 and tips_of(host) == {kept, gone, *main}

    monkeypatch.setattr(cleanup, "HOST_MAX_PACKS", 3)
    assert clean(host) == f"git cache repacked ({cleanup.HOST_KEPT_REFS + 4} packs to 1)"
    assert packs_in(cache) == 1 and tips_of(host) == {kept, *main[-cleanup.HOST_KEPT_REFS:]}
    has = {commit: run(f"git --git-dir={cache} cat-file -e {commit}").returncode == 0 for commit in (kept, gone)}
    assert has == {kept: True, gone: False}
    assert run(f"git --git-dir={cache} diff --quiet {kept} {main[0]}").returncode == 1  # they differ: it can tell
    assert clean(host) == "nothing to remove"  # done: a second run changes nothing


def test_cleanup_prunes_the_refs_only_past_twice_the_kept_number(tmp_path, repo, controller, monkeypatch):
    """Each deploy adds a ref: cleanup lets them grow to twice HOST_KEPT_REFS with no git
    process, then prunes to the newest HOST_KEPT_REFS (here 2, 4 then 5 refs)."""
    monkeypatch.setattr(cleanup, "HOST_KEPT_REFS", 2)
    host = host_for(tmp_path, repo.url, fetch="controller")
    commits = []
    for number in range(5):
        commits.append(dated_commit(repo, number))
        assert fetch(host, commits[-1], controller.bundle(repo.url, commits[-1], host)).returncode == 0
        clean(host)
        assert tips_of(host) == set(commits if number < 4 else commits[-2:]), number


def dated_commit(repo, number):
    """A commit of main dated `number`s after the side commits: committed in this order."""
    os.environ["GIT_COMMITTER_DATE"] = f"@{1_700_000_100 + number} +0000"
    try:
        return repo.commit("app.py", f"{number}\n")
    finally:
        del os.environ["GIT_COMMITTER_DATE"]


def side_commit(work, bare, name, second):
    """A commit on a branch of its own off main's first, dated `second`s after 2023-11-14, pushed."""
    git("checkout", "--quiet", "-b", name, "main", cwd=work)
    (work / f"{name}.py").write_text(f"{name}\n")
    git("add", f"{name}.py", cwd=work)
    os.environ["GIT_COMMITTER_DATE"] = f"@{1_700_000_000 + second} +0000"
    try:
        git("commit", "--quiet", "-m", name, cwd=work)
    finally:
        del os.environ["GIT_COMMITTER_DATE"]
    git("push", "--quiet", str(bare), name, cwd=work)
    git("checkout", "--quiet", "main", cwd=work)
    return git("rev-parse", name, cwd=work)


def packs_in(cache):
    return len([name for name in os.listdir(os.path.join(cache, "objects", "pack")) if name.endswith(".pack")])


def clean(host):
    """The cleanup step's note, run on the host's code root with nothing to delete."""
    result = subprocess.run(["bash", "-c", shell.remote_script("state"), "state", *state.arguments(host.paths)],
                            capture_output=True, text=True, check=True)
    found = state.parse(f"home /\n{result.stdout}", host.paths.code_root)
    step = cleanup.delete_releases(types.SimpleNamespace(paths=found.paths, state=found), [])
    result = run(steps.compose([step]))
    done, failed = steps.parse([step], result.stdout)
    assert failed is None, result.stderr
    return done[0].note


def test_an_old_mirror_keeping_a_url_with_credentials_loses_it_with_bundles(tmp_path, repo, controller):
    first = repo.commit("app.py", "one\n")
    host = host_for(tmp_path, repo.url)
    assert fetch(host, first).returncode == 0
    cache = host.paths.git_cache
    git("--git-dir", cache, "config", "remote.origin.url", "https://ci:s3cret@git.example.com/app.git")
    host = host_for(tmp_path, repo.url, fetch="controller")
    assert fetch(host, first).returncode == 0  # the cache has it: nothing sent
    assert "s3cret" not in (tmp_path / "root" / "git-cache" / "config").read_text()


def test_with_bundles_no_credential_is_loaded_nor_passed(tmp_path):
    host = host_for(tmp_path, "https://ci:s3cret@git.example.com/app.git", fetch="controller")
    words = shlex.split(code._checkout(host, "fetch", "a" * 40))
    assert words[:2] == ["bash", "-c"] and words[2] == shell.remote_script("checkout")
    assert words[3:] == ["checkout", "fetch", host.paths.git_cache, "a" * 40, "bundle", "",
                         "https://ci:***@git.example.com/app.git", "", ""]


# --- a lock file a killed git left in the cache (git_cache_functions.sh) ------------


def test_a_stale_lock_on_the_ref_a_bundle_fetch_makes_is_removed(tmp_path, repo, controller):
    """A deployer killed while its host fetched `second` left that ref's lock: the next
    deploy of `second` (its rerun) fetches it anyway, and its note says so."""
    first = repo.commit("app.py", "one\n")
    host = host_for(tmp_path, repo.url, fetch="controller")
    assert export(host, "r1", first, controller.bundle(repo.url, first, host))[0].returncode == 0
    second = repo.commit("app.py", "two\n")
    lock = tmp_path / "root" / "git-cache" / "refs" / "fab" / "deployed" / f"{second}.lock"
    lock.write_text("")
    bundle = controller.bundle(repo.url, second, host)
    result, note = export(host, "r2", second, bundle)
    assert result.returncode == 0, result.stderr
    assert note.startswith(f"exported {second[:12]} from bundle (")
    assert note.endswith(f"); removed stale git locks: refs/fab/deployed/{second}.lock")
    assert not lock.exists() and tips_of(host) == {first, second}
    assert (tmp_path / "root" / "releases" / "r2" / "app.py").read_text() == "two\n"


def test_a_stale_packed_refs_lock_does_not_stop_a_mirror_fetch(tmp_path, repo):
    """app.fetch: hosts: the mirror's fetch prunes the refs the repository lacks (our
    refs/fab/deployed/ ones), under packed-refs.lock; a fetch for a hotfix says so too."""
    first = repo.commit("app.py", "one\n")
    host = host_for(tmp_path, repo.url)
    assert export(host, "r1", first)[0].returncode == 0
    lock = tmp_path / "root" / "git-cache" / "packed-refs.lock"
    lock.write_text("")
    second = repo.commit("app.py", "two\n")
    result, note = export(host, "r2", second)
    assert result.returncode == 0, result.stderr
    assert note == f"exported {second[:12]} from the repository; removed stale git locks: packed-refs.lock"
    assert not lock.exists()

    lock.write_text("")
    (tmp_path / "root" / "git-cache" / "refs" / "heads" / "main.lock").write_text("")
    third = repo.commit("app.py", "three\n")
    result = fetch(host, third)
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.split(": ", 1)[1].split()) == ["packed-refs.lock", "refs/heads/main.lock"]
    assert os.listdir(tmp_path / "root" / "git-cache" / "refs" / "heads") == ["main"]  # the locks are gone


def test_a_lock_that_comes_back_is_not_stale_and_fails_the_step_as_git_said(tmp_path, repo, controller,
                                                                           monkeypatch):
    """A lock file that is there again once removed is some git's at work: not removed twice."""
    first = repo.commit("app.py", "one\n")
    host = host_for(tmp_path, repo.url, fetch="controller")
    assert export(host, "r1", first, controller.bundle(repo.url, first, host))[0].returncode == 0
    second = repo.commit("app.py", "two\n")
    lock = tmp_path / "root" / "git-cache" / "refs" / "fab" / "deployed" / f"{second}.lock"
    busy = tmp_path / "bin"
    busy.mkdir()
    (busy / "git").write_text(f"#!/bin/sh\n: > '{lock}'\nexec /usr/bin/git \"$@\"\n")  # another git, at work
    (busy / "git").chmod(0o755)
    monkeypatch.setenv("PATH", f"{busy}:{os.environ['PATH']}")
    result, _ = export(host, "r2", second, controller.bundle(repo.url, second, host))
    assert result.returncode == 1
    assert f"Unable to create '{lock}': File exists." in result.stderr


def test_cleanup_removes_a_stale_packed_refs_lock_and_says_so(tmp_path, repo, controller, monkeypatch):
    monkeypatch.setattr(cleanup, "HOST_KEPT_REFS", 1)
    host = host_for(tmp_path, repo.url, fetch="controller")
    commits = [repo.commit("app.py", f"{number}\n") for number in range(3)]
    for commit in commits:
        assert fetch(host, commit, controller.bundle(repo.url, commit, host)).returncode == 0
    lock = tmp_path / "root" / "git-cache" / "packed-refs.lock"
    lock.write_text("")
    assert clean(host) == "removed stale git locks: packed-refs.lock"
    assert not lock.exists() and len(tips_of(host)) == 1
