"""Text the deployer shows but did not write itself, made safe for a terminal and a CI log.

Commit messages, host output, hook output, the lock owner record and the history
store's rows may hold terminal control sequences: colours, cursor moves, a
window title, a line rewritten by a carriage return, a hyperlink. Shown as they
are, they can hide or fake lines on the operator's screen and in CI logs.
`shown(text)` drops them; `shown_data(value)` does it to every string inside
dicts, lists and tuples (an event's fields, a plan). Newlines and tabs stay;
CRLF becomes a newline, and a lone carriage return (which rewrites the line it
is on) a newline too, so nothing written before it is hidden.

Rich markup (`[bold]`, `[link=...]`) is not text to clean but a way of reading
text: outputs never let rich parse markup in anything that holds such text
(plain lines turn markup off; the live view builds `rich.text.Text` objects).
"""
import re

# ESC-introduced sequences, whole: CSI (ESC [ ... final byte); OSC, DCS, SOS, PM and
# APC strings up to their terminator (BEL or ESC \), or to the end of the line if
# unterminated; any other ESC with its intermediate and final bytes.
_ESCAPE_SEQUENCES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]?"
    r"|\x1b[\]PX^_][^\n]*?(?:\x07|\x1b\\|(?=\n)|\Z)"
    r"|\x1b[ -/]*[0-~]?"
)
_LINE_REWRITES = re.compile(r"\r\n?")
# Every other C0 control but tab and newline, DEL, the C1 controls, and the Unicode
# bidirectional embeddings, overrides and isolates (they reorder what a line shows).
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def shown(text):
    """`text` without terminal control sequences (see the module doc)."""
    text = str(text)
    if not _CONTROLS.search(text):
        return text  # the usual case: nothing to do
    text = _ESCAPE_SEQUENCES.sub("", text)
    text = _LINE_REWRITES.sub("\n", text)
    return _CONTROLS.sub("", text)


def shown_data(value, text=shown):
    """`value` with `text` (default: `shown`) applied to every string in it, and dict
    keys cleaned by `shown`."""
    if isinstance(value, str):
        return text(value)
    if isinstance(value, dict):
        return {shown(key) if isinstance(key, str) else key: shown_data(item, text) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(shown_data(item, text) for item in value)
    return value
