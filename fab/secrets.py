"""Keeping secrets out of output: credentials in URLs, and values registered as secret.

`mask(text)` is the one masking place: events are masked as they are published
(so the plain lines, the live view, the JSON summary and the history store see
them masked), and whatever is printed outside the event stream (streamed
`manage` output, `supervisorctl`, `history`, `deploy_log`, the one-line errors)
goes through it too. Any `scheme://user:password@` shows as
`scheme://user:***@`, a bare token in an http(s) URL (`https://TOKEN@host`) as
`https://***@host`, and every value given to `register` as `***`: also each
line of a multi-line value (output is shown line by line) and the forms a value
takes when printed quoted (JSON, shell, Python repr, URL-encoded). A bare user
name in ssh://, postgresql://, ... URLs (`ssh://git@host`) is a login, not a
secret, and is kept.
"""
import functools
import json
import re
import shlex
import threading
import urllib.parse

from fab.shown import shown

MASK = "***"

#: A secret shorter than this cannot be masked safely (masking it would hide
#: ordinary words, not masking it prints it): `register` refuses it.
MIN_SECRET_LENGTH = 4


class SecretTooShort(ValueError):
    """A secret too short to mask safely (the message never shows it)."""

# scheme://userinfo@ where userinfo has no whitespace, "/" or "@" (RFC 3986 allows
# neither "/" nor an unescaped "@" there).
_CREDENTIALS = re.compile(
    r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^\s/@:'\"]*)(?::(?P<password>[^\s/@'\"]*))?@"
)
_TOKEN_SCHEMES = ("http", "https")

_registered = set()
_registered_lock = threading.Lock()


def _is_token_scheme(scheme):
    """http, https and their git+/hg+ forms, where a bare user part is usually a token."""
    return scheme.rstrip(":/").lower().rsplit("+", 1)[-1] in _TOKEN_SCHEMES


def _masked_credentials(match):
    scheme, user, password = match.group("scheme", "user", "password")
    if password is not None:
        return f"{scheme}{user}:{MASK}@"
    if user and _is_token_scheme(scheme):
        return f"{scheme}{MASK}@"
    return match.group(0)


def mask_url(url):
    """`url` with its password (or http(s) token) replaced by ***."""
    return _CREDENTIALS.sub(_masked_credentials, url)


def credentials_in(text):
    """The secret parts (passwords, http(s) tokens) of the URLs in `text`."""
    found = []
    for match in _CREDENTIALS.finditer(text):
        scheme, user, password = match.group("scheme", "user", "password")
        if password is not None:
            if password:
                found.append(password)
        elif user and _is_token_scheme(scheme):
            found.append(user)
    return found


def register(value):
    """Mask `value` in all output from now on (e.g. a service's secret environment value).

    A URL's own credentials are registered too, so they are masked wherever they
    appear, not only inside that URL. An empty value hides nothing and is skipped;
    SecretTooShort if a part of it that output could show on its own (the value,
    each credential) has no line of MIN_SECRET_LENGTH characters.
    """
    value = str(value)
    forms = set()
    for secret in [value, *credentials_in(value)]:
        forms |= _shown_forms(secret)
    for credential in credentials_in(value):
        forms |= _shown_forms(urllib.parse.unquote(credential))  # as a driver or git prints it
    with _registered_lock:
        _registered.update(forms)


def register_credentials_in(values):
    """Register the credentials of every URL in `values` (e.g. pip arguments)."""
    for value in values:
        for secret in credentials_in(str(value)):
            register(secret)


def _shown_forms(secret):
    """The strings under which `secret` may appear in output: itself, each of its
    lines long enough to mask (output is masked line by line), and its quoted forms."""
    if not secret:
        return set()
    # A line's indentation is not secret (and masking it would hide every indented line).
    lines = [line.strip() for line in secret.split("\n")]
    if max(len(line) for line in lines) < MIN_SECRET_LENGTH:
        raise SecretTooShort(f"shorter than {MIN_SECRET_LENGTH} characters: too short to mask safely")
    forms = {secret, *(line for line in lines if len(line) >= MIN_SECRET_LENGTH)}
    forms |= {json.dumps(secret)[1:-1], repr(secret)[1:-1], shlex.quote(secret),
              urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret, safe="")}
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


def safe_to_show(text):
    """`text` as any output may show it: without control sequences (fab.shown), secrets
    masked. Cleaned first, so a secret a colour code splits is whole again when masked."""
    return mask(shown(text))


def mask(text):
    """`text` with every credential URL and every registered value masked."""
    text = str(text)
    secrets = _longest_first()
    if len(text) <= _REMEMBERED_LONGEST:
        return _masked_short(text, secrets)
    return _masked(text, secrets)


#: (the registered set, its size, its values longest first) as last sorted.
_sorted = (None, 0, ())


def _longest_first():
    """The registered values, longest first (so a value inside another is masked after
    it), sorted again only when the set changed: values are only ever added."""
    global _sorted
    registered, size, values = _sorted
    if registered is _registered and size == len(registered):
        return values
    with _registered_lock:
        _sorted = (_registered, len(_registered), tuple(sorted(_registered, key=len, reverse=True)))
        return _sorted[2]


#: Texts this short are masked once per set of secrets: a deploy shows the same host
#: names, step names and notes again and again (26 events per host, each masked).
_REMEMBERED_LONGEST = 256


@functools.lru_cache(maxsize=4096)
def _masked_short(text, secrets):
    return _masked(text, secrets)


def _masked(text, secrets):
    """`text` with its credential URLs and the values `secrets` (longest first) masked."""
    if "://" in text:  # no credential URL without it
        text = mask_url(text)
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


_ENV_LINE = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$")
_AFTER_QUOTE = re.compile(r"^\s*(?:#.*)?$")


def parse_env_file(text):
    """{name: value} from a secrets file: KEY=value lines; blank lines and `#`
    comments skipped; an optional `export `. A value in single or double quotes
    loses them, may span lines and may be followed by a `# comment`; inside double
    quotes `\\"` and `\\\\` stand for `"` and `\\` (nothing else is interpreted). An
    unquoted value is taken as it is. ValueError names the line."""
    values = {}
    lines = text.splitlines()
    number = 0
    while number < len(lines):
        number += 1
        stripped = lines[number - 1].strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _ENV_LINE.match(stripped)
        if not match:
            raise ValueError(f"line {number}: expected KEY=value")
        name, value = match.groups()
        if value[:1] in ("'", '"'):
            first = number
            rest = lines[number - 1].split("=", 1)[1].lstrip()
            while True:
                closed = _quoted(rest)
                if closed is not None or number == len(lines):
                    break
                number += 1
                rest += "\n" + lines[number - 1]
            if closed is None:
                raise ValueError(f"line {first}: {name}: the quote is never closed")
            value, after = closed
            if not _AFTER_QUOTE.match(after):
                raise ValueError(f"line {number}: {name}: unexpected text after the closing quote")
        values[name] = value
    return values


def _quoted(text):
    """(value, what follows) of `text` that starts with a quote, or None if the
    quote does not close in it."""
    quote, index, value = text[0], 1, []
    while index < len(text):
        char = text[index]
        if char == quote:
            return "".join(value), text[index + 1:]
        if quote == '"' and char == "\\" and text[index + 1:index + 2] in ('"', "\\"):
            index += 1
            char = text[index]
        value.append(char)
        index += 1
    return None


class MaskedLines:
    """A text stream that writes whole lines to `target`, each masked and without control
    sequences (`fab.shown`): for output that goes straight to the terminal (a management
    command's), not via the event stream."""

    def __init__(self, target):
        self.target = target
        self._pending = ""

    def write(self, text):
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            self.target.write(safe_to_show(line) + "\n")
        self.target.flush()
        return len(text)

    def flush(self):
        """Write out a last line without its newline (the command ended)."""
        if self._pending:
            self.target.write(safe_to_show(self._pending))
            self._pending = ""
        self.target.flush()
