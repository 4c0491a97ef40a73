"""A zip archive of an upload, unpacked into its folder entry by entry.

As the walk reads a folder: hidden entries (``.DS_Store``, ``__MACOSX/``) are skipped in
silence; other entries that are not images are skipped and said; an image over
``SIGNDIGITS_MAX_FILE_BYTES`` or whose data cannot be unpacked (corrupt, encrypted, a
method we lack) is an error row, as an oversized or unreadable file on disk is. A zip
that cannot be read at all is one part left out. A link, a path that climbs out, more
entries than any photo folder holds, or sizes past or unlike what the zip declares
(a zip bomb) refuse the whole upload.
"""

from __future__ import annotations

import lzma
import stat
import zipfile
import zlib
from pathlib import PurePosixPath

from signdigits.files.paths import is_image_name
from signdigits.web.upload_store import (
    SAFE,
    Store,
    Upload,
    UploadRefused,
    over_cap,
    shown,
    upload_path,
)

_MAX_ZIP_ENTRIES = 200_000
_LABELS = frozenset("0123456789")  # label folders (db.labels): a zip's folder goes below
# What zipfile and its decompressors raise for an entry's own bad data: the entry's fault.
_UNREADABLE = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError,
               NotImplementedError, RuntimeError, zlib.error, lzma.LZMAError)


def is_zip_name(name: str) -> bool:
    return name.lower().endswith(".zip")


class ZipFolders:
    """The folder each zip of a several-zip upload unpacks under: its name without
    ``.zip``, made unique (``day1``, ``day1 (2)``)."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def name_for(self, zip_name: str) -> str:
        leaf = zip_name.replace("\\", "/").rsplit("/", 1)[-1][:-4]
        base = SAFE.sub("_", leaf).strip().lstrip(".")[:200] or "zip"
        name, n = base, 1
        while name.lower() in self.used:
            n += 1
            name = f"{base} ({n})"
        self.used.add(name.lower())
        return name


def _under(folder: str, relative: str) -> str:
    """``relative`` under the zip's ``folder``, kept below a label folder (``3/``) so that
    labels by folder still count."""
    parts = relative.split("/")
    if len(parts) > 1 and parts[0] in _LABELS:
        return "/".join([parts[0], folder, *parts[1:]])
    return f"{folder}/{relative}"


def unpack_zip(upload: Upload, store: Store, *, under: str | None) -> None:
    name, cap = upload.filename, store.settings.max_file_bytes
    try:
        archive = zipfile.ZipFile(upload.stream)
    except (zipfile.BadZipFile, OSError, ValueError):
        # One part the upload does without, as a damaged file among photos would be.
        store.stored.leave_out(f"{shown(name)} is not a readable zip archive", status=400)
        return
    with archive:
        entries = archive.infolist()
        if len(entries) > _MAX_ZIP_ENTRIES:
            raise UploadRefused(f"{shown(name)} holds over {_MAX_ZIP_ENTRIES:,} entries; "
                                "refused")
        # What it would unpack: an entry over the per-file cap is never written, so
        # 500 photos and one huge panorama are not taken for a bomb.
        declared = sum(e.file_size for e in entries if e.file_size <= cap and is_image_name(
            PurePosixPath(e.filename.replace("\\", "/")).name))
        if declared > store.left:
            store.spend(declared, shown(name))
        for entry in entries:
            if entry.is_dir():
                continue
            what = f"{shown(name)}: {shown(entry.filename)}"
            relative = upload_path(entry.filename)  # refuses climbing before anything else
            if stat.S_ISLNK(entry.external_attr >> 16):
                raise UploadRefused(f"{what} is a link; refused")
            if relative is None or relative.split("/")[0] == "__MACOSX":
                continue  # a system's files, never the user's photos
            if not is_image_name(PurePosixPath(relative).name):
                store.stored.leave_out(f"{what} is not an image", status=400)
                continue
            if under:
                relative = _under(under, relative)
            if entry.file_size > cap:  # never read: the row needs only its size
                over_cap(what, entry.file_size, cap=cap, store=store, relative=relative)
                continue
            try:
                with archive.open(entry) as data:
                    # The header's size can lie: the cap is enforced on what comes out.
                    store.write(relative, data, what=what, declared=entry.file_size)
            except _UNREADABLE as exc:
                # Its data is damaged, as an unreadable file on disk: an error row. An
                # OSError's text names the server's own path: its reason is enough.
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
                store.claim(relative, what)
                store.stored.leave_out(f"{what}: cannot unpack it: {reason}", status=400,
                                       row=(relative, f"cannot unpack it from the zip: "
                                                      f"{reason}"))
