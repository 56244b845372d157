"""Getting the application's code: resolve the branch once, fill releases from a git cache.

`resolve_commit` runs locally (before any host is touched). By default
(`app.fetch: controller`) the controller fetches the commit into its own cache
of the repository (fab.app_repo.holding) and `prepare` makes, for each host
whose git cache lacks it, a git bundle of what that cache lacks (one per
distinct set of the caches' tips, which the host's state reports); fab.transfer
puts it into the host's store, so hosts need neither access to the repository
nor its credentials. With `app.fetch: hosts` each host fetches from the
repository itself, as it always could.

`checkout` runs on all roles: it brings the commit into the host's bare git
cache (from the bundle, or the repository; nothing when the cache has it) and
exports it into the release directory, with a REVISION file naming it. Safe to
rerun: an exported release is not exported again. `hotfix` replaces the code of
a release in place, never touching its links into shared/.
"""
import contextlib
import os
import re
import subprocess

from fab import app_repo, shell, transfer
from fab.app_repo import AppRepo
from fab.errors import PreflightError
from fab.operations import ALL_ROLES, credentials
from fab.operations.release import once
from fab.secrets import mask, mask_url
from fab.settings.build import FETCH_HOSTS
from fab.steps import Step

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


def bundle_groups(commit, tips_by_host, usable):
    """Which hosts get a bundle of `commit`, grouped by what it is made against:
    {frozenset of bases: [host names]}. `tips_by_host`: {host: the commits its git
    cache holds refs for}; a host holding `commit` among them needs none. A host's
    bases are those of its tips the controller has (`usable`): hosts with the same
    bases share one bundle; a host with none (an empty cache, or tips the
    controller does not know) gets a full one."""
    groups = {}
    for name, tips in tips_by_host.items():
        if commit not in tips:
            groups.setdefault(frozenset(tips) & frozenset(usable), []).append(name)
    return groups


def prepare(fleet, commit, release_name=None):
    """{host name: transfer.Artifact} of the git bundle each host needs to hold
    `commit`, made on the controller (app.fetch: controller; nothing with hosts).
    Hosts whose cache has it, or that exported it into `release_name` already,
    need none; a bundle that turns out empty (the commit is an ancestor of a
    host's tips) is not sent either. Touches no host (their tips were read with
    their state). Safe to rerun: the same bundles again."""
    if fleet.env.app.fetch == FETCH_HOSTS:
        return {}
    tips = {name: host.state.tips for name, host in fleet.hosts.items()
            if "code" not in host.state.steps.get(release_name, ())}
    if all(commit in host_tips for host_tips in tips.values()):
        return {}
    bundles = {}
    with app_repo.holding(fleet.env.app.repo, commit) as cache:
        reported = sorted(set().union(*tips.values()))
        usable = cache.commits_among(reported)
        if len(usable) < len(reported):  # e.g. a newer commit a host has (this deploy goes back)
            _fetch_what_it_can(cache, sorted(set(reported) - usable))
            usable = cache.commits_among(reported)
        for bases, names in bundle_groups(commit, tips, usable).items():
            path = cache.bundle(commit, bases)
            if path is not None:
                bundles.update(dict.fromkeys(names, transfer.artifact(path, f"{commit}.bundle")))
    return bundles


def _fetch_what_it_can(cache, commits, singly=10):
    """Fetch `commits` into the controller's cache: all at once, else (one is gone
    from the repository) the first `singly` one by one; those it cannot are no bases."""
    try:
        cache.fetch(*commits)
    except app_repo.RepoUnreadable:
        for commit in commits[:singly] if len(commits) > 1 else ():
            with contextlib.suppress(app_repo.RepoUnreadable):
                cache.fetch(commit)


def _checkout(host, mode, commit, release_name=None, bundle=None, run=shell.script_command):
    """Lines running fab/remote/checkout.sh (through `run`): `fetch` makes sure the
    host's bare git cache has `commit`, from the transfer.Artifact `bundle` in the
    host's store (app.fetch: controller; None: the cache has it), or from the
    repository (app.fetch: hosts); `export` then writes its files and REVISION
    into release `release_name`.

    From the repository, git gets its URL without its credentials, which it asks
    of the helper (fab.operations.credentials), whose variables the first line
    loads; a cache whose config still holds a URL with credentials (an older
    deployer's clone) gets the URL without them (with bundles: no URL at all).
    A bundle needs no credentials: none are loaded."""
    repo, paths = host.env.app.repo, host.paths
    release = [paths.release(release_name), paths.release_revision(release_name)] if release_name else ["", ""]
    if host.env.app.fetch == FETCH_HOSTS:
        return "\n".join([credentials.load_line(host), run(
            "checkout", mode, paths.git_cache, commit, "repository", credentials.public_url(repo), mask_url(repo),
            *release, *credentials.git_options(repo))])
    stored = paths.stored(bundle.sha256, bundle.name) if bundle else ""
    return run("checkout", mode, paths.git_cache, commit, "bundle", stored, mask_url(repo), *release)


def checkout(host, release_name, commit, bundle=None):
    """Step: bring `commit` into the git cache (from `bundle`, see `_checkout`) and
    export it into the release; its note says where the code came from."""
    body = _checkout(host, "export", commit, release_name, bundle, run=shell.step_script)

    def note(line):
        exported, _, locks = line.partition("; ")  # locks: "removed stale git locks: ..."
        if bundle and exported.endswith("from bundle"):
            exported += f" ({transfer.human_bytes(bundle.size)})"
        return f"{exported}; {locks}" if locks else exported
    return once(host, release_name, "code", body, then=note)


def fetch_for_hotfix(host, release_name, commit, bundle=None):
    """Step `fetch`: bring `commit` into the host's git cache (from `bundle`, see
    `_checkout`), and refuse it where it has a file or a symlink at a directory above
    one of the release's links into shared/ (a hotfix would write through it).
    Changes nothing in the release. With app.fetch: hosts, git's credentials must
    be on the host first (fab.operations.credentials.upload)."""
    body = shell.script(_checkout(host, "fetch", commit, bundle=bundle),
                        _hotfix_script(host, "check", release_name, "", commit))
    note = f"fetched {commit[:12]}" + (f" from bundle ({transfer.human_bytes(bundle.size)})" if bundle else "")
    return Step("fetch", body, then=lambda line: f"{note}; {line}" if line else note)  # line: stale git locks


def hotfix(host, release_name, old_commit, new_commit):
    """Replace the release's code from `old_commit` with `new_commit` (both in the
    git cache: fetch_for_hotfix brought it), in place.

    Files `new_commit` deleted are removed; the virtualenv, services, metadata and
    the links into shared/ are untouched (nothing is written, deleted or followed
    through those). Safe to rerun (the second run finds nothing left to delete).
    """
    requirements = host.env.requirements
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
