"""The one strict reader of values a host reports back (release metadata, its state
lines, the lock owner record).

A host is trusted with nothing beyond itself (README › Trust model): anything it
reports is data, checked here before any other module uses it. Each checker
returns the value, typed, or raises `Unreadable` with one line saying why; a
value that passes can go into a command line, a path or a decision as it is
(a release name cannot climb out of `releases/`, a commit cannot be read as a
git option, a time always compares).
"""
import base64
import binascii
import datetime as dt
import json
import re

#: A release directory's name; `fab.releases.new_release_name` makes exactly these.
RELEASE_NAME = re.compile(r"\d{4}-\d{2}-\d{2}_\d{2}\.\d{2}\.\d{2}(-\d{1,6})?")
_COMMIT = re.compile(r"[0-9a-f]{40}")
_HEX = re.compile(r"[0-9a-f]{1,64}")
#: A step marker's file name (fab.steps names steps with these).
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
#: Control characters (C0, DEL, C1): no value the deployer writes has them.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

#: Longest free text kept from a host (a branch, a user, a machine name, a hotfix line).
TEXT_LIMIT = 512


class Unreadable(ValueError):
    """A value from a host that fails its check; the message is one line saying why."""


def quoted(value, limit=40):
    """`value` as an error line quotes it: its repr, cut at `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _matches(pattern, value):
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def release_name(value):
    if not _matches(RELEASE_NAME, value):
        raise Unreadable(f"{quoted(value)} is not a release name")
    return value


def commit(value):
    if not _matches(_COMMIT, value):
        raise Unreadable(f"commit {quoted(value)} is not 40 hex digits")
    return value


def hex_digest(value, what):
    """A venv key or a config digest: lowercase hex, at most 64 digits."""
    if not _matches(_HEX, value):
        raise Unreadable(f"{what} {quoted(value)} is not hex")
    return value


def one_of(value, known, what):
    if not isinstance(value, str) or value not in known:
        raise Unreadable(f"{what} {quoted(value)} is not one of {', '.join(known)}")
    return value


def moment(value, what):
    """An ISO 8601 time with its offset (as `datetime.isoformat` writes it), kept as text."""
    try:
        parsed = dt.datetime.fromisoformat(value) if isinstance(value, str) and len(value) <= 64 else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise Unreadable(f"{what} {quoted(value)} is not a time with its UTC offset")
    return value


def integer(value, low, high, what):
    # bool is an int in Python; a host writing `true` for a port wrote no port.
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise Unreadable(f"{what} {quoted(value)} is not a whole number in {low}..{high}")
    return value


def port(value):
    return integer(value, 1, 65535, "port")


def text(value, what, limit=TEXT_LIMIT):
    """Free text: a string of at most `limit` characters, none of them a control character."""
    if not isinstance(value, str) or len(value) > limit or _CONTROL.search(value):
        raise Unreadable(f"{what} {quoted(value)} is not a line of at most {limit} characters")
    return value


def flag(value, what):
    if not isinstance(value, bool):
        raise Unreadable(f"{what} {quoted(value)} is not true or false")
    return value


def word(value, what):
    """A short name made of letters, digits, `_.-` (a step marker)."""
    if not _matches(_WORD, value):
        raise Unreadable(f"{what} {quoted(value)} is not a name")
    return value


def absolute_path(value, what):
    if not isinstance(value, str) or not value.startswith("/") or len(value) > 4096 or _CONTROL.search(value):
        raise Unreadable(f"{what} {quoted(value)} is not an absolute path")
    return value


def listed(value, what, limit=1000):
    if not isinstance(value, list) or len(value) > limit:
        raise Unreadable(f"{what} is not a list of at most {limit} entries")
    return value


def encoded_record(encoded, fields, limit):
    """A JSON object a host reported in base64 (the lock's owner, a freeze), read up to
    `limit` bytes: only its `fields` ({name: checker}) that pass, a field that fails left
    out; Unreadable if it is no such object at all."""
    try:
        data = json.loads(base64.b64decode(encoded[:limit * 2], validate=True)[:limit].decode())
    except (ValueError, binascii.Error, RecursionError):
        raise Unreadable("not a base64 JSON record") from None
    if not isinstance(data, dict):
        raise Unreadable("not a JSON object")
    kept = {}
    for name, check in fields.items():
        try:
            kept[name] = check(data[name])
        except (KeyError, Unreadable):
            pass
    return kept
