"""Swapping `current`: a temporary symlink renamed over the old one, never rm + ln.

Runs on: all roles. rename(2) is atomic, so at every instant `current` points to
a complete release. Swaps are fenced (fab/remote/swap.sh): a swap that an
interrupt cut short cannot land after the one that put the host back. Safe to rerun.
"""
import itertools
import uuid

from fab import shell
from fab.operations import ALL_ROLES

ROLES = ALL_ROLES

#: This process's swaps, in the order they were asked for (see swap.sh).
_TASK = uuid.uuid4().hex
_order = itertools.count(1)


def swap(host, release_name):
    """Point `current` at `release_name`; returns "current -> <new> (was <old>)"."""
    previous = _swap(host, release_name)
    return f"current -> {release_name} (was {previous or 'nothing'})"


def remove(host):
    """Remove `current` (used to undo the very first deploy, which had no previous release)."""
    _swap(host, "")


def _swap(host, release_name):
    output = host.run(shell.remote_script("swap"),
                      [host.paths.code_root, release_name, _TASK, next(_order)])
    return output.strip().splitlines()[-1].partition("=")[2].rstrip("/").split("/")[-1]
