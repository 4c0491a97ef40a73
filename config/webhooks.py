"""The rules of a job's webhook that need no server: which URLs may be called, the
signing key, and the signature (the Standard Webhooks specification, v1).

Signing is the standard library's HMAC-SHA256, not the ``standardwebhooks`` package:
the scheme is one HMAC over ``id.timestamp.body`` (a dozen lines here, checked against
the specification's own example in tests/unit/test_webhook_rules.py), while that
package brings an HTTP API client with it (httpx, attrs, python-dateutil, Deprecated)
that nothing here would use.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import re
import socket
from urllib.parse import urlsplit

SECRET_PREFIX = "whsec_"
MIN_KEY_BYTES = 24  # the specification's lower bound for a secret
# Cloud metadata services that are not link-local (AWS's IPv6 one); 169.254.169.254 is.
_METADATA = {ipaddress.ip_address("fd00:ec2::254")}

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class WebhookRefused(ValueError):
    """A webhook URL the server will not call; ``str`` is one line saying why."""


def signing_key(secret: str) -> bytes:
    """The HMAC key of a secret given as ``whsec_<base64>`` (the specification's form) or
    bare base64; ValueError (one line) if it is neither or shorter than 24 bytes."""
    encoded = secret.strip().removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("expected whsec_ followed by base64 (as the Standard Webhooks "
                         "specification writes secrets), e.g. whsec_$(openssl rand -base64 32)"
                         ) from None
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"the secret decodes to {len(key)} bytes; at least {MIN_KEY_BYTES} "
                         "are needed (openssl rand -base64 32)")
    return key


def signature(key: bytes, *, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header's value: ``v1,<base64 HMAC-SHA256 of
    "id.timestamp.body">``."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


_UNSENDABLE = re.compile(r"[\x00-\x20\x7f\ud800-\udfff]")


def check_webhook_url(url: str, *, allowed_hosts: list[str], production: bool,
                      resolve: bool = True) -> list[Address]:
    """The addresses ``url``'s host resolves to, all of which the server may call;
    :class:`WebhookRefused` naming the reason otherwise.

    Only http(s). With ``SIGNDIGITS_WEBHOOK_ALLOWED_HOSTS`` set, the host must be one of
    them. Never a link-local or metadata address (a cloud's credentials live there); in
    production, no private, loopback or other non-public address unless the host is
    listed. Resolved here and checked on every address, and the caller connects to one of
    these very addresses (a name that resolves differently the second time gains nothing).
    """
    if _UNSENDABLE.search(url):
        # http.client refuses these at every attempt (InvalidURL), and a lone surrogate
        # cannot even be stored: refused here, once, before anything is recorded.
        raise WebhookRefused(f"webhook {shown_url(url)!r}: a URL cannot hold spaces, control "
                             "characters or unpaired surrogates (percent-encode them)")
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise WebhookRefused(f"webhook {url!r}: not a URL with a valid port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookRefused(f"webhook {shown_url(url)!r}: only http:// and https:// URLs "
                             "with a host are called")
    host = parts.hostname.lower()
    listed = host_listed(host, allowed_hosts)
    if allowed_hosts and not listed:
        raise WebhookRefused(f"webhook host {host!r} is not in SIGNDIGITS_WEBHOOK_ALLOWED_HOSTS")
    if not resolve:
        return []
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise WebhookRefused(f"webhook host {host!r} does not resolve ({exc})") from None
    addresses = list(dict.fromkeys(ipaddress.ip_address(str(entry[4][0]).split("%")[0])
                                   for entry in found))
    for address in addresses:
        problem = _address_problem(address, production=production, listed=listed)
        if problem:
            raise WebhookRefused(f"webhook host {host!r} resolves to {address}, {problem}")
    return addresses


def _address_problem(address: Address, *, production: bool, listed: bool) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address.is_link_local or address in _METADATA:
        return "a link-local or cloud metadata address (never called)"
    # ::1 lies in IPv6's reserved ::/8: a loopback is judged as 127.0.0.1 is, below.
    if address.is_unspecified or address.is_multicast or (
            address.is_reserved and not address.is_loopback):
        return "not an address a server can be called on"
    if production and not listed and not address.is_global:
        return ("a private or loopback address (in production only hosts named in "
                "SIGNDIGITS_WEBHOOK_ALLOWED_HOSTS may be)")
    return None


def host_listed(host: str, patterns: list[str]) -> bool:
    """Whether ``host`` is one of ``patterns``: a name, ``*.domain`` or an address."""
    host = host.strip("[]").lower()
    for pattern in patterns:
        pattern = pattern.strip("[]").lower()
        if host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:])):
            return True
    return False


def shown_url(url: str) -> str:
    """The URL without its credentials, query or fragment (they may hold a token): what
    logs, ``status`` and the pages show."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
