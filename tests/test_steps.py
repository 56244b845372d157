"""Several steps in one round trip (fab.steps), run here with the local bash:
each step reports its own outcome and note, a marker makes it run once, and the
first failure stops the batch with that step's own output."""
import subprocess

import pytest

from fab.steps import Step, compose, parse, without_reports


def run(steps):
    result = subprocess.run(["bash", "-c", compose(steps)], capture_output=True, text=True, timeout=30)
    return result, *parse(steps, result.stdout)


def test_each_step_reports_its_last_line_in_its_own_directory(tmp_path):
    steps = [Step("first", "echo one; echo 'two words'", cwd=str(tmp_path)),
             Step("second", "pwd", cwd=str(tmp_path / "..")),
             Step("third", "printf 'no newline \\001 bytes'", then=lambda line: f"[{line}]")]
    result, done, failed = run(steps)
    assert result.returncode == 0 and failed is None
    assert [(o.step, o.outcome) for o in done] == [("first", "ok"), ("second", "ok"), ("third", "ok")]
    assert done[0].note == "two words"
    assert done[1].note == str(tmp_path.parent)
    assert done[2].note == "[no newline \x01 bytes]"
    assert all(o.seconds >= 0 for o in done)


def test_a_marker_makes_a_step_run_once(tmp_path):
    marker = tmp_path / "done"
    counter = tmp_path / "count"
    step = Step("once", f"echo x >> {counter}; echo ran", cwd=str(tmp_path), marker=str(marker))
    _, first, _ = run([step])
    _, second, _ = run([step])
    assert first[0].note == "ran" and marker.exists()
    assert second[0].outcome == "skipped" and second[0].note == "skipped (already done)"
    assert counter.read_text() == "x\n"


def test_the_first_failure_stops_the_batch_with_its_own_output(tmp_path):
    marker = tmp_path / "never"
    steps = [Step("good", "echo fine >&2; echo ok"),
             Step("bad", "echo partial; echo 'the real reason' >&2; false; echo unreachable",
                  marker=str(marker)),
             Step("after", f"touch {tmp_path / 'ran-after'}")]
    result, done, failed = run(steps)
    assert result.returncode == 1
    assert [o.step for o in done] == ["good"] and failed == "bad"
    assert result.stderr.strip().splitlines() == ["partial", "the real reason"]
    assert not marker.exists() and not (tmp_path / "ran-after").exists()


def test_step_names_are_plain_words():
    with pytest.raises(ValueError):
        compose([Step("two words", "true")])


def test_a_cut_batch_is_shown_without_its_report_lines():
    output = "exporting\n@@fab-step ok code 1.0 1.1 exported\nbuilding..."
    assert without_reports(output) == "exporting\nbuilding..."
