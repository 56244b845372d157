"""Where the history store is, and how its URL may be shown: never with a password.

Precedence (one place): FAB_HISTORY_URL, then the environment file's `history`
setting (`url`, or `url_env` naming a variable that holds the URL), then a
SQLite file per user ($XDG_DATA_HOME/fab-deploy/history.sqlite).
"""
import os
import re

from fab.history.errors import StoreMisconfigured

URL_VARIABLE = "FAB_HISTORY_URL"

# user:password@ in any URL, and secret-looking query parameters (?password=..., &token=...).
_USERINFO_PASSWORD = re.compile(r"(?P<keep>\b[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s]*:)[^@/?#\s]*@")
_SECRET_PARAMETER = re.compile(
    r"(?P<keep>[?&](?:password|passwd|pwd|secret|token|access_token|api_key|apikey|sslpassword)=)[^&#\s]*",
    re.IGNORECASE,
)
MASK = "***"


def mask_secrets(text):
    """`text` with the password of every URL in it, and secret query values, replaced by ***."""
    if not text or "://" not in text and "=" not in text:
        return text
    text = _USERINFO_PASSWORD.sub(lambda m: f"{m.group('keep')}{MASK}@", text)
    return _SECRET_PARAMETER.sub(lambda m: f"{m.group('keep')}{MASK}", text)


def mask_url(url):
    """A URL as it may be printed, logged or stored."""
    return mask_secrets(url)


def default_sqlite_path(environ=os.environ):
    home = environ.get("HOME") or os.path.expanduser("~")
    data_home = environ.get("XDG_DATA_HOME") or os.path.join(home, ".local", "share")
    return os.path.join(data_home, "fab-deploy", "history.sqlite")


def store_url(settings, environ=os.environ):
    """The URL of the store for an environment whose `history` setting is `settings`."""
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
