"""Swapping `current`: a temporary symlink renamed over the old one, never rm + ln.

Runs on: all roles. rename(2) is atomic, so at every instant `current` points to
a complete release. Swaps are fenced (fab/remote/swap.sh): a swap that an
interrupt cut short cannot land after the one that put the host back, and a
task whose deploy lock was broken cannot swap, only put back. Safe to rerun.
"""
import itertools
import uuid

from fab import shell
from fab.operations import ALL_ROLES
from fab.operations.lock import fence_arguments
from fab.steps import Step

ROLES = ALL_ROLES

#: This process's swaps, in the order they were asked for (see swap.sh).
_TASK = uuid.uuid4().hex
_order = itertools.count(1)


def swap_step(host, release_name, then=None, lock=None):
    """Step: point `current` at `release_name`, or with none remove `current`
    (undoing the very first deploy). Its note: "current -> <new> (was <old>)".

    With `lock` (the task's HeldLock) the swap carries its generation: the host
    refuses it if the lock was broken since, unless the task lost its lock and
    this only puts the host back (see swap.sh)."""
    arguments = swap_arguments(host.paths, release_name, _TASK, next(_order),
                               *([lock.generation, bool(lock.lost)] if lock else []),
                               read=host.state.current if host.state else None)
    body = shell.step_script("swap", *arguments)

    def note(last_line):
        previous = last_line.partition("=")[2].rstrip("/").split("/")[-1] or "nothing"
        text = (f"current -> {release_name} (was {previous})" if release_name
                else f"current removed (it was the first deploy; was {previous})")
        return then(text) if then else text

    return Step("swap", body, then=note)


def swap_arguments(paths, release_name, task, counter, generation=None, putback=False, read=None):
    """fab/remote/swap.sh's arguments: point `current` at `release_name` (None: remove
    it) as swap `counter` of `task`; with `generation` (the task's lock generation)
    fenced by the lock, and with `putback` only putting a host back. `read`: the
    release the host's state said `current` leads to (None: none)."""
    target = [paths.current_target(release_name), paths.release(release_name)] if release_name else ["", ""]
    was = [paths.current_target(read), paths.release(read)] if read else ["", ""]
    fence = [generation, *fence_arguments(paths), "putback" if putback else ""] if generation is not None else []
    return [paths.current, *target, paths.current_temp, paths.swap_lock, paths.swap_fence, task, counter, *was,
            *fence]
