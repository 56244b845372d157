"""Which virtualenvs nothing uses any more: what cleanup deletes of a host's venvs/.

A pure decision from what the host's state says (fab.operations.state.HostState),
tested without a host (tests/test_venvs.py); fab/remote/cleanup.sh only carries
it out.
"""


def unused_venvs(present, links, unknown, deleted):
    """The keys of `present` (the venvs/ directories the host had when its state was
    read) that no release left after deleting `deleted` links to, sorted.

    `links` is {release: key} of the venv links known; `unknown` names the releases
    (or other directories of releases/) whose link is unknown: while one of them
    stays, no venv is deleted, since it may be the one in use. A venv built after
    the state was read is not in `present`, so it is never deleted.
    """
    deleted = set(deleted)
    if any(name not in deleted for name in unknown):
        return []
    used = {key for name, key in links.items() if name not in deleted}
    return sorted(set(present) - used)
