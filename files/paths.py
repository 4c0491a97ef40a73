"""Which names are images, and path containment: the one test of "is this inside that"."""

from __future__ import annotations

import os
from pathlib import Path

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff",
                              ".heic", ".heif", ".avif"})


def is_image_name(name: str) -> bool:
    """The walk, training's loaders and the error messages all judge a name by this."""
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS and not name.startswith(".")


def real_path(path: Path | str) -> Path:
    """``path`` with ``~``, links and ``..`` resolved, existing or not.

    Not ``Path.resolve()``: on a symlink loop it raises RuntimeError, which no caller's
    error handling expects (a traceback, a 500); realpath leaves the loop for the open
    that follows to report ("Too many levels of symbolic links", "no such folder").
    """
    return Path(os.path.realpath(Path(path).expanduser()))


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
    (a forged message can name any job), so both must give the same answer. An ``s3://``
    root admits no folder (:func:`files.objects.objects_allowed` judges those).
    """
    if is_object_url(folder):
        return False
    real = os.path.realpath(folder)
    return not allowed_roots or any(
        is_inside(real, os.path.realpath(allowed)) for allowed in allowed_roots
        if not is_object_url(allowed)
    )


def is_object_url(text: str | Path) -> bool:
    """Whether a job's folder names object storage, ``s3://bucket/prefix`` (also as a
    pathlib.Path spells it, ``s3:/bucket/prefix``, which no absolute folder starts with)."""
    return str(text).lower().startswith(("s3://", "s3:/"))


def stored_name(name: str) -> tuple[str, bytes | None]:
    """A walked name as the database keeps it: (readable text, exact bytes or None).

    A name that is not valid UTF-8 (common on disks shared with other systems) reaches
    Python with its bad bytes as lone surrogates, which no database text column accepts.
    It is kept twice: readable, each undecodable byte shown as ``\\xNN``, and as its
    exact bytes, which is what a worker opens. Every other name is kept as it is.
    """
    if name.isascii():
        return name, None
    try:
        name.encode("utf-8")
        return name, None
    except UnicodeEncodeError:
        raw = os.fsencode(name)
        return raw.decode("utf-8", "backslashreplace"), raw


def disk_name(path: str, raw: bytes | None) -> str:
    """The name to open for a stored image: its exact bytes when it has them."""
    return path if raw is None else os.fsdecode(raw)
