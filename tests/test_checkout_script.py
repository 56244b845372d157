"""fab/remote/checkout.sh run here, as the code step and a hotfix's fetch run it on a
host (the lines fab.operations.code builds, with the local bash), against a bare
repository in tmp_path: the mirror is cloned once and fetched only for a commit it
lacks, the export writes the commit's files and REVISION, a commit the repository
lacks is one clear line, and a hostile revision is never read as an option."""
import os
import subprocess
import types

import pytest

from fab import shell, steps
from fab.operations import code
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


def host_for(tmp_path, url):
    env = types.SimpleNamespace(app=types.SimpleNamespace(repo=url), pip_args=[])
    return types.SimpleNamespace(env=env, paths=Paths(str(tmp_path / "root")))


def run(script):
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)


def export(host, name, commit):
    os.makedirs(host.paths.release(name), exist_ok=True)
    step = code.checkout(host, name, commit)
    result = run(steps.compose([step]))
    done, failed = steps.parse([step], result.stdout)
    return result, (done[0].note if done else None)


def fetch(host, commit):
    return run(shell.script(code._checkout(host, "fetch", commit)))


def test_the_mirror_is_cloned_once_then_fetched_only_for_a_commit_it_lacks(tmp_path, repo):
    first = repo.commit("app.py", "one\n")
    host = host_for(tmp_path, repo.url)
    result, note = export(host, "r1", first)
    assert result.returncode == 0 and note == f"exported {first[:12]}", result.stderr
    release = tmp_path / "root" / "releases" / "r1"
    assert (release / "app.py").read_text() == "one\n" and (release / "REVISION").read_text() == first + "\n"

    second = repo.commit("app.py", "two\n")
    os.rename(repo.url, repo.url + ".moved")  # the mirror has `first`: nothing to fetch
    assert export(host, "r2", first)[1] == f"exported {first[:12]}"
    assert fetch(host, second).returncode != 0  # it needs the repository now
    os.rename(repo.url + ".moved", repo.url)
    assert fetch(host, second).returncode == 0
    assert export(host, "r3", second)[1] == f"exported {second[:12]}"
    assert (tmp_path / "root" / "releases" / "r3" / "app.py").read_text() == "two\n"


def test_a_commit_the_repository_lacks_is_one_clear_line(tmp_path, repo):
    repo.commit("app.py", "one\n")
    host = host_for(tmp_path, repo.url)
    missing = "0" * 40
    for result in (fetch(host, missing), export(host, "r1", missing)[0]):
        assert result.returncode == 1
        assert result.stderr.strip().splitlines()[-1] == f"commit {missing} is not in {repo.url}"
    assert os.listdir(tmp_path / "root" / "releases" / "r1") == []


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
    result = run(shell.script_command("checkout", "delete", str(tmp_path), "/srv/app.git", "a" * 40, "x", "", ""))
    assert result.returncode == 2 and "unknown mode" in result.stderr
