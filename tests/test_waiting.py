"""The wait loop's decisions (fab.waiting), on a fake clock: when it looks again, what it
says and when, and that it gives up at the deadline with the last refusal (exit 3)."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fab import waiting
from fab.errors import Frozen, LockHeld
from fab.history.errors import ClaimHeld


class FakeClock:
    def __init__(self):
        self.now = 1000.0
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        assert seconds > 0
        self.slept.append(seconds)
        self.now += seconds


def refusals(*holders, then="ran"):
    """An attempt refused by each of `holders` in turn (a LockHeld type and its holder), then `then`."""
    queue = list(holders)

    def attempt():
        if queue:
            kind, holder = queue.pop(0)
            raise kind(f"environment prod is locked by {holder}; ...", holder=holder)
        return then
    return attempt


def run(attempt, seconds, clock, pauses=lambda: 3.0):
    said = []
    result = waiting.until_free(attempt, seconds, "prod", said.append, clock=clock, sleep=clock.sleep,
                                pauses=pauses)
    return result, said


def test_it_runs_once_free_saying_the_holder_once_then_on_change():
    clock = FakeClock()
    attempt = refusals((ClaimHeld, "alice"), (ClaimHeld, "alice"), (LockHeld, "alice"), (LockHeld, "bob"))
    result, said = run(attempt, 60, clock)
    assert result == "ran"
    assert said == ["waiting up to 60s more: prod is locked by alice",
                    "waiting up to 51s more: prod is locked by bob"]
    assert clock.slept == [3.0] * 4


def test_a_freeze_is_said_as_a_freeze():
    clock = FakeClock()
    _, said = run(refusals((Frozen, "carol (freeze, ...): incident")), 10, clock)
    assert said == ["waiting up to 10s more: prod is frozen by carol (freeze, ...): incident"]


def test_at_the_deadline_the_last_refusal_is_raised_saying_how_long_it_waited():
    clock = FakeClock()
    attempt = refusals(*[(LockHeld, "alice")] * 100)
    with pytest.raises(LockHeld) as refused:
        run(attempt, 7, clock)
    assert refused.value.exit_code == 3 and refused.value.holder == "alice"
    assert str(refused.value).endswith("(waited 7s)")
    assert clock.slept == [3.0, 3.0, 1.0]  # never past the deadline
    assert clock.now == 1007.0


def test_without_wait_it_refuses_at_once_as_before():
    clock = FakeClock()
    with pytest.raises(ClaimHeld) as refused:
        run(refusals((ClaimHeld, "alice")), 0, clock)
    assert "waited" not in str(refused.value) and clock.slept == []


def test_other_errors_are_not_waited_for():
    clock = FakeClock()

    def attempt():
        raise ValueError("boom")
    with pytest.raises(ValueError):
        run(attempt, 60, clock)
    assert clock.slept == []


@pytest.mark.parametrize("now, deadline, pause, expected", [
    (0, 10, 3, 3), (8, 10, 3, 2), (10, 10, 3, None), (11, 10, 3, None), (9.5, 10, 2.2, 0.5),
])
def test_next_look(now, deadline, pause, expected):
    assert waiting.next_look(now, deadline, pause) == expected


def test_pauses_are_a_few_seconds_and_jittered():
    pauses = {waiting.pause() for _ in range(50)}
    assert all(2.0 <= p <= 5.0 for p in pauses) and len(pauses) > 1


@settings(max_examples=200, deadline=None)
@given(holders=st.lists(st.sampled_from(["alice", "bob"]), max_size=30),
       seconds=st.integers(min_value=1, max_value=120),
       pauses=st.lists(st.floats(min_value=2.0, max_value=5.0), min_size=1, max_size=5))
def test_it_never_waits_past_its_deadline_and_says_each_change_once(holders, seconds, pauses):
    clock = FakeClock()
    cycle = iter(pauses * 100)
    said = []
    try:
        result = waiting.until_free(refusals(*[(LockHeld, h) for h in holders]), seconds, "prod", said.append,
                                    clock=clock, sleep=clock.sleep, pauses=lambda: next(cycle))
    except LockHeld:
        result = None
    assert clock.now - 1000.0 <= seconds + 1e-9
    if result == "ran":
        tried = holders
    else:  # gave up: it tried once more than it slept
        assert clock.now - 1000.0 == pytest.approx(seconds)
        tried = holders[:len(clock.slept) + 1]
    changes = [h for i, h in enumerate(tried[:len(clock.slept)]) if i == 0 or tried[i - 1] != h]
    assert [line.rsplit(" ", 1)[1] for line in said] == changes
