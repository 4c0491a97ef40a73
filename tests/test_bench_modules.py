"""The benchmarks run as ``python -m signdigits.bench.<name>``, modules that ruff and
tests/test_layers.py read.

They were Python in bash heredocs under scripts/, which nothing linted or imported: two of
them stopped running when db/ was split and no test noticed. Removing this test lets a
benchmark start work at import (so that importing the package starts TensorFlow or a
browser), lose its ``--help``, or hide in a script again.
"""

from __future__ import annotations

import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted(m.name for m in pkgutil.iter_modules([str(ROOT / "bench")]))
# Each run as a command, with arguments it refuses before doing anything.
COMMANDS = {
    "adapt_loop": ["/nonexistent-folder", "--order", "newest"],
    "beside_hand": ["--least", "1.5"],
    "decode": ["/nonexistent-folder"],
    "drift": ["/nonexistent-folder", "out", "--kind", "fog"],
    "hand_size": ["--shares", "0,2"],
    "image_pages": ["--rows", "0"],
    "read": ["", "0"],
    "review_loop": ["--threshold", "2"],
    "review_page": ["/nonexistent.db"],
    "runtimes": ["1", "zero"],
    "several_hands": ["--count", "0"],
    "startup": ["", "0"],
    "store": ["not-a-database-url"],
    "summary": ["0"],
}
# What a benchmark imports when it runs, never when it is imported.
HEAVY = ("tensorflow", "keras", "onnxruntime", "playwright", "uvicorn")


def _python(*arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "TMPDIR": str(cwd)}
    return subprocess.run([sys.executable, *arguments], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_the_commands_are_modules_of_the_package():
    assert set(COMMANDS) <= set(MODULES)


def test_every_module_imports_without_side_effects(tmp_path):
    """No output, no file (in the working directory or the temporary one), nothing heavy."""
    code = ("import importlib, sys\n"
            "for name in sys.argv[1:]:\n"
            "    importlib.import_module('signdigits.bench.' + name)\n"
            f"print(*sorted(m for m in {HEAVY!r} if m in sys.modules))\n")
    done = _python("-c", code, *MODULES, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (done.stdout.strip(), done.stderr) == ("", ""), "imported at import time or printed"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help(name, tmp_path):
    done = _python("-m", f"signdigits.bench.{name}", "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: python -m signdigits.bench.{name}")


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_a_bad_argument_is_one_line(name, tmp_path):
    done = _python("-m", f"signdigits.bench.{name}", *COMMANDS[name], cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1].startswith(f"python -m signdigits.bench.{name}: error:")
    assert list(tmp_path.iterdir()) == []


def test_no_python_hides_in_a_script():
    """Python fed to an interpreter on its standard input is Python no linter reads."""
    heredoc = re.compile(r"python\S*\s+-(\s|$).*<<", re.MULTILINE)
    hidden = [p.name for p in (ROOT / "scripts").iterdir() if heredoc.search(p.read_text())]
    assert not hidden, f"make these modules under bench/ (python -m ...): {hidden}"
