"""The application's repository on the controller: read for a plan (the commits
between two commits, a file's bytes at a commit), and kept in the controller's
cache to send hosts git bundles of a deploy's commit (`holding`, `AppRepo.bundle`).

The deployer already reads the repository from the controller (`git ls-remote`
resolves the branch), so a plan does too, and never asks a host: a repository
that is a local path is read in place (`git -C <path>`); any other is fetched
into a temporary bare repository (blobs on demand where the server allows it),
removed when the plan is made. No host's git cache is touched.

A deploy's commit is fetched into `<controller cache>/repos/<name>-<digest>`, one
bare repository per repository URL (without its credentials), kept between
tasks, the commit held by a ref of ours (DEPLOYED) so that it stays; the bundles
made from it are kept beside it (`<...>.bundles/`), so a resumed deploy sends
the very same file and a cut transfer goes on where it stopped.

Every git command here ends its options before its revisions (`--end-of-options`)
and its repository (`--`): a commit id a host reported can never be read as an
option (`--upload-pack=...` would run a command here).
"""
import contextlib
import fcntl
import hashlib
import os
import re
import subprocess
import tempfile

from fab import precedence
from fab.errors import DeployError
from fab.operations import credentials
from fab.secrets import mask

GIT_TIMEOUT = 300
#: Where the commits a deploy sent are kept, one ref each, on the controller and on hosts.
DEPLOYED = "refs/fab/deployed/"
#: How many of those refs the controller's cache keeps (the newest commits), and bundles.
CONTROLLER_KEPT_REFS = 100
KEPT_BUNDLES = 32


class RepoUnreadable(DeployError):
    """The repository (or a commit in it) cannot be read from the controller."""


class AppRepo:
    """A local git directory holding the commits a plan asked for."""

    def __init__(self, git_dir, repo=""):
        self.git_dir = git_dir
        #: The repository it fetches from, whose credentials git asks of the helper.
        self.repo = repo

    def git(self, command, *args, binary=False, stdin=None):
        """Run `git <command> <args>` here (`stdin`: text it reads); its stdout (bytes if `binary`)."""
        return _git(self.git_dir, command, *args, binary=binary, repo=self.repo, stdin=stdin)

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

    def fetch(self, *refspecs):
        """Fetch `refspecs` (commit ids, or refspecs) from the repository into this one."""
        self.git("fetch", "--quiet", "--no-tags", "--", os.path.expanduser(credentials.public_url(self.repo)),
                 *refspecs)

    def commits_among(self, candidates):
        """Those of `candidates` (commit ids) that are commits here, with their history."""
        if not candidates:
            return set()
        lines = self.git("cat-file", "--batch-check=%(objectname) %(objecttype)",
                         stdin="".join(f"{c}\n" for c in candidates)).splitlines()
        return {line.split(" ")[0] for line in lines if line.endswith(" commit")}

    def bundle(self, commit, bases):
        """The path of a git bundle holding `commit` (under its DEPLOYED ref) and what it
        needs beyond `bases` (commits here), kept beside this repository: made once,
        then the same file again (a transfer cut short goes on from its part). None
        when `bases` already hold `commit`."""
        directory = self.git_dir.removesuffix(".git") + ".bundles"
        excluded = [f"^{base}" for base in sorted(bases)]
        if bases and self.count_beyond(commit, bases) == 0:
            return None
        key = hashlib.sha256(" ".join(sorted(bases)).encode()).hexdigest()[:16]
        path = os.path.join(directory, f"{commit}-{key}.bundle")
        if os.path.exists(path):
            os.utime(path)
            return path
        os.makedirs(directory, exist_ok=True)
        temporary = f"{path}.tmp.{os.getpid()}"
        try:
            self.git("bundle", "create", "--quiet", temporary, f"{DEPLOYED}{commit}", *excluded)
            os.replace(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)
        for old in sorted(_bundles_in(directory), key=os.path.getmtime, reverse=True)[KEPT_BUNDLES:]:
            os.remove(old)
        return path

    def count_beyond(self, commit, bases):
        """How many commits `commit` has that none of `bases` has."""
        return int(self.git("rev-list", "--count", "--end-of-options", commit, *(f"^{b}" for b in bases), "--").strip())


def _bundles_in(directory):
    return [os.path.join(directory, name) for name in os.listdir(directory) if name.endswith(".bundle")]


def cache_path(repo, environ):
    """The controller's bare repository for `repo`: one per URL, named without its credentials."""
    public = credentials.public_url(repo)
    local = os.path.expanduser(public)
    if os.path.isdir(local):
        public = os.path.realpath(local)
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", public.rstrip("/").rpartition("/")[2].removesuffix(".git"))[:40]
    digest = hashlib.sha256(public.encode()).hexdigest()[:16]
    return os.path.join(precedence.controller_cache(environ), "repos", f"{name or 'repo'}-{digest}.git")


@contextlib.contextmanager
def holding(repo, commit, environ=None):
    """The controller's cache of `repo` (an AppRepo) holding `commit` under its
    DEPLOYED ref, fetched into it if it lacks it, locked for this process while in
    use (two deploys on one controller never fetch into it at once); RepoUnreadable
    if the repository cannot give it."""
    path = cache_path(repo, os.environ if environ is None else environ)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(f"{path}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cache = AppRepo(path, repo)
        if not os.path.isdir(os.path.join(path, "objects")):
            os.makedirs(path, exist_ok=True)
            cache.git("init", "--quiet", "--bare")
        if not cache.has(f"{commit}^{{commit}}"):
            try:  # by commit id (protocol v2 servers and local repositories allow it)
                cache.fetch(commit)
            except RepoUnreadable:  # older servers: every branch and tag
                cache.fetch("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
            if not cache.has(f"{commit}^{{commit}}"):
                raise RepoUnreadable(f"commit {commit} is not in {mask(repo)}")
        cache.git("update-ref", "--end-of-options", f"{DEPLOYED}{commit}", commit)
        stale = cache.git("for-each-ref", "--sort=-committerdate", "--format=%(refname)", DEPLOYED).split()
        if len(stale) > CONTROLLER_KEPT_REFS:
            cache.git("update-ref", "--stdin", stdin="".join(f"delete {ref}\n" for ref in stale[CONTROLLER_KEPT_REFS:]))
        yield cache


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


def describe_commit(repo, commit, environ=None):
    """(committer time as epoch seconds, subject) of `commit` as the controller already
    holds it (its cache of `repo`, or `repo` itself when it is a local path), or None
    where it does not: nothing is fetched, one `git show` per place looked in."""
    places = [cache_path(repo, os.environ if environ is None else environ)]
    local = os.path.expanduser(credentials.public_url(repo))
    if os.path.isdir(local):
        places.append(local)
    for place in places:
        if not os.path.isdir(place):
            continue
        try:
            shown = AppRepo(place, repo).git("show", "-s", "--format=%ct%x00%s", "--end-of-options", commit, "--")
        except RepoUnreadable:
            continue
        seconds, _, subject = shown.rstrip("\n").partition("\0")
        if seconds.isdigit():
            return float(seconds), subject
    return None


def _git(git_dir, command, *args, binary=False, repo="", stdin=None):
    git, environ = credentials.controller_git(repo)
    try:
        result = subprocess.run([*git, "-C", git_dir, command, *args], capture_output=True, timeout=GIT_TIMEOUT,
                                env=environ, **({"stdin": subprocess.DEVNULL} if stdin is None
                                                else {"input": stdin.encode()}))
    except subprocess.TimeoutExpired:
        raise RepoUnreadable(f"git {command} timed out after {GIT_TIMEOUT}s") from None
    except OSError as error:
        raise RepoUnreadable(f"cannot run git: {error}") from None
    if result.returncode != 0:
        lines = result.stderr.decode(errors="replace").strip().splitlines()
        errors = [line for line in lines if not line.startswith("warning:")] or lines or ["no output"]
        raise RepoUnreadable(mask(f"git {command}: {errors[-1]}"))
    return result.stdout if binary else result.stdout.decode(errors="replace")
