"""fab/remote/git_cache_functions.sh: which lock files git's output names as existing
inside a host's git cache (those git_in_cache removes before it runs git again: see
tests/test_checkout_script.py for checkout.sh and cleanup.sh doing so). What git
names outside the cache, through a symlink, or not as a *.lock file is never named."""
import subprocess

import pytest

from fab import shell

IN_USE = ("fatal: Unable to create '{}': File exists.\n\nAnother git process seems to be running in this "
          "repository, e.g.\nan editor opened by 'git commit'. ...\nremove the file manually to continue.")


def named_locks(cache, output):
    """What stale_git_locks says of git's `output` for `cache`: (status, its lines)."""
    result = subprocess.run(["bash", "-c", shell.remote_script("git_cache_functions") + 'stale_git_locks "$@"',
                             "stale_git_locks", cache, output], capture_output=True, text=True)
    return result.returncode, result.stdout.splitlines()


@pytest.fixture
def cache(tmp_path):
    cache = tmp_path / "git-cache"
    (cache / "refs" / "heads").mkdir(parents=True)
    for name in ("packed-refs.lock", "config.lock", "refs/heads/main.lock"):
        (cache / name).write_text("")
    return cache


@pytest.mark.parametrize("output, named", [
    (IN_USE.format("{cache}/packed-refs.lock"), ["packed-refs.lock"]),
    ("error: cannot lock ref 'refs/heads/main': " + IN_USE.format("{cache}/refs/heads/main.lock")
     + "\nerror: cannot lock ref 'x': " + IN_USE.format("{cache}/packed-refs.lock"),
     ["refs/heads/main.lock", "packed-refs.lock"]),
    ("error: could not lock config file {cache}/config: File exists", ["config.lock"]),
], ids=["packed-refs", "two refs", "config"])
def test_the_lock_files_git_names_in_the_cache_are_named(cache, output, named):
    assert named_locks(str(cache), output.format(cache=cache)) == (0, named)


@pytest.mark.parametrize("output", [
    "fatal: repository 'x' does not exist",  # no lock in the way
    IN_USE.format("{elsewhere}/packed-refs.lock"),  # outside the cache
    IN_USE.format("{cache}/../elsewhere/packed-refs.lock"),  # climbs out of it
    IN_USE.format("{cache}/./packed-refs.lock"),
    IN_USE.format("{cache}/linked/packed-refs.lock"),  # through a symlink out of it
    IN_USE.format("{cache}/refs/heads/absent.lock"),  # gone already (another holder's?)
    IN_USE.format("{cache}/refs/heads"),  # no *.lock
    IN_USE.format("{cache}/packed-refs.lock") + IN_USE.format("/etc/passwd.lock"),  # one bad: none
], ids=["no lock", "outside", "climbing", "dot", "symlink", "absent", "not a lock", "one bad"])
def test_nothing_outside_the_cache_or_not_a_lock_file_is_named(cache, tmp_path, output):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "packed-refs.lock").write_text("")
    (cache / "linked").symlink_to(elsewhere)
    status, named = named_locks(str(cache), output.format(cache=cache, elsewhere=elsewhere))
    assert status == 1 and named == []
