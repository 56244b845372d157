"""A release directory's own bookkeeping: metadata, status and per-step markers.

Runs on: all roles. Steps are recorded on the host (`.release/steps/<step>`), so
a resumed deploy skips on each host exactly what that host already finished,
whichever machine the deploy is resumed from.
"""
import dataclasses

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
    where the release still exists. A `keep_until` the host's own metadata has stays:
    the task's record of the release comes from one host, and no task moves it (only
    setup_release sets it, when the release is made), so a host that differs keeps
    its own, as cleanup does (fab.snapshot)."""
    own = host.state.release(meta.name) if host.state else None
    if own and own.meta and own.meta.keep_until and own.meta.keep_until != meta.keep_until:
        meta = dataclasses.replace(meta, keep_until=own.meta.keep_until)
    paths = host.paths
    return Step("mark", shell.step_script("meta", "mark", paths.release_meta(meta.name), meta.to_json(),
                                          paths.release(meta.name), meta.status))


def once(host, release_name, step, body, then=None, result=None):
    """Step `step`, run in the release directory unless it already completed for
    this release on this host (its marker, in the release, says so)."""
    return Step(step, body, cwd=host.paths.release(release_name),
                marker=host.paths.release_step(release_name, step), then=then, result=result)
