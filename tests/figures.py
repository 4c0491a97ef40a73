"""The figures the fault tests measure (rows lost, seconds to recover...), shown once at
the end of the run under "guarantees" (docs/guarantees.md). A pytest plugin, loaded by
tests/conftest.py.

Tests run in two processes (pytest-xdist), so each figure is a JSON line appended to one
file the first process names (its environment reaches the others), and the summary reads
them all.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

_FIGURES_FILE = "SIGNDIGITS_TEST_FIGURES"


def pytest_configure(config) -> None:
    if not hasattr(config, "workerinput"):  # the controller, or a run in one process
        folder = tempfile.mkdtemp(prefix="signdigits-test-figures-")
        os.environ[_FIGURES_FILE] = os.path.join(folder, "figures.jsonl")


def record(name: str, figures: dict) -> None:
    line = json.dumps([name, figures], default=str) + "\n"
    with open(os.environ[_FIGURES_FILE], "a", encoding="utf-8") as file:
        file.write(line)  # one short append: whole lines even from two processes


def pytest_terminal_summary(terminalreporter) -> None:
    path = Path(os.environ.get(_FIGURES_FILE, "/nonexistent"))
    if path.is_file() and not hasattr(terminalreporter.config, "workerinput"):
        terminalreporter.section("guarantees: figures measured by the fault tests")
        for line in path.read_text(encoding="utf-8").splitlines():
            name, figures = json.loads(line)
            shown = ", ".join(f"{k} {v}" for k, v in figures.items())
            terminalreporter.write_line(f"{name}: {shown}")
