"""Which names are images, and path containment: the one test of "is this inside that"."""

from __future__ import annotations

import os
from pathlib import Path

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})


def is_image_name(name: str) -> bool:
    """The walk, training's loaders and the error messages all judge a name by this."""
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS and not name.startswith(".")


def is_inside(path: str, root: str) -> bool:
    """Both arguments must already be real paths (symlinks and ``..`` resolved)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def resolve_inside(root: Path, relative: str) -> Path | None:
    """The real path of ``root/relative``, or None if it leads outside ``root``."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(real_root, relative))
    return Path(real) if is_inside(real, real_root) else None


def inside_allowed_roots(folder: Path | str, allowed_roots: list[Path]) -> bool:
    """Whether a job's folder may be used: no roots configured, or its real path lies in one.

    The producer asks before recording a job and every worker asks again before reading
    (a forged message can name any job), so both must give the same answer.
    """
    real = os.path.realpath(folder)
    return not allowed_roots or any(
        is_inside(real, os.path.realpath(allowed)) for allowed in allowed_roots
    )
