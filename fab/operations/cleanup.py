"""Removing old releases, the virtualenvs no release uses any more, the store's
files nothing uses, and the git cache's refs and packs beyond what is needed.

Runs on: all roles. Which releases and venvs to delete is decided from every
host's state before any host changes: the releases by
`fab.releases.releases_to_delete`, the venvs by `fab.venvs.unused_venvs`.
fab/remote/cleanup.sh carries it out, then tidies by rules that need the host's
own view (what remains after the deletes, how old a file is):
- the store keeps an entry while a remaining venv's manifest names it, and any
  entry for UNUSED_STORE_MINUTES after it was written (a deploy that failed after
  its transfer resumes with its bundle and wheels there); then it goes;
- the git cache keeps a ref for the commit of every release present and for the
  HOST_KEPT_REFS newest deployed commits (the bases of the next bundle, and what
  a hotfix of any release still there diffs against; pruned to those only past
  twice as many, or before a repack: no git process most deploys), and is repacked into one
  pack once it has more than HOST_MAX_PACKS (the deploys' fetches never start
  git's auto-gc, which would repack every host at once mid-deploy).
The same round trip as the rest of the step. Safe to rerun.
"""
from fab import host_values as values
from fab import shell
from fab.operations import ALL_ROLES
from fab.paths import REVISION, VENV_WHEELS
from fab.releases import validate_release_name
from fab.steps import Step
from fab.venvs import unused_venvs

ROLES = ALL_ROLES
#: How many of the newest deployed commits keep their ref in a host's git cache,
#: beside the commits of the releases present there.
HOST_KEPT_REFS = 10
#: Packs a host's git cache may hold (one per fetched bundle) before cleanup repacks it.
HOST_MAX_PACKS = 8
#: Minutes a store entry no venv uses is kept after it was written (a day: time for a resume).
UNUSED_STORE_MINUTES = 24 * 60


def delete_releases(host, names, built=None):
    """Step "cleanup": delete the releases `names`, then the venvs no remaining
    release uses (of those the host had when its state was read), then tidy the
    store and the git cache (see the module); `built`: the rollout.Built of a
    release this task built there (its venv is in use, or unknown), if it did."""
    paths = host.paths
    state = host.state
    links, unknown = dict(state.venvs), set(state.venv_links_unknown)
    if built is not None:
        if built.venv:
            links[built.release] = built.venv
        elif built.venv is None:  # unknown (NO_VENV: it has none)
            unknown.add(built.release)
    doomed = [validate_release_name(name) for name in names]
    venvs = [values.hex_digest(key, "venv key") for key in unused_venvs(state.venv_dirs, links, unknown, doomed)]
    body = shell.step_script("cleanup", paths.releases, paths.venvs, paths.store, VENV_WHEELS, UNUSED_STORE_MINUTES,
                             paths.git_cache, REVISION, HOST_KEPT_REFS, HOST_MAX_PACKS, len(doomed), *doomed, *venvs)
    return Step("cleanup", body, then=lambda output: cleanup_note(len(doomed), output))


def cleanup_note(releases, output):
    """The step's note from cleanup.sh's line ("removed <releases> <venvs> <store
    entries> packs <before> <after>", then "; removed stale git locks: ..." if it
    did): what went, beyond "nothing to remove"."""
    counts, _, locks = output.partition("; ")
    words = counts.split()
    said = [f"removed {releases} release(s)"] if releases else []
    if len(words) == 7 and words[0] == "removed" and words[4] == "packs":
        if words[3] != "0":
            said.append(f"{words[3]} unused store file(s)")
        if words[5] != words[6]:
            said.append(f"git cache repacked ({words[5]} packs to {words[6]})")
    if locks:
        said.append(locks)
    return "; ".join(said) or "nothing to remove"
