"""Keeping secrets out of output: credentials in URLs, and values registered as secret.

`mask(text)` is applied by every output (the plain lines, the one-line errors):
any `scheme://user:password@` shows as `scheme://user:***@`, a bare token in an
http(s) URL (`https://TOKEN@host`) as `https://***@host`, and every value given
to `register` as `***`. A bare user name in ssh://, postgresql://, ... URLs
(`ssh://git@host`) is a login, not a secret, and is kept.
"""
import re
import threading

MASK = "***"

#: Values shorter than this are not masked: they would hide ordinary words, and a
#: secret that short protects nothing anyway.
MIN_SECRET_LENGTH = 4

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
    appear, not only inside that URL.
    """
    value = str(value)
    with _registered_lock:
        for secret in [value, *credentials_in(value)]:
            if len(secret) >= MIN_SECRET_LENGTH:
                _registered.add(secret)


def register_credentials_in(values):
    """Register the credentials of every URL in `values` (e.g. pip arguments)."""
    for value in values:
        for secret in credentials_in(str(value)):
            register(secret)


def mask(text):
    """`text` with every credential URL and every registered value masked."""
    text = mask_url(str(text))
    with _registered_lock:
        secrets = sorted(_registered, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


_ENV_LINE = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$")


def parse_env_file(text):
    """{name: value} from a secrets file: KEY=value lines; blank lines and `#`
    comments skipped; an optional `export `; a value in matching single or double
    quotes loses them (nothing else is interpreted). ValueError names the line."""
    values = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _ENV_LINE.match(stripped)
        if not match:
            raise ValueError(f"line {number}: expected KEY=value")
        name, value = match.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name] = value
    return values


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
            self.target.write(_safe_to_show(line) + "\n")
        self.target.flush()
        return len(text)

    def flush(self):
        """Write out a last line without its newline (the command ended)."""
        if self._pending:
            self.target.write(_safe_to_show(self._pending))
            self._pending = ""
        self.target.flush()


def _safe_to_show(text):
    from fab.shown import safe_to_show  # fab.shown imports this module

    return safe_to_show(text)
