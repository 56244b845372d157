"""Several steps in one round trip (fab.steps), run here with the local bash:
each step reports its start, then its own outcome and note, a marker makes it run
once, the first failure stops the batch with that step's own output, and the
reports are read as they arrive, in pieces of any size."""
import glob
import os
import re
import subprocess
import time

import pytest
from hypothesis import given, settings, strategies as st

from fab import shell
from fab.steps import Outcome, Reader, Started, Step, compose, parse, without_reports


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


# --- reading the reports as they arrive -------------------------------------------------

#: A batch's stdout as a host sent it (captured from compose's script): two steps
#: done, one skipped by its marker, then one that failed after 15 seconds; a note
#: with a carriage return dropped, bytes of every kind kept.
CAPTURED = (
    "@@fab-step started release 1764990000.100000 1764990000.100000 \n"
    "@@fab-step ok release 1764990000.100000 1764990000.350000 created\n"
    "@@fab-step skipped code 0 0 \n"
    "@@fab-step started swap 1764990000.400000 1764990000.400000 \n"
    "@@fab-step ok swap 1764990000.400000 1764990000.410000 current -> b (was a) \x01 é\n"
    "@@fab-step started health 1764990000.420000 1764990000.420000 \n"
    "@@fab-step failed health 1764990000,420000 1764990015,440000 \n"  # a locale's decimal comma
)
BATCH = [Step("release", "true"), Step("code", "true"), Step("swap", "true"), Step("health", "true")]


def reports(pieces, steps=BATCH):
    got = []
    reader = Reader(steps, got.append)
    for piece in pieces:
        reader.write(piece)
    reader.close()
    return got, reader


def test_reports_come_in_the_order_the_host_said_them_with_its_times():
    got, reader = reports([CAPTURED])
    assert got == [Started("release"), Outcome("release", "ok", "created", pytest.approx(0.25)),
                   Outcome("code", "skipped", "skipped (already done)", 0.0),
                   Started("swap"), Outcome("swap", "ok", "current -> b (was a) \x01 é", pytest.approx(0.01)),
                   Started("health"), Outcome("health", "failed", "", pytest.approx(15.02))]
    assert [o.step for o in reader.done] == ["release", "code", "swap"]
    assert reader.failed.seconds == pytest.approx(15.02) and reader.running is None


@pytest.mark.parametrize("size", [1, 2, 3, 7, 16, 61, 1000])
def test_lines_split_across_pieces_read_the_same(size):
    pieces = [CAPTURED[i:i + size] for i in range(0, len(CAPTURED), size)]
    assert reports(pieces)[0] == reports([CAPTURED])[0]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(CAPTURED)), max_size=30))
def test_any_split_of_the_output_reads_the_same(cuts):
    edges = [0, *sorted(cuts), len(CAPTURED)]
    pieces = [CAPTURED[start:end] for start, end in zip(edges, edges[1:])]
    assert reports(pieces)[0] == reports([CAPTURED])[0]


def test_a_report_is_handed_on_only_once_its_line_is_whole():
    got, reader = [], None
    reader = Reader(BATCH, got.append)
    reader.write("noise from a step\n@@fab-step started swap 1.0 1.")
    assert got == []
    reader.write("0 \n@@fab-step ok swap 1.0 1.5 done")
    assert got == [Started("swap")] and reader.running == "swap"
    reader.close()  # the last line, without its newline, is read at the end
    assert got[-1] == Outcome("swap", "ok", "done", 0.5) and reader.running is None


def test_a_batch_cut_short_names_the_step_it_was_in():
    _, reader = reports([CAPTURED.split("@@fab-step failed")[0]])
    assert reader.running == "health" and reader.failed is None


def test_what_a_report_handler_raises_comes_out_of_close_not_out_of_write():
    def broken(report):
        raise RuntimeError("a bug of ours")

    reader = Reader(BATCH, broken)
    assert reader.write(CAPTURED) == len(CAPTURED)  # Fabric's reading thread never sees it
    with pytest.raises(RuntimeError, match="a bug of ours"):
        reader.close()


def test_each_step_is_reported_as_it_starts_not_when_the_batch_ends():
    """The real script, read from its pipe as it runs: `slow`'s start arrives while it sleeps."""
    steps = [Step("quick", "true"), Step("slow", "sleep 1; echo slept"), Step("failing", "sleep 0.3; false")]
    arrived = []
    reader = Reader(steps, lambda report: arrived.append((time.monotonic(), report)))
    started = time.monotonic()
    process = subprocess.Popen(["bash", "-c", compose(steps)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    while chunk := os.read(process.stdout.fileno(), 7):  # small reads: lines arrive in pieces
        reader.write(chunk.decode())
    reader.close()
    assert process.wait() == 1
    when = {(type(report).__name__, report.step): at - started for at, report in arrived}
    assert when[("Started", "slow")] < 0.8 <= when[("Outcome", "slow")]
    assert reader.done[-1] == Outcome("slow", "ok", "slept", pytest.approx(1.0, abs=0.3))
    assert reader.failed.step == "failing" and reader.failed.seconds == pytest.approx(0.3, abs=0.2)


def test_a_step_sees_no_variable_of_the_batch_but_those_named_fab(tmp_path):
    """Steps run their scripts in the batch's subshell (fab.shell.step_script), not in
    a fresh bash: the batch's own variables must not reach them, but by a name no
    remote script uses."""
    seen = tmp_path / "variables"
    _, done, failed = run([Step("one", "echo first; echo second"), Step("two", f"compgen -v > {seen}")])
    assert failed is None, done
    fresh = subprocess.run(["bash", "-c", "compgen -v"], capture_output=True, text=True).stdout.split()
    extra = set(seen.read_text().split()) - set(fresh) - {"PIPESTATUS"}
    assert extra and all(name.startswith("fab_") for name in extra), extra


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(shell.REMOTE_SCRIPTS, "*.sh"))), ids=os.path.basename)
def test_no_remote_script_but_those_that_run_the_others_names_a_variable_fab(path):
    """The scripts run in the shells of step.sh or serve.sh and of batch.sh: only those
    name variables fab_* (step.sh's fab_step_*, serve.sh's fab_serve_*, the fab_job_* of
    the function both include, watched_job.sh, none of which batch.sh names)."""
    names = set(re.findall(r"\bfab_[a-z_]+", open(path).read()))
    own = {"step.sh": ("fab_step_", "fab_job_"), "serve.sh": ("fab_serve_", "fab_job_"),
           "watched_job.sh": ("fab_job_",)}.get(os.path.basename(path))
    if own:
        assert names and all(name.startswith(own) for name in names), names
    elif os.path.basename(path) == "batch.sh":
        assert names and not any(name.startswith(("fab_step_", "fab_serve_", "fab_job_")) for name in names
                                 if name != "fab_serve_scratch"), names  # serve.sh's, for it
    else:
        assert not names, names
