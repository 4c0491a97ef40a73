"""Set-up's editable install prints no boxed setuptools note (``BuildBackendWarning``-style
"Editable installation ... be careful with folders ..."): it alarmed new users about
nothing (see scripts/build_backend.py)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_editable_build_prints_no_setuptools_note(tmp_path):
    pytest.importorskip("setuptools.warnings")  # setuptools >= 77, the dev extra's
    system = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]
    paths = [str(ROOT / p) for p in system.get("backend-path", [])]
    # What pip's build frontend does: import the backend named, call its editable hook.
    script = (f"import sys, importlib; sys.path[:0] = {paths!r}; "
              f"backend = importlib.import_module({system['build-backend']!r}); "
              f"print(backend.build_editable({str(tmp_path)!r}))")
    built = subprocess.run([sys.executable, "-W", "default", "-c", script], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr[-2000:]
    assert built.stdout.strip().endswith(".whl"), built.stdout
    said = built.stdout + built.stderr
    assert "Editable installation" not in said and "!!" not in said, said[-2000:]
