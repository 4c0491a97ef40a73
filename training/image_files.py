"""Reading a job's image files safely: size caps, no symlinks, nothing outside its folder.

Kept apart from :mod:`training.preprocess` (and free of numpy and Pillow) because the
producer reads files too, for ``--inline`` jobs, and its start-up is on the clock of
every job: the workers wait idle until its first batch is enqueued.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from signdigits.paths import is_inside, resolve_inside


class ImageError(ValueError):
    """A file that cannot become model input; the message is shown to the user as is."""


def file_error(exc: OSError) -> ImageError:
    if isinstance(exc, FileNotFoundError):
        return ImageError("file not found")
    if isinstance(exc, PermissionError):
        return ImageError("permission denied")
    if isinstance(exc, IsADirectoryError):
        return ImageError("is a directory, not a file")
    return ImageError(f"cannot read file: {exc.strerror or exc}")


def read_job_file(root: Path, relative: str, *, max_bytes: int,
                  allowed_roots: list[Path]) -> bytes:
    """The bytes of a job's image by its manifest path, refused if it leads outside the
    job's folder or outside every one of ``allowed_roots`` (when any are given)."""
    path = resolve_inside(root, relative, allowed_roots)
    if path is None:
        raise ImageError(
            "path leads outside the job's folder or SIGNDIGITS_ALLOWED_ROOTS (refused)"
        )
    return read_image_file(path, max_bytes=max_bytes, within=root)


def read_image_file(path: Path, *, max_bytes: int, within: Path | None = None) -> bytes:
    """Read a regular file for :func:`preprocess_image`, refusing it past ``max_bytes``.

    Opened without following a final symlink and without blocking (a FIFO named .jpg
    would otherwise hang the reader forever); with ``within`` set, the file actually
    opened must lie inside that folder, which closes the gap between resolving a path
    and opening it.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ImageError("is a symlink (refused)") from None
        raise file_error(exc) from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ImageError("not a regular file")
        if within is not None:
            opened = os.readlink(f"/proc/self/fd/{fd}") if os.path.isdir("/proc/self/fd") else ""
            if opened and not is_inside(opened, os.path.realpath(within)):
                raise ImageError("path leads outside the job's folder (refused)")
        if info.st_size > max_bytes:
            raise ImageError(f"file is {info.st_size:,} bytes, over the {max_bytes:,}-byte cap")
        try:
            data = handle.read(max_bytes + 1)
        except OSError as exc:
            raise file_error(exc) from None
    if len(data) > max_bytes:
        raise ImageError(f"file grew past the {max_bytes:,}-byte cap while being read")
    if not data:
        raise ImageError("empty file (0 bytes)")
    return data
