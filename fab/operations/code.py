"""Getting the application's code: resolve the branch once, fill releases from a git cache.

`resolve_commit` runs locally (before any host is touched). `checkout` runs on
all roles: it updates the host's bare mirror of the app repository (a fetch, not
a fresh clone) and exports the commit into the release directory, with a
REVISION file naming it. Safe to rerun: an exported release is not exported again.
`hotfix` replaces the code of a release in place, never touching its links into shared/.
"""
import os
import re
import subprocess

from fab import shell
from fab.app_repo import AppRepo
from fab.errors import PreflightError
from fab.operations import ALL_ROLES, credentials
from fab.operations.release import once
from fab.secrets import mask, mask_url

ROLES = ALL_ROLES
_SHA = re.compile(r"^[0-9a-f]{40}$")
_ABBREVIATED_SHA = re.compile(r"^[0-9a-f]{4,39}$")  # the controller has no clone to expand it in


def resolve_commit(repo, ref):
    """The commit `ref` (a branch, tag or commit id) names in `repo`, asked once, locally."""
    if _SHA.match(ref):
        return _existing_commit(repo, ref)
    git, environ = credentials.controller_git(repo)
    try:
        result = subprocess.run(
            [*git, "ls-remote", "--", credentials.public_url(repo), ref],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, env=environ,
        )
    except subprocess.TimeoutExpired:
        raise PreflightError(f"git ls-remote {mask_url(repo)} timed out") from None
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise PreflightError(mask(f"cannot read repository {repo}: {last}"))
    wanted = {f"refs/heads/{ref}", f"refs/tags/{ref}", f"refs/tags/{ref}^{{}}", ref}
    found = {}
    for line in result.stdout.splitlines():
        sha, _, name = line.partition("\t")
        if name in wanted:
            found[name] = sha
    for name in (f"refs/tags/{ref}^{{}}", f"refs/heads/{ref}", f"refs/tags/{ref}", ref):
        if name in found:
            return found[name]
    if _ABBREVIATED_SHA.match(ref):
        raise PreflightError(f"{ref!r} is not a branch or tag in {mask_url(repo)}; "
                             "give a commit as its full 40-character id")
    raise PreflightError(f"branch or tag {ref!r} does not exist in {mask_url(repo)}")


def _existing_commit(repo, commit):
    """`commit`, checked to be in `repo` when the repository is on this machine (a
    path or file:// URL); elsewhere only its hosts can tell, when they fetch it."""
    path = os.path.expanduser(repo[len("file://"):] if repo.startswith("file://") else repo)
    if os.path.isdir(path):
        in_place = AppRepo(path)  # unreadable here (another user's, say): the hosts tell
        if in_place.readable() and not in_place.has(f"{commit}^{{commit}}"):
            raise PreflightError(f"commit {commit} is not in {mask_url(repo)}")
    return commit


def _checkout(host, mode, commit, release_name=None, run=shell.script_command):
    """Lines running fab/remote/checkout.sh (through `run`): `fetch` makes sure the
    host's bare mirror has `commit` (fetching it from the repository, cloning the
    mirror the first time, unless it is there already); `export` then writes its
    files and REVISION into release `release_name`.

    git gets the repository's URL without its credentials, which it asks of the
    helper (fab.operations.credentials), whose variables the first line loads; a
    cache whose config still holds a URL with credentials (an older deployer's
    clone) gets the URL without them."""
    repo, paths = host.env.app.repo, host.paths
    release = [paths.release(release_name), paths.release_revision(release_name)] if release_name else ["", ""]
    return "\n".join([credentials.load_line(host), run(
        "checkout", mode, paths.git_cache, credentials.public_url(repo), commit, mask_url(repo), *release,
        *credentials.git_options(repo))])


def checkout(host, release_name, commit):
    """Step: update the git cache and export `commit` into the release."""
    body = _checkout(host, "export", commit, release_name, run=shell.exec_script)
    return once(host, release_name, "code", body)


def fetch_for_hotfix(host, release_name, commit):
    """Bring `commit` into the host's git cache, and refuse it where it has a file or
    a symlink at a directory above one of the release's links into shared/ (a hotfix
    would write through it). Changes nothing in the release."""
    host.run(shell.script(_checkout(host, "fetch", commit), _hotfix_script(host, "check", release_name, "", commit)))
    return f"fetched {commit[:12]}"


def hotfix(host, release_name, old_commit, new_commit):
    """Replace the release's code from `old_commit` with `new_commit`, in place.

    Files `new_commit` deleted are removed; the virtualenv, services, metadata and
    the links into shared/ are untouched (nothing is written, deleted or followed
    through those). Safe to rerun (the second run finds nothing left to delete).
    """
    requirements = host.env.requirements
    if credentials.needed_on(host):
        credentials.upload(host)
    output = host.run(shell.script(
        _checkout(host, "fetch", new_commit),
        _hotfix_script(host, "apply", release_name, old_commit, new_commit),
        shell.command("git", f"--git-dir={host.paths.git_cache}", "diff", "--quiet", "--end-of-options",
                      old_commit, new_commit, "--", *requirements)
        + f" || echo {shell.quote(REQUIREMENTS_CHANGED)}" if requirements else "",
    ))
    note = f"code {old_commit[:12]} -> {new_commit[:12]}"
    return f"{note}; {REQUIREMENTS_CHANGED}" if REQUIREMENTS_CHANGED in output else note


def _hotfix_script(host, mode, release_name, old_commit, new_commit):
    """The command running fab/remote/hotfix.sh (`check` or `apply`) on the release."""
    paths = host.paths
    return shell.script_command("hotfix", mode, paths.release(release_name), paths.shared, paths.git_cache,
                                old_commit, new_commit, paths.release_revision(release_name))


#: What a hotfix's note says when the commit changes the requirements (never installed by it).
REQUIREMENTS_CHANGED = "requirements changed, not installed"
