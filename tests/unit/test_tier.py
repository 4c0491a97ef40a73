"""The tier's own rules: what it may not import or do, and the one waiting helper."""

from __future__ import annotations

import socket
import subprocess

import pytest

from tests.unit.conftest import HEAVY_IMPORTED_BY_COLLECTION, NotInTheUnitTier
from tests.waiting import wait_until


def test_collecting_the_unit_tier_imports_nothing_heavy():
    assert HEAVY_IMPORTED_BY_COLLECTION == [], "a unit test module imports these at the top"


def test_a_unit_test_can_open_no_connection_and_start_no_process():
    with pytest.raises(NotInTheUnitTier):
        socket.create_connection(("127.0.0.1", 9), timeout=1)
    with pytest.raises(NotInTheUnitTier):
        subprocess.run(["true"])


def test_wait_until_returns_the_first_truthy_value():
    answers = iter([0, None, "", 7, 8])
    assert wait_until(lambda: next(answers), timeout=5, interval=0) == 7


def test_wait_until_says_what_it_waited_for_and_the_last_value():
    with pytest.raises(AssertionError) as failed:
        wait_until(lambda: [], timeout=0.05, interval=0.01, message="rows to appear",
                   details=lambda: "log tail")
    assert str(failed.value) == "waited 0.05 s for rows to appear; last value: []\nlog tail"


def test_wait_until_ends_at_once_when_the_predicate_raises():
    def dead():
        raise RuntimeError("the process died")

    with pytest.raises(RuntimeError, match="died"):
        wait_until(dead, timeout=60)
