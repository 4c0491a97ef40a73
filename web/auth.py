"""Who may use the web: credentials, the rule for starting open, and cross-site posts.

Starting open is allowed only in development on a loopback address; anywhere else a
photo service with no password would classify (and store) anyone's uploads.
"""

from __future__ import annotations

import base64
import secrets

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from signdigits.config.network import is_loopback
from signdigits.config.settings import Settings, is_placeholder

CSRF_COOKIE = "signdigits_csrf"
CSRF_HEADER = "x-csrf-token"
_UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
USER_STATE = "signdigits_user"
ANONYMOUS = "anonymous"  # the web runs open: development, loopback, no credentials
TOKEN_USER = "token"  # SIGNDIGITS_WEB_TOKEN names nobody


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
    Basic credentials; the cookie it cannot read is what tells ours apart. A request
    with no ``Origin``, no ``Sec-Fetch-Site`` and no cookie is no browser's (curl, a
    program): it needs no token, as it carries no ambient credentials to abuse.
    """

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.basic = None
        self.basic_user = ""
        if settings.web_auth:
            credentials = settings.web_auth.get_secret_value()
            self.basic_user = credentials.partition(":")[0]
            self.basic = "Basic " + base64.b64encode(credentials.encode()).decode()
        self.bearer = (f"Bearer {settings.web_token.get_secret_value()}" if settings.web_token
                       else None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if request.url.path == "/healthz":  # the container's health check: says nothing
            await self.app(scope, receive, send)
            return
        user = self._user(request)
        if user is None:
            response = JSONResponse({"detail": "authentication required"}, status_code=401,
                                    headers={"WWW-Authenticate": 'Basic realm="signdigits"'})
            await response(scope, receive, send)
            return
        if request.method in _UNSAFE and not _same_site(request):
            response = JSONResponse(
                {"detail": "cross-site request refused (missing or wrong CSRF token)"},
                status_code=403)
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})[USER_STATE] = user
        await self.app(scope, receive, send)

    def _user(self, request: Request) -> str | None:
        """Who sent the request (what a review records), or None: not authorised.

        The Basic user's name; ``token`` for the bearer token; ``anonymous`` when the web
        runs open (development on loopback, no credentials configured)."""
        if self.basic is None and self.bearer is None:
            return ANONYMOUS
        given = request.headers.get("authorization", "").encode()
        if self.basic is not None and secrets.compare_digest(given, self.basic.encode()):
            return self.basic_user
        if self.bearer is not None and secrets.compare_digest(given, self.bearer.encode()):
            return TOKEN_USER
        return None


def request_user(request: Request) -> str:
    """The authenticated user of a request that passed :class:`Guard`."""
    return request.scope.get("state", {}).get(USER_STATE) or ANONYMOUS


def _same_site(request: Request) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE)
    token = request.headers.get(CSRF_HEADER)
    if cookie and token:
        return secrets.compare_digest(cookie.encode(), token.encode())
    browser = (request.headers.get("origin") or request.headers.get("sec-fetch-site")
               or request.cookies)
    return not browser


def new_csrf_token() -> str:
    return secrets.token_urlsafe(24)
