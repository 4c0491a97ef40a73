"""Reading a job's image files safely: size caps, no symlinks, nothing outside its folder.

Kept apart from :mod:`serving.preprocess` (and free of numpy and Pillow) because the
producer reads files too, for ``--inline`` jobs, and its start-up is on the clock of
every job: the workers wait idle until its first batch is enqueued.
"""

from __future__ import annotations

import errno
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

from signdigits.files.paths import inside_allowed_roots, is_inside, is_object_url, resolve_inside


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


# /proc names the file behind a descriptor: what was opened, whatever its path was.
_CAN_NAME_OPENED = os.path.isdir("/proc/self/fd")
# Linux lets a file be opened as a bare handle (O_PATH): checked before any byte is read.
_CAN_OPEN_AS_HANDLE = hasattr(os, "O_PATH") and _CAN_NAME_OPENED


class JobFolder:
    """A job's folder, resolved once, that reads its files by their manifest paths.

    A file is refused if it leads outside the folder (by ``..``, a symlinked subfolder or a
    file swapped for a symlink after the scan) or if the folder lies outside every one of
    ``allowed_roots`` (when any are given). On Linux each file is opened as a bare handle
    first (``O_PATH``: no data, no device side effects); its type and real path are
    checked before it is opened for reading, so nothing outside the folder and no FIFO or
    device is ever opened for reading. That takes ~6 system calls a file; resolving each
    path component by component, as before, took ~20, and with the read 100 us an image
    instead of 18 (``python -m signdigits.bench.read``).
    """

    def __init__(self, root: Path | str, *, allowed_roots: list[Path]) -> None:
        self.real_root = os.path.realpath(root)
        # An s3:// job's root resolves to a folder named "s3:" here: never read as one.
        self.object_url = is_object_url(root)
        self.allowed = inside_allowed_roots(self.real_root, allowed_roots)

    def read(self, relative: str, *, max_bytes: int) -> bytes:
        if self.object_url:
            raise ImageError("the job's folder is in object storage (s3://): not a folder here")
        if not self.allowed:
            raise ImageError("the job's folder is outside SIGNDIGITS_ALLOWED_ROOTS (refused)")
        if not _CAN_OPEN_AS_HANDLE:
            path = resolve_inside(Path(self.real_root), relative)
            if path is None:
                raise ImageError("path leads outside the job's folder (refused)")
            return read_image_file(path, max_bytes=max_bytes, within=Path(self.real_root))
        if os.path.isabs(relative) or os.path.normpath(relative).startswith(".."):
            raise ImageError("path leads outside the job's folder (refused)")
        try:
            handle, info = self._open_handle(os.path.join(self.real_root, relative))
            by_components = False
        except _PathTooLong:
            handle, info = self._open_by_components(relative)
            by_components = True  # inside by construction; /proc cannot name it anyway
        try:
            if not stat.S_ISREG(info.st_mode):
                raise ImageError("not a regular file")
            if not by_components and not _opened_inside(handle, self.real_root):
                raise ImageError("path leads outside the job's folder (refused)")
            if info.st_size > max_bytes:
                raise ImageError(f"file is {info.st_size:,} bytes, over the {max_bytes:,}-byte cap")
            try:  # the handle's own file, whatever its path leads to by now
                fd = os.open(f"/proc/self/fd/{handle}", os.O_RDONLY | os.O_NONBLOCK)
            except OSError as exc:
                raise file_error(exc) from None
        finally:
            os.close(handle)
        try:
            return _read_capped(fd, expected=info.st_size, max_bytes=max_bytes)
        finally:
            os.close(fd)

    def _open_handle(self, path: str) -> tuple[int, os.stat_result]:
        """A bare handle on the file and its status. A symlinked file is followed only when
        its target lies inside the folder, as the scan decided when it listed the file."""
        handle, info = _open_bare(path)
        if stat.S_ISLNK(info.st_mode):
            os.close(handle)
            target = os.path.realpath(path)
            if not is_inside(target, self.real_root):
                raise ImageError("path leads outside the job's folder (refused)")
            handle, info = _open_bare(target)  # a symlink again (swapped meanwhile): refused
        return handle, info


    def _open_by_components(self, relative: str) -> tuple[int, os.stat_result]:
        """A bare handle on a file whose path is past the system's limit (``PATH_MAX``).

        Each folder on the way is opened from its parent's descriptor with ``O_NOFOLLOW``,
        so no symlink is followed and nothing outside the folder is reached; a symlinked
        file there is refused (the walk gave it an error row and no path).
        """
        parts = relative.split("/")
        if any(part in ("", ".", "..") for part in parts):
            raise ImageError("path leads outside the job's folder (refused)")
        try:
            fd = os.open(self.real_root, os.O_PATH | os.O_DIRECTORY)
        except OSError as exc:
            raise file_error(exc) from None
        try:
            for part in parts[:-1]:
                folder = os.open(part, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                os.close(fd)
                fd = folder
            handle = os.open(parts[-1], os.O_PATH | os.O_NOFOLLOW, dir_fd=fd)
        except OSError as exc:
            if exc.errno == errno.ENOTDIR:
                raise ImageError("path leads through a symlink or a file (refused)") from None
            raise file_error(exc) from None
        finally:
            os.close(fd)
        info = os.fstat(handle)
        if stat.S_ISLNK(info.st_mode):
            os.close(handle)
            raise ImageError("is a symlink past the path limit (refused)")
        return handle, info


class ChangedSinceReview(ImageError):
    """The file was written after its review: not the photo the person looked at."""


def unchanged_since_review(folder: JobFolder, relative: str,
                           reviewed_at: datetime) -> tuple[str, os.stat_result | None]:
    """The file's real path and its ``lstat`` (None when it leads outside the folder: the
    read refuses it, as the workers do); ChangedSinceReview if it was written after
    ``reviewed_at`` (naive: UTC). The one check of ``export-reviews`` and ``adapt``:
    exported or learnt, another photo would train under the reviewed digit."""
    real = os.path.realpath(os.path.join(folder.real_root, relative))
    if not is_inside(real, folder.real_root):
        return real, None
    try:
        found = os.stat(real, follow_symlinks=False)  # realpath: no link is left in it
    except OSError as exc:
        raise file_error(exc) from None
    moment = reviewed_at if reviewed_at.tzinfo else reviewed_at.replace(tzinfo=UTC)
    if found.st_mtime > moment.timestamp():
        written = datetime.fromtimestamp(found.st_mtime, UTC)
        raise ChangedSinceReview(f"changed since it was reviewed (written "
                                 f"{written:%Y-%m-%d %H:%M:%S} UTC); review it again")
    return real, found


class _PathTooLong(ImageError):
    """The system refused the path as too long: read it a component at a time."""


def _opened_inside(fd: int, real_root: str) -> bool:
    return is_inside(os.readlink(f"/proc/self/fd/{fd}"), real_root)


def _open_bare(path: str) -> tuple[int, os.stat_result]:
    try:
        handle = os.open(path, os.O_PATH | os.O_NOFOLLOW)  # a symlink opens as itself
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise _PathTooLong("path too long") from None
        raise file_error(exc) from None
    try:
        return handle, os.fstat(handle)
    except BaseException:
        os.close(handle)
        raise


def _read_capped(fd: int, *, expected: int, max_bytes: int) -> bytes:
    """All of a file, refused once it passes ``max_bytes`` (it may grow while read).

    Reads what ``fstat`` reported, plus one byte: ``file.read(max_bytes + 1)`` allocates
    the whole cap (20 MB by default) up front for every file; with it, each worker
    process peaked ~100 MB higher (``signdigits bench``).
    """
    parts = []
    total = 0
    want = min(expected, max_bytes) + 1  # one read for a file that kept its size
    while True:
        try:
            part = os.read(fd, want)
        except OSError as exc:
            raise file_error(exc) from None
        if not part:
            break
        parts.append(part)
        total += len(part)
        if total > max_bytes:
            raise ImageError(f"file grew past the {max_bytes:,}-byte cap while being read")
        if len(part) < want:
            break  # a short read of a regular file is its end: no extra call to learn it
        want = min(max_bytes + 1 - total, 1 << 20)
    if not total:
        raise ImageError("empty file (0 bytes)")
    return parts[0] if len(parts) == 1 else b"".join(parts)


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
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ImageError("not a regular file")
        inside = within is None or not _CAN_NAME_OPENED or _opened_inside(
            fd, os.path.realpath(within))
        if not inside:
            raise ImageError("path leads outside the job's folder (refused)")
        if info.st_size > max_bytes:
            raise ImageError(f"file is {info.st_size:,} bytes, over the {max_bytes:,}-byte cap")
        return _read_capped(fd, expected=info.st_size, max_bytes=max_bytes)
    finally:
        os.close(fd)
