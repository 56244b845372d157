"""Swapping `current`: a temporary symlink renamed over the old one, never rm + ln.

Runs on: all roles. rename(2) is atomic, so at every instant `current` points to
a complete release. Safe to rerun.
"""
from fab import shell
from fab.operations import ALL_ROLES

ROLES = ALL_ROLES


def swap(host, release_name):
    """Point `current` at `release_name`; returns "current -> <new> (was <old>)"."""
    paths = host.paths
    root = shell.quote(paths.code_root)
    target = shell.quote(paths.current_target(release_name))
    output = host.run(
        f"""
set -e
cd {root}
[ -d {target} ] || {{ echo "release {release_name} does not exist" >&2; exit 1; }}
previous=$(readlink current 2>/dev/null || true)
ln -sfn {target} .current.tmp.$$
mv -Tf .current.tmp.$$ current
echo "previous=$previous"
"""
    )
    previous = output.strip().splitlines()[-1].partition("=")[2].rstrip("/").split("/")[-1]
    return f"current -> {release_name} (was {previous or 'nothing'})"


def remove(host):
    """Remove `current` (used to undo the very first deploy, which had no previous release)."""
    host.run(shell.command("rm", "-f", host.paths.current))
