"""Which names the web answers to: its own address, loopback names, configured ones.

A page on ``evil.example`` whose name is rebound to 127.0.0.1 (DNS rebinding) reaches the
server as the same origin as itself, past every cross-site rule: only the ``Host`` header
it sends still says ``evil.example``. Starlette's ``TrustedHostMiddleware`` refuses it
(400, one line) before any page, token or file is served.
"""

from __future__ import annotations

import ipaddress

from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from signdigits.config.network import is_loopback

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
WILDCARD_ADDRESSES = ("", "0.0.0.0", "::")


def allowed_hosts(bound: str, configured: list[str]) -> list[str]:
    """The Host names (no port) a server listening on ``bound`` answers to.

    Bound to every address (``0.0.0.0``), a server needs credentials (`serve` refuses to
    start open there), which a rebound name never carries; it answers to any name then,
    unless ``SIGNDIGITS_WEB_HOSTS`` lists them (and loopback names stay for the health
    check and a tunnel).
    """
    if bound in WILDCARD_ADDRESSES:
        return [*LOOPBACK_NAMES, *configured] if configured else ["*"]
    own = _as_host_header(bound)
    names = [*LOOPBACK_NAMES, own] if is_loopback(bound) else [own]
    return list(dict.fromkeys([*names, *configured]))


def _as_host_header(address: str) -> str:
    """An address as a Host header carries it: IPv6 in brackets, names in lower case."""
    try:
        if ipaddress.ip_address(address.strip("[]")).version == 6:
            return f"[{address.strip('[]')}]"
    except ValueError:
        pass
    return address.lower()


class HostCheck:
    """ASGI middleware: TrustedHostMiddleware on every path but ``/healthz``, which says
    nothing and is probed by addresses no one configures (a container's own IP)."""

    def __init__(self, app: ASGIApp, *, hosts: list[str]) -> None:
        self.app = app
        self.checked = TrustedHostMiddleware(app, allowed_hosts=hosts, www_redirect=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/healthz":
            await self.app(scope, receive, send)
        else:
            await self.checked(scope, receive, send)
