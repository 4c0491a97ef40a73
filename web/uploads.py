"""Uploaded files and zip archives, unpacked into a fresh folder that becomes a job's.

The folder's name is chosen here (a random id under ``SIGNDIGITS_UPLOAD_DIR``); inside it
each image keeps its path (``3/IMG_1.JPG`` from a zip or a browser's folder upload stays
``3/IMG_1.JPG``) with every component cleaned. Of two zips or more, each unpacks under a
folder named after it (``day1/IMG_0001.jpg``, or ``3/day1/IMG_0001.jpg`` below a label
folder), so two cameras' ``IMG_0001.jpg`` are two images.

An upload is read as the walk reads the same folder on disk, and a bad part costs only
itself: hidden files are skipped in silence, as the walk skips them; a file that is not
an image (or a zip entry that is not) and a file that is not a readable zip are skipped
and said in the answer; an image over ``SIGNDIGITS_MAX_FILE_BYTES`` and a zip entry that
cannot be unpacked become error rows of the job, as an oversized or unreadable file on
disk does, and are said too; an empty image is kept, so that its row says so. What
still refuses the whole upload, leaving nothing behind: a path that would climb out, a
link, two files with the same path, an archive past ``SIGNDIGITS_MAX_UNPACKED_BYTES`` or
lying about its sizes (a zip bomb), our own disk failing, and an upload in which nothing
is left to classify.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterable
from pathlib import PurePosixPath

from signdigits.config.settings import Settings
from signdigits.files.paths import is_image_name
from signdigits.web.upload_store import (
    DiskFailed,
    OverCap,
    Store,
    StoredUpload,
    Upload,
    UploadRefused,
    hidden_zip,
    over_cap,
    shown,
    upload_path,
    upload_root,
)
from signdigits.web.upload_zips import ZipFolders, is_zip_name, unpack_zip


def store_uploads(uploads: Iterable[Upload], *, settings: Settings) -> StoredUpload:
    """Write every upload into a new folder. Nothing remains if the upload is refused."""
    folder = upload_root(settings) / uuid.uuid4().hex
    try:
        folder.mkdir(mode=0o700, parents=True)  # its photos are the uploader's alone
    except OSError as exc:
        raise _cannot_store(exc) from None
    store = Store(folder, settings)
    uploads = list(uploads)
    # One zip's paths are the images' (beside any files sent with it). Of two zips or
    # more, each gets a folder of its own: two cameras' IMG_0001.jpg are two images.
    several = sum(is_zip_name(u.filename or "") and not hidden_zip(u.filename or "")
                  for u in uploads) > 1
    zips = ZipFolders() if several else None
    try:
        for upload in uploads:
            name = upload.filename or ""
            if is_zip_name(name):  # its own name is never a path here
                if not hidden_zip(name):  # ._day1.zip, .git/ or __MACOSX/: not the user's
                    unpack_zip(upload, store, under=zips.name_for(name) if zips else None)
            else:
                _store_file(upload, store)
        if not store.stored.images:
            raise store.stored.nothing_left()
    except (OSError, DiskFailed) as exc:  # the disk, not the request: full, or gone
        shutil.rmtree(folder, ignore_errors=True)
        raise _cannot_store(exc.error if isinstance(exc, DiskFailed) else exc) from None
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return store.stored


def _cannot_store(exc: OSError) -> UploadRefused:
    # Its reason only: the OSError's text would name the server's own folder.
    reason = exc.strerror or exc.__class__.__name__
    return UploadRefused(f"the server cannot store uploads now ({reason}); nothing was recorded",
                         status=503)


def _store_file(upload: Upload, store: Store) -> None:
    name = upload.filename or ""
    relative = upload_path(name)  # refuses climbing, an empty name, ... before anything
    if relative is None:
        return  # hidden: a system's file (.DS_Store), never the user's photo
    if not is_image_name(PurePosixPath(relative).name):
        # The walk would not read it (a PDF in the folder): it costs only itself.
        store.stored.leave_out(f"{shown(name)} is not an image or a .zip of images",
                               status=415)
        return
    # An empty image is kept: the walk records it and its row says "empty file (0 bytes)".
    cap = store.settings.max_file_bytes
    try:
        store.write(relative, upload.stream, what=shown(name))
    except OverCap as over:
        over_cap(shown(name), over.size, cap=cap, store=store, relative=relative)
