"""Walk a folder for images, streaming: memory stays flat from one file to a million."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from signdigits.files.paths import is_image_name, is_inside

_KEPT_OPEN = 32  # folders past the path limit kept open, so a deep chain costs one open a level
_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class FolderError(ValueError):
    """The folder cannot be submitted; the message says why."""


@dataclass(frozen=True)
class Unreachable:
    """Something the walk found but could not list or follow: it gets an error row.

    ``path`` is relative to the root, a folder's ending in ``/``.
    """

    path: str
    reason: str


def scan_folder(root: Path) -> Iterator[str | Unreachable]:
    """Yield image paths relative to ``root`` (POSIX separators), in directory order.

    Recurses (each folder's subfolders in sorted order, so a second walk of an unchanged
    folder yields the same sequence: what ``resume`` relies on); matches extensions
    case-insensitively; skips hidden files and folders; never descends into symlinked
    folders (loops, escapes) and follows a symlinked file only when its target lies inside
    ``root``. What it finds but will not read (a symlink leading out of ``root`` or to
    nothing, a FIFO or device with an image's name) and a subfolder that cannot be listed
    (no permission, an I/O error) are yielded as :class:`Unreachable`, error rows, never
    skipped in silence. A folder deeper than the system's path limit is opened a
    component at a time from a descriptor, and its files are yielded like any other.
    """
    root = Path(root)
    try:
        if not root.exists():
            raise FolderError(f"{root}: no such folder")
        if not root.is_dir():
            # Someone pointing a job at one photo wants it read: say where that is done.
            raise FolderError(f"{root}: not a folder (one photo alone is read by "
                              "`signdigits predict FILE` or POST /api/predict)")
    except OSError as exc:  # a name too long for the system, say
        raise FolderError(f"{root}: cannot open it ({exc.strerror or exc})") from None
    real_root = os.path.realpath(root)
    deep = _DeepFolders(str(root))
    stack = [""]
    try:
        while stack:
            relative = stack.pop()
            folder = os.path.join(root, relative) if relative else str(root)
            by_descriptor = False
            try:
                try:
                    entries = os.scandir(folder)
                except OSError as exc:
                    if exc.errno != errno.ENAMETOOLONG or not relative:
                        raise
                    entries, by_descriptor = deep.scandir(relative), True
            except OSError as exc:
                if not relative:
                    raise FolderError(f"{root}: cannot list it: {_reason(exc)}") from None
                yield Unreachable(f"{relative}/", f"folder not listed: {_reason(exc)}")
                continue
            subfolders = []
            # Entries are consumed as the OS returns them: sorting would hold a whole
            # million-file folder in memory.
            try:
                for entry in entries:
                    if entry.name.startswith("."):
                        continue  # hidden: editors' and systems' files, never the user's photos
                    name = f"{relative}/{entry.name}" if relative else entry.name
                    if entry.is_dir(follow_symlinks=False):
                        subfolders.append(name)
                    elif entry.is_symlink():
                        found = _symlink(entry, name, real_root, by_descriptor)
                        if found is not None:
                            yield found
                    elif is_image_name(entry.name):
                        if entry.is_file(follow_symlinks=False):
                            yield name
                        else:  # reading a FIFO would block; a device is not a photo
                            yield Unreachable(name, "not a regular file (a FIFO, socket or "
                                                    "device; not read)")
            except OSError as exc:
                yield Unreachable(f"{relative}/" if relative else "./",
                                  f"folder listed only in part: {_reason(exc)}")
            finally:
                entries.close()
            stack.extend(sorted(subfolders, reverse=True))
    finally:
        deep.close()


def _symlink(entry: os.DirEntry[str], name: str, real_root: str,
             by_descriptor: bool) -> str | Unreachable | None:
    """A symlink in the folder: its name when it leads to a file inside, an error row when
    it leads out or nowhere, nothing when it is a folder inside (its images are walked
    where they are) or a file that is not an image."""
    if by_descriptor:  # its target would be resolved by a path the system refuses
        return Unreachable(name, "symlink past the path limit (not followed)") \
            if is_image_name(entry.name) else None
    target = os.path.realpath(entry.path)
    inside = is_inside(target, real_root)
    if os.path.isdir(target):
        return None if inside else Unreachable(
            f"{name}/", "symlink to a folder outside the job's folder (not followed); the "
                        "images in it have no rows")
    if not is_image_name(entry.name):
        return None
    if not inside:
        return Unreachable(name, "symlink to a file outside the job's folder (not followed)")
    if not os.path.lexists(target):
        return Unreachable(name, "broken symlink (its target does not exist)")
    return name if os.path.isfile(target) else Unreachable(
        name, "symlink to something that is not a regular file (not read)")


def _reason(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied; the images in it have no rows"
    return f"{exc.strerror or exc}; the images in it have no rows"


class _DeepFolders:
    """Folders whose paths the system refuses as too long, opened from descriptors.

    Each component is opened with ``O_NOFOLLOW`` relative to its parent's descriptor, so
    no symlink is followed on the way. A few recently listed folders stay open: a folder
    whose parent is among them costs one ``open``, whatever its depth.
    """

    def __init__(self, root: str) -> None:
        self.root = root
        self.open: dict[str, int] = {}  # relative path -> descriptor, oldest first

    def scandir(self, relative: str) -> os._ScandirIterator[str]:  # os.scandir's own type
        return os.scandir(self._descriptor(relative))  # scandir works on its own copy

    def _descriptor(self, relative: str) -> int:
        parent, _, name = relative.rpartition("/")
        base = self.open.get(parent)
        if base is None:
            base, names = self._root(), relative.split("/")
        else:
            names = [name]
        fd = base
        try:
            for part in names:
                opened = os.open(part, _FOLDER_FLAGS, dir_fd=fd)
                if fd != base:
                    os.close(fd)
                fd = opened
        except BaseException:
            if fd != base:
                os.close(fd)
            raise
        self.open[relative] = fd
        while len(self.open) > _KEPT_OPEN:
            oldest = next(k for k in self.open if k)  # the root stays open
            os.close(self.open.pop(oldest))
        return fd

    def _root(self) -> int:
        if "" not in self.open:
            self.open[""] = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        return self.open[""]

    def close(self) -> None:
        for fd in self.open.values():
            os.close(fd)
        self.open.clear()
