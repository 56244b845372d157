"""The git clone `fab` runs in, if any: whether the branch being deployed has commits
there that the repository the hosts get the code from does not (committed, never
pushed), so the deploy would silently leave them out.

Read on the controller only, with local git, and never fatal: anything it cannot
tell (no clone here, another repository's clone, the deployed commit unknown here)
says nothing.
"""
import os
import subprocess

from fab.events import stream


def unpushed_commits(directory, branch, deployed):
    """How many commits the local branch `branch` of the clone at `directory` has that
    `deployed` (the commit the deploy resolved the branch to) lacks; None when that
    cannot be told (no such clone or branch, or `deployed` unknown here)."""
    try:
        result = subprocess.run(
            ["git", "-C", directory, "rev-list", "--count", f"{deployed}..refs/heads/{branch}", "--"],
            capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    count = result.stdout.strip()
    return int(count) if result.returncode == 0 and count.isdigit() else None


def unpushed_warning(directory, branch, deployed):
    """One line when the clone at `directory` has commits on `branch` the deploy of
    `deployed` leaves out, else None."""
    count = unpushed_commits(directory, branch, deployed)
    if not count:
        return None
    commits = "1 commit" if count == 1 else f"{count} commits"
    return (f"{commits} on {branch} in this clone ({directory}) are not in the repository the hosts get "
            f"the code from: this deploy of {deployed[:12]} leaves them out (git push first)")


def warn_of_unpushed(ref, commit):
    """Warn (one line) when `fab` runs in a clone whose branch `ref` has commits that
    `commit` (what the repository's `ref` is; None: not resolved) lacks."""
    warning = commit and unpushed_warning(os.getcwd(), ref, commit)
    if warning:
        stream.warning(warning)
