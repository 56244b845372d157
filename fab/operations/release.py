"""A release directory's own bookkeeping: metadata, status and per-step markers.

Runs on: all roles. Steps are recorded on the host (`.release/steps/<step>`), so
a resumed deploy skips on each host exactly what that host already finished,
whichever machine the deploy is resumed from.
"""
from fab import shell
from fab.operations import ALL_ROLES
from fab.steps import Step

ROLES = ALL_ROLES


def create(host, meta):
    """Step: create the release directory with its metadata (and venvs/, where the
    host runs app code). Safe to rerun."""
    paths = host.paths
    venvs = [paths.venvs] if host.env.topology.runs_app(host.name) else []
    return Step("release", shell.step_script("meta", "create", paths.release_meta(meta.name), meta.to_json(),
                                             paths.shared, paths.log, *venvs, paths.release_steps(meta.name)))


def write_meta(host, meta):
    """Step "mark": rewrite the release's metadata (e.g. its new status), atomically,
    where the release still exists, keeping a later keep_until the host's own metadata
    has for it (ReleaseMeta.with_later_keep_until, as cleanup does: fab.snapshot)."""
    own = host.state.release(meta.name) if host.state else None
    if own and own.meta:
        meta = meta.with_later_keep_until(own.meta)
    paths = host.paths
    return Step("mark", shell.step_script("meta", "mark", paths.release_meta(meta.name), meta.to_json(),
                                          paths.release(meta.name), meta.status))


def once(host, release_name, step, body, then=None, result=None):
    """Step `step`, run in the release directory unless it already completed for
    this release on this host (its marker, in the release, says so)."""
    return Step(step, body, cwd=host.paths.release(release_name),
                marker=host.paths.release_step(release_name, step), then=then, result=result)
