"""Where the history store is, and how its URL may be shown: never with a password.

Which URL wins (FAB_HISTORY_URL, the environment file's `history`, a SQLite file
per user) is fab.precedence.history_url.
"""
import os
import re

from fab import precedence, secrets
from fab.history.errors import StoreMisconfigured

# Secret-looking query parameters (?password=..., &token=...).
_SECRET_PARAMETER = re.compile(
    r"(?P<keep>[?&](?:password|passwd|pwd|secret|token|access_token|api_key|apikey|sslpassword)=)[^&#\s]*",
    re.IGNORECASE,
)
MASK = secrets.MASK


def mask_secrets(text):
    """`text` masked as all output is (fab.secrets.mask: URL credentials, registered
    values, the store's own password once its URL was read), and secret query values."""
    if not text:
        return text
    text = secrets.mask(text)
    if "=" not in text:  # no query value without it
        return text
    return _SECRET_PARAMETER.sub(lambda m: f"{m.group('keep')}{MASK}", text)


def mask_url(url):
    """A store URL as it may be printed, logged or stored: its password hidden by the
    parser the store connects with (a password may hold "/" or a space), its secret
    query values masked."""
    password = _password(url)
    shown = _parsed(url).render_as_string(hide_password=True) if password else url
    return mask_secrets(shown)


def _parsed(url):
    from sqlalchemy.engine import make_url  # SQLAlchemy loads only when the store is used

    return make_url(url)


def _password(url):
    """The URL's password as the store's driver gets it (None: none, or not a URL)."""
    from sqlalchemy.exc import ArgumentError

    try:
        return _parsed(url).password
    except (ArgumentError, ValueError, TypeError):
        return None  # not a URL the store could open: masked as text, open_store says why


def register_password(url):
    """Mask the store URL's password everywhere from now on (a driver's error may show
    it on its own). StoreMisconfigured if it is too short to mask safely."""
    try:
        secrets.register(_password(url) or "")
    except secrets.SecretTooShort as error:
        raise StoreMisconfigured(f"history store {mask_url(url)}: its password is {error}") from None


def store_url(settings, environ=os.environ):
    """The URL of the store for an environment whose `history` setting is `settings`
    (which setting wins: fab.precedence.history_url), its password registered as a
    secret (see register_password)."""
    try:
        url = precedence.history_url(settings, environ)
    except precedence.HistoryUrlVariableUnset as error:
        raise StoreMisconfigured(f"history store: {error}") from None
    register_password(url)
    return url
