"""Text from hosts, commits and the history store reaches terminals and CI logs without
terminal control sequences, and is never read as rich markup (`fab.shown`)."""
import io
import json
import re
import shlex

import pytest
from rich.console import Console

from conftest import assert_ok
from fab import events as ev
from fab.history import views
from fab.outputs.live import LiveView
from fab.outputs.plain import PlainLines, plain_console
from fab.outputs.record import TaskRecord
from fab.outputs.summary import document
from fab.secrets import MaskedLines
from fab.shown import shown, shown_data

HOSTILE = ("colour \x1b[31mred\x1b[0m, title \x1b]0;pwned\x07, link \x1b]8;;http://evil\x1b\\here"
           "\x1b]8;;\x1b\\, cursor up \x1b[2A, clear \x1b[2J, 8-bit CSI \x9b2J, bell \x07,"
           " back\x08space, NUL \x00, DEL \x7f, bidi \u202eevil, rewrite visible\rHIDDEN,"
           " [bold red]markup[/] [link=http://evil]click[/link]")
MARKUP_NAME = "[u]2026-11-22_03.00.00"
CONTROLS = [chr(c) for c in [*range(0x00, 0x09), *range(0x0b, 0x20), *range(0x7f, 0xa0)]]


@pytest.mark.parametrize("text,expected", [
    ("plain text, tabs\tand\nnewlines", "plain text, tabs\tand\nnewlines"),
    ("\x1b[1;31mred\x1b[0m", "red"),
    ("\x1b]0;window title\x07after", "after"),
    ("\x1b]8;;http://e\x1b\\link\x1b]8;;\x1b\\", "link"),
    ("\x1bPdevice control\x1b\\after", "after"),
    ("\x1b]unterminated\nnext line", "\nnext line"),  # swallows at most its own line
    ("\x1b7saved\x1b8", "saved"),
    ("a lone \x1b", "a lone "),
    ("windows\r\nline", "windows\nline"),
    ("shown\rrewritten", "shown\nrewritten"),  # nothing a CR would hide stays hidden
    ("\u202eright-to-left override", "right-to-left override"),
    ("ünïcödé ✓ 日本", "ünïcödé ✓ 日本"),
])
def test_shown_drops_control_sequences_and_keeps_text(text, expected):
    assert shown(text) == expected


def test_shown_leaves_no_control_character():
    cleaned = shown(HOSTILE + "".join(CONTROLS))
    assert not any(char in cleaned for char in CONTROLS + ["\u202e"])
    assert "HIDDEN" in cleaned and "[bold red]markup[/]" in cleaned


def test_shown_data_cleans_every_string_keys_too():
    data = {"a\x1b[2J": ["x\x1b[31m", ("y\x07", 3)], "n": None, "b": True}
    assert shown_data(data) == {"a": ["x", ("y", 3)], "n": None, "b": True}


def hostile_task():
    """A deploy whose commit, step output, notes and release listing carry HOSTILE."""
    # As a listing holds it (whatever the reader of host metadata lets through, tables
    # must not read it as markup).
    listing = {"current": MARKUP_NAME, "rollback_target": None, "releases": [
        {"name": MARKUP_NAME, "status": "[blink]good", "commit": "[i]c0ffee" + "0" * 31, "branch": "main",
         "deployed_by": "me", "created_at": "2026-11-22T03:00:00+00:00", "keep_until": None}]}
    return [
        ev.TaskStarted("deploy", "prod", {"hosts": HOSTILE}, "me@laptop", "laptop", ("web1",)),
        ev.ReleaseChosen("2026-11-22_03.00.00", "c0ffee" * 6 + "abcd", HOSTILE),
        ev.Stage(f"deploying {HOSTILE}"),
        ev.StepStarted("web1", "build"),
        ev.StepFinished("web1", "build", ev.FAILED, note=HOSTILE, output=f"line 1\n{HOSTILE}"),
        ev.Note(HOSTILE, host="web1", level="warning"),
        ev.Note(HOSTILE),
        ev.ReleasesListed({"web1": listing}, drift=HOSTILE, unreachable={"web2": HOSTILE}),
        ev.PlanMade({"hostile": HOSTILE}),
        ev.TaskFinished(ev.FAILED, 1, HOSTILE),
    ]


def published(subscriber):
    stream = ev.Stream()
    stream.subscribe(subscriber)
    for event in hostile_task():
        stream.publish(event)


def assert_clean(text, tables=True):
    assert not any(char in text for char in CONTROLS), repr(text)
    assert "HIDDEN" in text
    assert "[bold red]markup[/] [link=http://evil]click[/link]" in text  # shown, not obeyed
    if tables:
        assert MARKUP_NAME in text and "[blink]good" in text and "[i]c0ffee" in text  # tables too


def test_live_view_shows_host_text_as_text():
    console = Console(file=io.StringIO(), record=True, width=400, force_terminal=True,
                      color_system="truecolor")
    published(LiveView(console, refresh_per_second=20))
    assert_clean(console.export_text())
    styled = console.export_text(styles=True)
    assert "http://evil" not in styled.replace("[link=http://evil]", "")  # no hyperlink made


def test_plain_lines_show_host_text_as_text():
    out = io.StringIO()
    published(PlainLines(plain_console(out, color=True)))
    text = out.getvalue()
    # The console's own colour codes are fine; nothing else may be a control character.
    assert_clean(re.sub(r"\x1b\[[0-9;]*m", "", text))
    assert "pwned" not in text and "2J" not in text.replace("8-bit CSI 2J", "")


def test_json_summary_values_are_clean():
    record = None

    def fold(event):
        nonlocal record
        record = TaskRecord(event) if isinstance(event, ev.TaskStarted) else record
        record.apply(event)

    published(fold)
    doc = document(record)
    assert_clean(json.dumps(doc, ensure_ascii=False))
    assert "\\u001b" not in json.dumps(doc)


def test_output_written_straight_to_the_terminal_is_clean():
    out = io.StringIO()
    lines = MaskedLines(out)
    lines.write(HOSTILE + "\nsecond \x1b[31mline")
    lines.flush()
    assert_clean(out.getvalue(), tables=False)


def test_history_json_values_are_clean():
    row = {"id": 1, "environment": "prod", "task": "deploy", "arguments": json.dumps({"a": HOSTILE}),
           "performer": HOSTILE, "controller": "laptop", "hosts": json.dumps(["web1"]),
           "started_at": 1.0, "finished_at": 2.0, "outcome": "failed", "exit_code": 1,
           "error": HOSTILE, "release": None, "commit": None, "ref": None, "previous_release": None,
           "log_lines": 0, "log_pruned_at": None, "seconds": 1.0}
    listed = json.loads(views.history_json([row], 3.0))
    assert_clean(json.dumps(listed, ensure_ascii=False), tables=False)
    assert listed[0]["error"] == shown(HOSTILE)


# --- on the real fleet ----------------------------------------------------------------

#: What a hostile commit, host or lock record may hold: sequences that set the window
#: title, clear the screen, rewrite a line, and markup rich would obey.
#: (A line rewritten by cursor moves, "\x1b[1A\x1b[2K", is how the live view redraws itself:
#: only plain output can show that none came from the host.)
SEQUENCES = ("\x1b]0;pwned\x07", "\x1b[2J", "\x9b2J", "\x07")
MARKUP = "[bold red]markup[/] [link=http://evil]click[/link]"
HOSTILE_TEXT = (f"evil {SEQUENCES[0]}title {SEQUENCES[1]}clear {SEQUENCES[2]}clear \x1b[1A\x1b[2Kup"
                f"\rover {MARKUP}")


def assert_nothing_hostile(result, live=False):
    """No hostile sequence in what `fab` printed (in plain output no ESC at all: the
    live view draws its table with cursor moves of its own); the markup shown as text."""
    printed = result.stdout + result.stderr
    assert "Traceback" not in printed
    for sequence in SEQUENCES:
        assert sequence not in printed, (sequence, printed)
    assert "pwned" not in printed and "\r" not in printed.replace("\r\n", "\n")
    if not live:
        assert "\x1b" not in printed and "\x9b" not in printed, printed
    return printed


def test_hostile_commit_lock_record_and_host_output_reach_no_terminal(deployed_env):
    env = deployed_env.env
    live = deployed_env.release
    env.commit("NEWS.txt", "hostile subject\n", f"subject {HOSTILE_TEXT}")

    # The commit's subject in a plan, in plain lines and in the live view.
    for mode in ("plain", "live"):
        planned = assert_ok(env.fab("deploy:plan=yes", environ={"FAB_OUTPUT": mode}))
        assert MARKUP in assert_nothing_hostile(planned, live=mode == "live")
    planned = assert_ok(env.fab("deploy:plan=yes,json=yes"))
    assert MARKUP in assert_nothing_hostile(planned)
    assert "\\u001b" not in planned.stdout and "\\u0007" not in planned.stdout

    # Host output: a management command's and supervisorctl's.
    echoed = assert_ok(env.fab("manage", "--command", f"echo {shlex.quote(HOSTILE_TEXT)}"))
    assert MARKUP in assert_nothing_hostile(echoed)
    status = env.fab("supervisorctl", "--command", f"status {shlex.quote(HOSTILE_TEXT)}")
    assert_nothing_hostile(status)

    # A lock held by a process whose owner record is hostile: the strict reader leaves
    # out the fields with control sequences (fab.host_values), and the refusal, `unlock`
    # and the history of the refused deploy show the rest as text, never as markup.
    record = json.dumps({"owner": f"mallory {MARKUP}", "machine": "m\x1b]0;pwned\x07",
                         "pid": 1, "task": "deploy\x1b[2J", "since": "now\x07"})
    # A process that holds the lock as lock.sh does, with that record (and its pid in it).
    hold = ('exec 9>>.deploy.lock; flock -n 9 || exit 1; '
            'printf "%s\\n" "${1%\\}}, \\"lock_pid\\": $$}" > .deploy.lock.owner; exec sleep 300')
    holder = env.remote("web1", f"cd ~/{env.code_root_rel} || exit 1; setsid bash -c {shlex.quote(hold)} holder "
                                f"{shlex.quote(record)} </dev/null >/dev/null 2>&1 & echo $!")
    try:
        env.remote("web1", f"for i in $(seq 50); do grep -q lock_pid ~/{env.code_root_rel}/.deploy.lock.owner "
                           f"2>/dev/null && exit 0; sleep 0.1; done; exit 1")
        refused = env.fab("deploy")
        assert refused.returncode != 0 and "is locked by mallory" in refused.stderr
        assert MARKUP in assert_nothing_hostile(refused)
        for view in ("history", "deploy_log"):
            assert "mallory" in assert_nothing_hostile(assert_ok(env.fab(view)))
        unlocked = assert_ok(env.fab("unlock"))
        assert "stopped the lock holder mallory" in assert_nothing_hostile(unlocked)
    finally:
        env.remote("web1", f"kill {int(holder)} 2>/dev/null; true", check=False)
    assert {env.current(host) for host in env.hosts} == {live}  # nothing changed anywhere
