"""Text from hosts, commits and the history store reaches terminals and CI logs without
terminal control sequences, and is never read as rich markup (`fab.shown`)."""
import io
import json
import re

import pytest
from rich.console import Console

from fab import events as ev
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
