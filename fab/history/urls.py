"""Where the history store is, and how its URL may be shown: never with a password.

Precedence (one place): FAB_HISTORY_URL, then the environment file's `history`
setting (`url`, or `url_env` naming a variable that holds the URL), then a
SQLite file per user ($XDG_DATA_HOME/fab-deploy/history.sqlite).
"""
import os
import re

from fab import secrets
from fab.history.errors import StoreMisconfigured

URL_VARIABLE = "FAB_HISTORY_URL"

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
    return _SECRET_PARAMETER.sub(lambda m: f"{m.group('keep')}{MASK}", secrets.mask(text))


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


def default_sqlite_path(environ=os.environ):
    home = environ.get("HOME") or os.path.expanduser("~")
    data_home = environ.get("XDG_DATA_HOME") or os.path.join(home, ".local", "share")
    return os.path.join(data_home, "fab-deploy", "history.sqlite")


def store_url(settings, environ=os.environ):
    """The URL of the store for an environment whose `history` setting is `settings`
    (its password registered as a secret: see register_password)."""
    url = _configured_url(settings, environ)
    register_password(url)
    return url


def _configured_url(settings, environ):
    override = environ.get(URL_VARIABLE)
    if override:
        return override
    if settings is not None and settings.url:
        return settings.url
    if settings is not None and settings.url_env:
        value = environ.get(settings.url_env)
        if not value:
            raise StoreMisconfigured(
                f"history store: history.url_env names {settings.url_env}, which is not set")
        return value
    return "sqlite:///" + default_sqlite_path(environ)
