"""Walk a folder for images, streaming: memory stays flat from one file to a million."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from files.paths import is_image_name, is_inside


class FolderError(ValueError):
    """The folder cannot be submitted; the message says why."""


def scan_folder(root: Path) -> Iterator[str]:
    """Yield image paths relative to ``root`` (POSIX separators), in directory order.

    Recurses; matches extensions case-insensitively; skips hidden files and folders; never
    descends into symlinked folders (loops, escapes) and yields a symlinked file only when
    its target lies inside ``root``.
    """
    root = Path(root)
    if not root.exists():
        raise FolderError(f"{root}: no such folder")
    if not root.is_dir():
        raise FolderError(f"{root}: not a folder")
    real_root = os.path.realpath(root)
    stack = [""]
    while stack:
        relative = stack.pop()
        folder = os.path.join(root, relative) if relative else str(root)
        try:
            entries = os.scandir(folder)
        except OSError:
            continue  # an unreadable subfolder holds nothing we can classify
        subfolders = []
        # Entries are consumed as the OS returns them: sorting would hold a whole
        # million-file folder in memory.
        for entry in entries:
            if entry.name.startswith("."):
                continue  # hidden: editors' and systems' files, never the user's photos
            name = f"{relative}/{entry.name}" if relative else entry.name
            if entry.is_dir(follow_symlinks=False):
                subfolders.append(name)
            elif is_image_name(entry.name):
                if entry.is_symlink():
                    target = os.path.realpath(entry.path)
                    if is_inside(target, real_root) and os.path.isfile(target):
                        yield name
                elif entry.is_file(follow_symlinks=False):  # not a FIFO, socket or device
                    yield name
        entries.close()
        stack.extend(sorted(subfolders, reverse=True))
