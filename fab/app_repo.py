"""Reading the application's repository on the controller, read-only, for a plan:
the commits between two commits, and a file's bytes at a commit.

The deployer already reads the repository from the controller (`git ls-remote`
resolves the branch), so a plan does too, and never asks a host: a repository
that is a local path is read in place (`git -C <path>`); any other is fetched
into a temporary bare repository (blobs on demand where the server allows it),
removed when the plan is made. No host's git cache is touched.

Every git command here ends its options before its revisions (`--end-of-options`)
and its repository (`--`): a commit id a host reported can never be read as an
option (`--upload-pack=...` would run a command here).
"""
import contextlib
import os
import subprocess
import tempfile

from fab.errors import DeployError
from fab.operations import credentials
from fab.secrets import mask

GIT_TIMEOUT = 300


class RepoUnreadable(DeployError):
    """The repository (or a commit in it) cannot be read from the controller."""


class AppRepo:
    """A local git directory holding the commits a plan asked for."""

    def __init__(self, git_dir, repo=""):
        self.git_dir = git_dir
        #: The repository it fetches from, whose credentials git asks of the helper.
        self.repo = repo

    def git(self, command, *args, binary=False):
        """Run `git <command> <args>` here; its stdout (bytes if `binary`)."""
        return _git(self.git_dir, command, *args, binary=binary, repo=self.repo)

    def log(self, since, until, limit):
        """(commits `since`..`until` as `git log --oneline` lines, newest first, at most
        `limit`; how many there are in all). `since` None: all of `until`'s history."""
        revisions = [f"{since}..{until}" if since else until]
        total = int(self.git("rev-list", "--count", "--end-of-options", *revisions, "--").strip())
        lines = self.git("log", f"--max-count={limit}", "--format=%h %s", "--end-of-options", *revisions,
                         "--").splitlines()
        return lines, total

    def count(self, since, until):
        """How many commits `until` has that `since` has not."""
        return int(self.git("rev-list", "--count", "--end-of-options", f"{since}..{until}", "--").strip())

    def file_at(self, commit, path):
        """The bytes of `path` at `commit`, or None if the commit has no such file."""
        try:
            return self.git("cat-file", "blob", "--end-of-options", f"{commit}:{path}", binary=True)
        except RepoUnreadable:
            if self.has(f"{commit}:{path}"):
                raise
            return None

    def readable(self):
        """Whether git can read this repository here at all."""
        try:
            self.git("rev-parse", "--git-dir")
        except RepoUnreadable:
            return False
        return True

    def has(self, revision):
        try:
            self.git("cat-file", "-e", "--end-of-options", revision)
        except RepoUnreadable:
            return False
        return True


@contextlib.contextmanager
def opened(repo, commits):
    """An AppRepo holding those of `commits` the repository has (ask it with `has`);
    RepoUnreadable if the repository cannot be read at all.

    `repo` is the environment's `app.repo`: a local path is read in place if it has
    every commit, anything else is fetched into a temporary bare repository.
    """
    commits = [c for c in dict.fromkeys(commits) if c]
    local = os.path.expanduser(repo)
    if os.path.isdir(local):
        in_place = AppRepo(local)
        if all(in_place.has(f"{c}^{{commit}}") for c in commits):
            yield in_place
            return
    with tempfile.TemporaryDirectory(prefix="fab-plan-") as temporary:
        fetched = AppRepo(temporary, repo)
        fetched.git("init", "--quiet", "--bare")
        fetched.git("remote", "add", "--", "origin", credentials.public_url(repo))
        try:  # by commit id (protocol v2 servers allow it), blobs only as needed
            fetched.git("fetch", "--quiet", "--no-tags", "--filter=blob:none", "--", "origin", *commits)
        except RepoUnreadable:  # older servers: every branch and tag
            fetched.git("fetch", "--quiet", "--filter=blob:none", "--", "origin",
                        "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
        yield fetched


def _git(git_dir, command, *args, binary=False, repo=""):
    git, environ = credentials.controller_git(repo)
    try:
        result = subprocess.run([*git, "-C", git_dir, command, *args], capture_output=True,
                                timeout=GIT_TIMEOUT, stdin=subprocess.DEVNULL, env=environ)
    except subprocess.TimeoutExpired:
        raise RepoUnreadable(f"git {command} timed out after {GIT_TIMEOUT}s") from None
    except OSError as error:
        raise RepoUnreadable(f"cannot run git: {error}") from None
    if result.returncode != 0:
        lines = result.stderr.decode(errors="replace").strip().splitlines()
        errors = [line for line in lines if not line.startswith("warning:")] or lines or ["no output"]
        raise RepoUnreadable(mask(f"git {command}: {errors[-1]}"))
    return result.stdout if binary else result.stdout.decode(errors="replace")
