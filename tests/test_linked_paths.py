"""Linked paths (links into shared/) are never written, deleted or followed through:
not by a hotfix, not by the link step, whatever the repository commits there."""
import os
import re
import shutil
import stat
import subprocess
import types

import pytest

from conftest import assert_ok, assert_one_line_error
from fab import sandbox, shell
from fab.errors import RemoteCommandFailed
from fab.operations import code
from fab.paths import Paths
from test_lifecycle import deploy_new_commit, served_commits

OUTSIDE = "../../../../elsewhere"  # from releases/<name>/<top-level path>: the host user's ~/elsewhere


def tree(root):
    """Every path under `root` with what a user would compare: kind, mode and bytes
    (a symlink: its target, never followed)."""
    found = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(directory, name)
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                found[os.path.relpath(path, root)] = ("link", os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                found[os.path.relpath(path, root)] = ("dir", oct(info.st_mode))
            else:
                with open(path, "rb") as handle:
                    found[os.path.relpath(path, root)] = ("file", oct(info.st_mode), handle.read())
    return found


# -- the link step, run locally (fab/remote/link.sh is plain bash) --------------

def run_link(release, shared_dir, *entries):
    return subprocess.run(["bash", "-c", shell.step_script("link", str(shared_dir), *entries)],
                          cwd=release, capture_output=True, text=True, check=False)


@pytest.fixture
def layout(tmp_path):
    """A release, a shared/ and a directory outside both, with a file in it."""
    release, shared_dir, outside = tmp_path / "release", tmp_path / "shared", tmp_path / "elsewhere"
    for directory in (release, shared_dir, outside / "media"):
        directory.mkdir(parents=True)
    (outside / "media" / "keep.txt").write_text("not the release's\n")
    (shared_dir / ".env").write_text("FROM=shared\n")
    return release, shared_dir, outside


def test_linking_replaces_what_the_repository_has_at_a_linked_path_never_following_it(layout):
    release, shared_dir, outside = layout
    before = tree(outside)
    (release / "media").symlink_to(outside / "media")  # committed symlinks at the linked paths
    (release / ".env").symlink_to(outside / "media" / "keep.txt")
    (release / "static").mkdir()
    (release / "static" / "uploads").mkdir()  # a committed directory at a linked path
    (release / "static" / "uploads" / "logo.png").write_text("the repository's\n")

    result = run_link(release, shared_dir, "dir:media", "dir:static/uploads", "file:.env")

    assert result.returncode == 0, result.stderr
    assert result.stdout == "3 shared path(s) linked\n"
    for name in ("media", "static/uploads", ".env"):
        assert os.readlink(release / name) == f"{shared_dir}/{name}"
    assert tree(outside) == before
    assert sorted(tree(shared_dir)) == [".env", "media", "static", "static/uploads"]


@pytest.mark.parametrize("above,expected", [
    ("symlink", "refused: public is a symlink in the release (to {outside}), above linked dir public/media: "
                "a link through it would land outside the release"),
    ("file", "refused: public is a file in the release, above linked dir public/media, "
             "which needs it to be a directory"),
])
def test_linking_refuses_a_symlink_or_file_above_a_linked_path_before_changing_anything(layout, above, expected):
    release, shared_dir, outside = layout
    if above == "symlink":
        (release / "public").symlink_to(outside)
    else:
        (release / "public").write_text("a file\n")
    (release / "media").mkdir()
    (release / "media" / "logo.png").write_text("the repository's\n")
    before = tree(release), tree(shared_dir), tree(outside)

    result = run_link(release, shared_dir, "dir:media", "dir:public/media")

    assert result.returncode == 1
    assert result.stderr == expected.format(outside=outside) + "\n"
    assert (tree(release), tree(shared_dir), tree(outside)) == before  # media not linked either


# -- a hotfix's commands, run locally --------------------------------------------

class LocalHost:
    """A host whose commands run here, with bash: the operations' shell without SSH."""

    def __init__(self, code_root, repo):
        self.paths = Paths(str(code_root))
        self.env = types.SimpleNamespace(app=types.SimpleNamespace(repo=repo, fetch="hosts"), requirements=[],
                                        pip_args=[])

    def run(self, script, cwd=None):
        result = subprocess.run(["bash", "-c", script], cwd=cwd, capture_output=True, text=True, check=False)
        if result.returncode:
            raise RemoteCommandFailed((result.stderr.strip().splitlines() or ["failed"])[-1])
        return result.stdout


def commit_files(work, files, remove=()):
    for name in remove:
        os.remove(os.path.join(work, name))
    for name, content in files.items():
        write(os.path.join(work, name), content)
    sandbox.tools.git("add", "-A", cwd=work)
    sandbox.tools.git("commit", "-q", "-m", "change", cwd=work)
    return sandbox.tools.git("rev-parse", "HEAD", cwd=work)


def test_a_hotfix_neither_writes_nor_deletes_at_linked_paths_and_reads_their_names_literally(tmp_path):
    work = tmp_path / "app"
    work.mkdir()
    sandbox.tools.git("init", "-q", cwd=work)
    # A hotfix leaves out the release's links into shared/, whatever the environment
    # file says now. "up[1]" read as a glob would match the file "up1" (code), not itself.
    host = LocalHost(tmp_path / "root", str(work))
    links = ["dir:media", "dir:up[1]", "dir:public/media", "file:.env"]
    old = commit_files(work, {"app.py": "old\n", "media/logo.png": "repo\n", "up[1]/y": "repo\n",
                              "up1": "old\n", ".env": "FROM=repository\n"})
    release = host.paths.release("r1")
    os.makedirs(release)
    host.run(code.checkout(host, "r1", old).body, cwd=release)
    write(os.path.join(host.paths.shared, ".env"), "FROM=shared\n")
    assert run_link(release, host.paths.shared, *links).returncode == 0
    write(os.path.join(host.paths.shared, "media", "logo.png"), "an upload\n")
    write(os.path.join(host.paths.shared, "up[1]", "y"), "an upload\n")
    before = tree(host.paths.shared)

    new = commit_files(work, {"app.py": "new\n", "media/new.png": "new\n", "up1": "new\n",
                              ".env": "FROM=repository, changed\n"}, remove=["media/logo.png", "up[1]/y"])
    host.run(code.fetch_for_hotfix(host, "r1", new).body)
    code.hotfix(host, "r1", old, new)

    assert tree(host.paths.shared) == before
    for name in ("media", "up[1]", "public/media", ".env"):
        assert os.readlink(os.path.join(release, name)) == os.path.join(host.paths.shared, name)
    for name, content in (("app.py", "new\n"), ("up1", "new\n"), ("REVISION", f"{new}\n")):
        with open(os.path.join(release, name)) as handle:
            assert handle.read() == content, name

    # A commit with a symlink or a file where a link into shared/ needs a directory is refused.
    os.symlink("../elsewhere", work / "public")
    linked_out = commit_files(work, {})
    with pytest.raises(RemoteCommandFailed, match=re.escape(
            f"refused: {linked_out[:12]} has a symlink at public, above public/media (a link into shared/): "
            "a hotfix through it would land outside the release")):
        host.run(code.fetch_for_hotfix(host, "r1", linked_out).body)
    os.remove(work / "public")
    a_file = commit_files(work, {"public": "a file\n"})
    with pytest.raises(RemoteCommandFailed, match=re.escape(
            f"refused: {a_file[:12]} has a file at public, above public/media (a link into shared/), "
            "where the release has a directory")):
        host.run(code.fetch_for_hotfix(host, "r1", a_file).body)
    assert tree(host.paths.shared) == before


# -- on the fleet ------------------------------------------------------------

def shared_trees(env):
    return {host: tree(os.path.join(env.code_root(host), "shared")) for host in env.hosts}


def assert_linked(env, release, names):
    for host in env.hosts:
        for name in names:
            path = os.path.join(env.code_root(host), "releases", release, name)
            assert os.path.islink(path), (host, name)
            assert os.readlink(path) == os.path.join(env.code_root(host), "shared", name), (host, name)


def write(path, content):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(content)


def remove(path):
    if os.path.islink(path) or os.path.isfile(path):
        os.remove(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)


def linked_paths_config(env, linked_dirs):
    folder = os.path.join(env.directory, "shared")
    write(os.path.join(folder, ".env"), "FROM=shared\n")
    env.write_config(linked_dirs=linked_dirs, linked_files=[".env"], shared_files_from=folder)


def test_a_hotfix_leaves_every_link_into_shared_as_it_was(deploy_env):
    env = deploy_env
    app = env.spec.app_workdir
    linked_paths_config(env, ["media"])
    try:
        # The repository has files at the linked paths too (the link replaces them).
        write(os.path.join(app, "media", "logo.png"), "the repository's logo\n")
        write(os.path.join(app, "media", "keep.txt"), "kept\n")
        write(os.path.join(app, ".env"), "FROM=repository\n")
        live, built_from = deploy_new_commit(env, "media and .env in the repository")
        for host in env.hosts:  # the users' uploads, one of them where the repository has a file
            env.remote(host, f"cd ~/{env.code_root_rel}/shared/media && printf 'an upload' > logo.png && "
                             "chmod 640 logo.png && mkdir -p 2026 && printf 'another' > 2026/a.png")
        before = shared_trees(env)

        # Files at linked paths changed, added and removed by a hotfix...
        remove(os.path.join(app, "media", "logo.png"))
        write(os.path.join(app, "media", "keep.txt"), "changed\n")
        write(os.path.join(app, "media", "new.png"), "new\n")
        write(os.path.join(app, ".env"), "FROM=repository, changed\n")
        first = env.commit("NEWS.txt", "first hotfix\n", "hotfix at linked paths")
        # ...then every file at linked paths removed (the linked file included)...
        remove(os.path.join(app, "media"))
        remove(os.path.join(app, ".env"))
        second = env.commit("NEWS.txt", "second hotfix\n", "no linked paths in the repository")
        # ...and back to the commit the release was built from, which adds them all again,
        # with media no longer in the environment file: the release's link is what counts.
        for commit, news in ((first, "first hotfix\n"), (second, "second hotfix\n"), (built_from, None)):
            if commit == built_from:
                linked_paths_config(env, [])
            assert_ok(env.fab(f"hotfix_deploy:{commit}"))
            assert shared_trees(env) == before, commit
            assert_linked(env, live, ["media", ".env"])
            assert set(served_commits(env).values()) == {commit}
            if news:
                with open(os.path.join(env.code_root("web1"), "current", "NEWS.txt")) as handle:
                    assert handle.read() == news
    finally:
        remove(os.path.join(app, "media"))
        remove(os.path.join(app, ".env"))
        env.commit("NEWS.txt", "linked paths gone from the repository\n", "no media, no .env")


def test_a_committed_symlink_never_leads_the_link_step_or_a_hotfix_outside_the_release(deploy_env):
    env = deploy_env
    app = env.spec.app_workdir
    linked_paths_config(env, ["media", "public/media"])
    homes = {host: env.spec.home(host) for host in env.hosts}
    for host in env.hosts:
        env.remote(host, "mkdir -p ~/elsewhere/media && printf 'not the release' > ~/elsewhere/media/keep.txt")
    outside = {host: tree(os.path.join(home, "elsewhere")) for host, home in homes.items()}
    try:
        # Symlinks at linked paths are replaced by the links, never followed.
        os.symlink(f"{OUTSIDE}/media", os.path.join(app, "media"))
        os.symlink(f"{OUTSIDE}/media/keep.txt", os.path.join(app, ".env"))
        write(os.path.join(app, "public", "index.html"), "<p>hello</p>\n")
        live, good = deploy_new_commit(env, "symlinks at linked paths")
        assert_linked(env, live, ["media", "public/media", ".env"])
        assert {host: tree(os.path.join(home, "elsewhere")) for host, home in homes.items()} == outside

        # A symlink above a linked path: a hotfix and a deploy refuse it, changing nothing.
        remove(os.path.join(app, "public"))
        os.symlink(OUTSIDE, os.path.join(app, "public"))
        bad = env.commit("NEWS.txt", "public is a symlink\n", "public links outside the release")
        line = assert_one_line_error(env.fab("hotfix_deploy"), "public")
        assert f"refused: {bad[:12]} has a symlink at public, above public/media (a link into shared/)" in line, line
        line = assert_one_line_error(env.fab("deploy"), "public")
        assert f"refused: public is a symlink in the release (to {OUTSIDE}), above linked dir public/media" in line
        assert {env.current(host) for host in env.hosts} == {live}
        assert set(served_commits(env).values()) == {good}
        assert {host: tree(os.path.join(home, "elsewhere")) for host, home in homes.items()} == outside
        for host in env.hosts:
            release = os.path.join(env.code_root(host), "releases", live)
            assert env.meta(host, live)["commit"] == good
            assert os.path.isfile(os.path.join(release, "public", "index.html"))
        assert_linked(env, live, ["media", "public/media", ".env"])
    finally:
        for path in ("media", ".env", "public"):
            remove(os.path.join(app, path))
        env.commit("NEWS.txt", "no symlinks in the repository\n", "no symlinks at linked paths")
        for host in env.hosts:
            env.remote(host, "rm -rf ~/elsewhere", check=False)
