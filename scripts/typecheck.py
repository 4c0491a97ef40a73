"""Type-check the package as it is installed: ``.venv/bin/python scripts/typecheck.py``.

mypy finds modules by folder, and the layers are top-level folders mapped under one
package by pyproject.toml's package-dir. So mypy reads them through a tree of links made
afresh on each run, ``.typecheck/signdigits/<module> -> ../../<folder>``, built from that
same mapping; its settings are pyproject.toml's [tool.mypy]. Exit code: mypy's.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TREE = ROOT / ".typecheck"


def link_tree() -> None:
    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-dir"]
    shutil.rmtree(TREE, ignore_errors=True)
    package = TREE / "signdigits"
    package.mkdir(parents=True)
    for name, folder in mapping.items():
        if name == "signdigits":
            for module in (ROOT / folder).glob("*.py"):
                (package / module.name).symlink_to(module)
        else:
            (package / name.removeprefix("signdigits.")).symlink_to(ROOT / folder)


if __name__ == "__main__":
    link_tree()
    sys.exit(subprocess.call([sys.executable, "-m", "mypy", *sys.argv[1:]], cwd=ROOT))
