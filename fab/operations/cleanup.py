"""Removing old releases, the virtualenvs no release uses any more, and the stored
wheels no virtualenv was installed from.

Runs on: all roles. What to delete is decided from every host's state before any
host changes: the releases by `fab.releases.releases_to_delete`, the venvs by
`fab.venvs.unused_venvs`, the wheels by `fab.wheels.unused_wheels`;
fab/remote/cleanup.sh only carries it out. Safe to rerun.
"""
from fab import host_values as values
from fab import shell, wheels
from fab.operations import ALL_ROLES
from fab.paths import VENV_WHEELS
from fab.releases import validate_release_name
from fab.steps import Step
from fab.venvs import unused_venvs

ROLES = ALL_ROLES


def delete_releases(host, names, built=None):
    """Step "cleanup": delete the releases `names`, then the venvs no remaining
    release uses (of those the host had when its state was read); `built`: the
    rollout.Built of a release this task built there (its venv is in use, or
    unknown), if it did."""
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
    unused = wheels.unused_wheels(state.stored_wheels, state.venv_wheels, state.venv_dirs - set(venvs))
    pairs = [word for wheel in unused for word in (wheel.sha256, wheel.name)]
    note = f"removed {len(doomed)} release(s)" if doomed else "nothing to remove"
    return Step("cleanup", shell.step_script("cleanup", paths.releases, paths.venvs, len(doomed), *doomed, *venvs,
                                             *(["--wheels", paths.store, VENV_WHEELS, *pairs] if pairs else [])),
                then=lambda _: note)
