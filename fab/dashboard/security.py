"""What keeps the dashboard safe: the bind rule, the token, the headers every answer carries,
and read-only methods. Plain functions and one ASGI middleware; no routes.

A dashboard bound to loopback is for the person on this machine. Bound anywhere else it
must be told who may read it: a token (FAB_DASHBOARD_TOKEN) the app checks itself, or
`proxy=yes`, a reverse proxy in front that authenticates (README: Dashboard).
"""
import hmac
import html
import ipaddress
import re
import urllib.parse
from http.cookies import SimpleCookie

from fab.errors import UsageError

TOKEN_VARIABLE = "FAB_DASHBOARD_TOKEN"
#: A shorter token could be guessed over the network.
TOKEN_MIN_LENGTH = 16
#: What a token may hold: it travels in a cookie, a header and a query string as is.
TOKEN_CHARACTERS = re.compile(r"[A-Za-z0-9._~+/=-]+")
COOKIE = "fab_dashboard_token"
COOKIE_DAYS = 30

SECURITY_HEADERS = (
    ("content-security-policy",
     "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
     "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
)
#: The only methods any route answers: the dashboard changes nothing.
READ_METHODS = ("GET", "HEAD")


def is_loopback(bind):
    """Whether the address `bind` is reachable from this machine only."""
    if bind == "localhost":
        return True
    try:
        return ipaddress.ip_address(bind.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def check_exposure(bind, token, behind_proxy):
    """Refuse (UsageError, one line) to serve beyond loopback with no one checking who
    reads, or with a token too short to keep a network out."""
    if token and (len(token) < TOKEN_MIN_LENGTH or not TOKEN_CHARACTERS.fullmatch(token)):
        raise UsageError(f"dashboard: {TOKEN_VARIABLE} must be at least {TOKEN_MIN_LENGTH} characters of "
                         "letters, digits and ._~+/=- (e.g. `openssl rand -hex 32`)")
    if not is_loopback(bind) and not token and not behind_proxy:
        raise UsageError(f"dashboard: bind={bind} is reachable from other machines: set {TOKEN_VARIABLE} "
                         "(a long random token), or give proxy=yes (--proxy) behind a reverse proxy "
                         "that authenticates (see README: Dashboard)")


def host_is_loopback(host_header):
    """Whether a Host header names this machine by a loopback name or address (a page of
    another site whose name was made to resolve to 127.0.0.1, DNS rebinding, names its own)."""
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1:host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    return bool(host) and is_loopback(host)


def token_matches(given, token):
    """Constant-time comparison (no early exit an attacker could time)."""
    return bool(given) and hmac.compare_digest(given.encode(), token.encode())


def _header(scope, name):
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return ""


def _cookie(scope, name):
    cookie = SimpleCookie()
    try:
        cookie.load(_header(scope, b"cookie"))
    except Exception:  # a malformed Cookie header is no token
        return ""
    morsel = cookie.get(name)
    return morsel.value if morsel else ""


def _bearer(scope):
    scheme, _, value = _header(scope, b"authorization").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def over_https(scope, behind_proxy):
    """Whether the browser reached us over https: our own scheme, or the proxy's word
    (X-Forwarded-Proto) when, and only when, a proxy is declared."""
    if scope.get("scheme") == "https":
        return True
    return behind_proxy and _header(scope, b"x-forwarded-proto").split(",")[0].strip() == "https"


def _query_without_token(query):
    pairs = [(k, v) for k, v in urllib.parse.parse_qsl(query, keep_blank_values=True) if k != "token"]
    return urllib.parse.urlencode(pairs)


class Guard:
    """ASGI middleware in front of every route: the security headers on every answer
    (pages, JSON, the log stream, static files, errors), only GET/HEAD; with
    `local_only`, only requests that name this machine by a loopback Host; with a
    token, nothing without it (cookie, `Authorization: Bearer`, or `?token=` once,
    which sets the cookie and redirects to the same address without it)."""

    def __init__(self, app, token=None, behind_proxy=False, local_only=False):
        self.app = app
        self.token = token
        self.behind_proxy = behind_proxy
        self.local_only = local_only

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                names = {key.lower() for key, _ in message.get("headers", ())}
                extra = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS if k.encode() not in names]
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        if self.local_only and not host_is_loopback(_header(scope, b"host")):
            return await _plain(send_with_headers, 421, "421 Misdirected Request: this dashboard answers "
                                "only to its loopback address")
        if scope["method"] not in READ_METHODS:
            return await _plain(send_with_headers, 405, "405 Method Not Allowed: the dashboard is read-only",
                                [(b"allow", b"GET, HEAD")])
        if self.token:
            query = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
            offered = query.get("token", [""])[0]
            if offered:
                if not token_matches(offered, self.token):
                    return await _plain(send_with_headers, 401, "401 Unauthorized: wrong token")
                return await self._remember(scope, send_with_headers)
            if not (token_matches(_cookie(scope, COOKIE), self.token) or token_matches(_bearer(scope), self.token)):
                return await _plain(send_with_headers, 401, "401 Unauthorized: give the dashboard's token "
                                    "(?token=... once, or Authorization: Bearer ...)")
        await self.app(scope, receive, send_with_headers)

    async def _remember(self, scope, send):
        """Set the cookie and send the browser on to the same address without the token
        (so it is neither bookmarked nor kept in the history). By a page that refreshes
        itself, not a 303: a link followed from another site (a chat) is a cross-site
        navigation, and a browser would not send a SameSite=Strict cookie along its
        redirects; the page's own refresh is same-site."""
        rest = _query_without_token(scope.get("query_string", b"").decode("latin-1"))
        path = scope.get("raw_path") or urllib.parse.quote(scope["path"]).encode()  # as the browser sent it
        address = html.escape(path.decode("latin-1") + (f"?{rest}" if rest else ""))
        cookie = (f"{COOKIE}={self.token}; Path=/; Max-Age={COOKIE_DAYS * 86400}; HttpOnly; SameSite=Strict"
                  + ("; Secure" if over_https(scope, self.behind_proxy) else ""))
        page = (f'<!doctype html><meta http-equiv="refresh" content="0; url={address}">'
                f'<a href="{address}">Continue</a>\n')
        await _plain(send, 200, page, [(b"set-cookie", cookie.encode("latin-1"))], media_type=b"text/html")


async def _plain(send, status, line, headers=(), media_type=b"text/plain"):
    body = (line.rstrip("\n") + "\n").encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", media_type + b"; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()),
                            (b"cache-control", b"no-store"), *headers]})
    await send({"type": "http.response.body", "body": body})
