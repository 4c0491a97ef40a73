"""The unit tier: the pure rules, each file in well under a second, seconds in all.

``scripts/test tests/unit`` runs it alone. A unit test starts no server or process and
opens no connection (both are refused here, so one that tries fails), and collecting
the tier imports nothing heavy: no TensorFlow, Keras, ONNX Runtime or browser
(``test_tier.py`` fails if it did). Every test runs without ``SIGNDIGITS_*`` variables
and with the settings read afresh, so what one sets cannot reach another.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

HEAVY = ("tensorflow", "keras", "onnxruntime", "tf2onnx", "onnx", "playwright", "matplotlib")
# What the test process had loaded before this tier was collected (in a whole run, the
# integration tests' imports): only what collecting the tier adds counts against it.
_LOADED_BEFORE = {name for name in HEAVY if name in sys.modules}
HEAVY_IMPORTED_BY_COLLECTION: list[str] = []


def pytest_collection_finish(session) -> None:
    HEAVY_IMPORTED_BY_COLLECTION[:] = [
        name for name in HEAVY if name in sys.modules and name not in _LOADED_BEFORE]


class NotInTheUnitTier(AssertionError):
    pass


def _refuse(what: str):
    def refused(*_args, **_kwargs):
        raise NotInTheUnitTier(f"a unit test may not {what}: move it to the integration tier")
    return refused


@pytest.fixture(autouse=True)
def _pure(monkeypatch):
    """No connection, no process, no SIGNDIGITS_* variable, no cached settings."""
    from signdigits.config.settings import get_settings

    monkeypatch.setattr(socket.socket, "connect", _refuse("open a connection"))
    monkeypatch.setattr(socket.socket, "connect_ex", _refuse("open a connection"))
    monkeypatch.setattr(subprocess.Popen, "__init__", _refuse("start a process"))
    for name in [n for n in os.environ if n.startswith("SIGNDIGITS_")]:
        monkeypatch.delenv(name)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
