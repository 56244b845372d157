"""fab.venvs: which virtualenvs cleanup deletes, decided from a host's state alone."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fab.venvs import unused_venvs

A, B, C = "aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb", "cccccccccccccccc"
R1, R2, R3 = "2026-12-01_00.00.00", "2026-12-02_00.00.00", "2026-12-03_00.00.00"


@pytest.mark.parametrize("present, links, unknown, deleted, unused", [
    ({A, B}, {R1: A, R2: B}, set(), [], []),  # every venv in use
    ({A, B}, {R1: A, R2: B}, set(), [R1], [A]),  # its last release goes, so does it
    ({A, B}, {R1: A, R2: A}, set(), [R1], [B]),  # B was left over; A still has R2
    ({A, B, C}, {}, set(), [], [A, B, C]),  # nothing links to any
    (set(), {R1: A}, set(), [R1], []),  # A built after the state was read: not present, kept
    ({A, B}, {R1: A}, {R2}, [R1], []),  # R2 stays and its venv is unknown: none deleted
    ({A, B}, {R1: A}, {R2}, [R1, R2], [A, B]),  # the unknown one goes too
    ({A, B}, {R1: A}, {"not-a-release"}, [R1], []),  # a stray directory's link keeps them all
])
def test_unused_venvs(present, links, unknown, deleted, unused):
    assert unused_venvs(present, links, unknown, deleted) == unused


RELEASES = st.sampled_from([R1, R2, R3, "stray"])
KEYS = st.sampled_from([A, B, C])


@settings(max_examples=300)
@given(st.sets(KEYS), st.dictionaries(RELEASES, KEYS), st.sets(RELEASES, max_size=2), st.sets(RELEASES))
def test_never_deletes_a_venv_a_kept_release_may_use(present, links, unknown, deleted):
    unused = unused_venvs(present, links, unknown, deleted)
    kept = (set(links) | set(unknown)) - set(deleted)
    assert set(unused) <= present
    assert not set(unused) & {links[name] for name in kept if name in links}
    if kept & set(unknown):
        assert unused == []
    else:  # and it deletes every other one it was told of
        assert set(unused) == present - {links[name] for name in kept if name in links}
