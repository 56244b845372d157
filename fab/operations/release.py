"""A release directory's own bookkeeping: metadata, status and per-step markers.

Runs on: all roles. Steps are recorded on the host (`.release/steps/<step>`), so
a resumed deploy skips on each host exactly what that host already finished,
whichever machine the deploy is resumed from.
"""
from fab import shell
from fab.operations import ALL_ROLES

ROLES = ALL_ROLES
SKIPPED = "__skipped__"


def create(host, meta):
    """Create the release directory with its metadata. Safe to rerun."""
    paths = host.paths
    host.run(
        shell.script(
            shell.command("mkdir", "-p", paths.shared, paths.log, paths.venvs, paths.release_steps(meta.name)),
            shell.write_file(paths.release_meta(meta.name), meta.to_json()),
        )
    )
    return "created"


def write_meta(host, meta):
    """Rewrite the release's metadata (e.g. its new status), atomically."""
    paths = host.paths
    host.run(shell.script(
        f"[ -d {shell.quote(paths.release(meta.name))} ] || exit 0",
        shell.write_file(paths.release_meta(meta.name), meta.to_json()),
    ))
    return meta.status


def once(host, release_name, step, body, timeout=None):
    """Run `body` unless `step` already completed for this release on this host.

    The check, the work and the marker are one round trip, stopped after
    `timeout` seconds (default: the environment's command_timeout). Returns the
    body's last output line, or "skipped (already done)".
    """
    marker = shell.quote(host.paths.release_step(release_name, step))
    output = host.run(
        f"""
if [ -e {marker} ]; then echo {SKIPPED}; exit 0; fi
set -e
cd {shell.quote(host.paths.release(release_name))}
{body}
touch {marker}
""",
        timeout=timeout,
    )
    lines = output.strip().splitlines()
    if lines and lines[-1] == SKIPPED:
        return "skipped (already done)"
    return lines[-1] if lines else "done"
