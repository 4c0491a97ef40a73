"""Addresses: which ones only this machine can reach, host name patterns, Redis URLs."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """``localhost``, or an IPv4/IPv6 loopback address (``[::1]`` in brackets too)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_host_pattern(name: str) -> bool:
    """A name, ``*.domain`` or an address (IPv6 in brackets), without a port: what
    Starlette's TrustedHostMiddleware compares a request's Host with."""
    if name.startswith("[") and name.endswith("]"):
        try:
            return ipaddress.ip_address(name[1:-1]).version == 6
        except ValueError:
            return False
    wildcard_ok = "*" not in name[1:] and (not name.startswith("*") or name.startswith("*."))
    return bool(name) and wildcard_ok and not any(c in name for c in ":/@ ")


def redis_url_problem(url: str) -> str | None:
    """What kombu and redis-py would raise on, deep in a command, for this URL (or None).

    A port past 65535 or not a number, a database that is not a number, a password with
    an unescaped ``/`` (which moves the port): each was a traceback at the first connect.
    """
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for 70000 or 'abc'
    except ValueError:  # its text would quote a password that swallowed the port
        return ("the port is not a number from 1 to 65535; a password's special characters "
                "(/ @ : #) must be %-escaped")
    if port == 0:
        return "port 0 is no port"
    if port is None and parts.netloc.endswith(":"):  # redis-py would quietly use 6379
        return "the port after ':' is empty (leave out the ':' for 6379)"
    database = parts.path.lstrip("/")
    if database and not (database.isascii() and database.isdigit()):  # not '²'
        return f"the database after the host must be a number (0-15), not {database!r}"
    return None
