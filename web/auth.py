"""Who may use the web: credentials, the rule for starting open, and cross-site posts.

Starting open is allowed only in development on a loopback address; anywhere else a
photo service with no password would classify (and store) anyone's uploads.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from signdigits.config.network import is_loopback
from signdigits.config.settings import Settings, is_placeholder
from signdigits.web.throttle import LoginThrottle

CSRF_COOKIE = "signdigits_csrf"
CSRF_HEADER = "x-csrf-token"
_UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
USER_STATE = "signdigits_user"
ANONYMOUS = "anonymous"  # the web runs open: development, loopback, no credentials
TOKEN_USER = "token"  # SIGNDIGITS_WEB_TOKEN names nobody
METRICS_USER = "metrics"  # SIGNDIGITS_METRICS_TOKEN: GET /metrics only


class StartRefused(RuntimeError):
    """`serve` must not start with this configuration; the message says why."""


def check_can_start(settings: Settings, *, host: str) -> None:
    """Raise :class:`StartRefused` unless credentials are set, or this may run open."""
    if settings.web_auth is not None:
        user, colon, _ = settings.web_auth.get_secret_value().partition(":")
        if not colon or not user:
            raise StartRefused("SIGNDIGITS_WEB_AUTH must be user:password")
        if is_placeholder(settings.web_auth):
            raise StartRefused("SIGNDIGITS_WEB_AUTH holds a placeholder password (refused)")
    if settings.web_token is not None and (
        is_placeholder(settings.web_token, pair=False)
        or len(settings.web_token.get_secret_value()) < 16
    ):
        raise StartRefused("SIGNDIGITS_WEB_TOKEN is a placeholder or shorter than 16 characters")
    if settings.metrics_token is not None and (
        is_placeholder(settings.metrics_token, pair=False)
        or len(settings.metrics_token.get_secret_value()) < 16
    ):
        raise StartRefused("SIGNDIGITS_METRICS_TOKEN is a placeholder or shorter than 16 "
                           "characters")
    if settings.web_auth or settings.web_token:
        return
    if settings.environment != "development":
        raise StartRefused(
            "set SIGNDIGITS_WEB_AUTH=user:password (or SIGNDIGITS_WEB_TOKEN): the web "
            f"starts without credentials only in development (environment is "
            f"{settings.environment!r})")
    if not is_loopback(host):
        raise StartRefused(
            f"set SIGNDIGITS_WEB_AUTH=user:password to listen on {host}: without "
            "credentials the web listens only on a loopback address")


class Guard:
    """ASGI middleware: credentials on every request (when set), CSRF on unsafe ones.

    A browser sends a cross-site POST (a form on another site) with the user's cached
    Basic credentials; the cookie it cannot read is what tells ours apart, and its
    ``Origin`` (or ``Referer``) must name this server. A request with no ``Origin``, no
    ``Referer``, no ``Sec-Fetch-Site`` and no cookie is no browser's (curl, a program): it
    needs no token, as it carries no ambient credentials to abuse.
    """

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.basic: bytes | None = None
        self.basic_user = ""
        if settings.web_auth:
            self.basic = settings.web_auth.get_secret_value().encode()
            self.basic_user = self.basic.decode().partition(":")[0]
        self.token = settings.web_token.get_secret_value().encode() if settings.web_token \
            else None
        # A scraper's own token: it opens GET /metrics and nothing else.
        self.metrics_token = settings.metrics_token.get_secret_value().encode() \
            if settings.metrics_token else None
        self.throttle = LoginThrottle()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if request.url.path == "/healthz":  # the container's health check: says nothing
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(request)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _refusal(self, request: Request) -> JSONResponse | None:
        """The answer that stops this request here, or None: it goes on (its user set)."""
        client = request.client.host if request.client else "unknown"
        offered = "authorization" in request.headers
        wait = self.throttle.retry_after(client, time.monotonic()) if offered else 0
        if wait:
            return JSONResponse(
                {"detail": f"too many failed logins from {client}; try again in {wait} s"},
                status_code=429, headers={"Retry-After": str(wait)})
        user = self._user(request)
        if user is None:
            if offered:
                self.throttle.failed(client, time.monotonic())
            return JSONResponse({"detail": "authentication required"}, status_code=401,
                                headers={"WWW-Authenticate": 'Basic realm="signdigits"'})
        if request.method in _UNSAFE and not _same_site(request):
            return JSONResponse(
                {"detail": "cross-site request refused (missing or wrong CSRF token, or an "
                 "Origin that is not this server)"}, status_code=403)
        request.scope.setdefault("state", {})[USER_STATE] = user
        return None

    def _user(self, request: Request) -> str | None:
        """Who sent the request (what a review records), or None: not authorised.

        The Basic user's name; ``token`` for the bearer token; ``anonymous`` when the web
        runs open (development on loopback, no credentials configured). The scheme's
        case does not matter (RFC 9110): ``basic`` is ``Basic``."""
        if self.basic is None and self.token is None:
            return ANONYMOUS
        scheme, _, given = request.headers.get("authorization", "").strip().partition(" ")
        scheme, given = scheme.lower(), given.strip()
        if (scheme == "bearer" and self.metrics_token is not None
                and request.url.path == "/metrics" and request.method in ("GET", "HEAD")
                and secrets.compare_digest(given.encode(), self.metrics_token)):
            return METRICS_USER
        if scheme == "basic" and self.basic is not None:
            try:
                decoded = base64.b64decode(given, validate=True)
            except (binascii.Error, ValueError):
                return None
            if secrets.compare_digest(decoded, self.basic):
                return self.basic_user
        if scheme == "bearer" and self.token is not None and secrets.compare_digest(
                given.encode(), self.token):
            return TOKEN_USER
        return None


def request_user(request: Request) -> str:
    """The authenticated user of a request that passed :class:`Guard`."""
    return request.scope.get("state", {}).get(USER_STATE) or ANONYMOUS


def _same_site(request: Request) -> bool:
    """A post from our own page (its token matches our cookie, its Origin is this server),
    or from no browser at all."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if source is not None and not _names_host(source, request.headers.get("host", "")):
        return False  # another site's page, or ours reached by a name rebound to us
    cookie = request.cookies.get(CSRF_COOKIE)
    token = request.headers.get(CSRF_HEADER)
    if cookie and token:
        return secrets.compare_digest(cookie.encode(), token.encode())
    browser = source or request.headers.get("sec-fetch-site") or request.cookies
    return not browser


def _names_host(source: str, host: str) -> bool:
    """Whether an Origin or Referer URL is on the server the Host header names (default
    ports filled in: ``https://x`` is ``x:443``). ``Origin: null`` never is."""
    try:
        origin, server = urlsplit(source), urlsplit(f"//{host}")
        default = {"http": 80, "https": 443}.get(origin.scheme)
        return default is not None and origin.hostname is not None and (
            (origin.hostname, origin.port or default) == (server.hostname, server.port or default))
    except ValueError:  # a port that is not a number
        return False


def new_csrf_token() -> str:
    return secrets.token_urlsafe(24)
