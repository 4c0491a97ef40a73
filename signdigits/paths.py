"""Path containment: the one test of "is this file inside that folder" everyone uses."""

from __future__ import annotations

import os
from pathlib import Path


def is_inside(path: str, root: str) -> bool:
    """Both arguments must already be real paths (symlinks and ``..`` resolved)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def resolve_inside(root: Path, relative: str) -> Path | None:
    """The real path of ``root/relative``, or None if it leads outside ``root``."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(real_root, relative))
    return Path(real) if is_inside(real, real_root) else None
