"""Uploaded files and zip archives, unpacked into a fresh folder that becomes a job's.

The folder's name is chosen here (a random id under ``SIGNDIGITS_UPLOAD_DIR``); inside it
each image keeps its path (``3/IMG_1.JPG`` from a zip or a browser's folder upload stays
``3/IMG_1.JPG``) with every component cleaned. Hidden files and folders are skipped, as
the walk skips them; an empty image is kept, so that its row says so, as the walk's does.
Of two zips or more, each unpacks under a folder named after it (``day1/IMG_0001.jpg``,
or ``3/day1/IMG_0001.jpg`` below a label folder), so two cameras' ``IMG_0001.jpg`` are
two images. A path that would climb out, a link, a file that is neither an image nor a
zip, or an archive that unpacks to more than ``SIGNDIGITS_MAX_UNPACKED_BYTES`` (a zip
bomb) refuses the whole upload and leaves nothing behind.
"""

from __future__ import annotations

import lzma
import os
import re
import shutil
import stat
import uuid
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, BinaryIO

from signdigits.config.settings import Settings, default_upload_dir
from signdigits.files.paths import is_image_name, real_path

_CHUNK = 1 << 20
_MAX_ZIP_ENTRIES = 200_000
# Deeper paths are no one's photo folders; pathlib's mkdir recurses once per level.
_MAX_DEPTH = 32
_SAFE = re.compile(r"[^\w.\- ]")  # \w is Unicode: accented names stay readable
_MAX_NAME_BYTES = 255  # a file or folder name, on every common file system
_SHOWN = 60  # characters of a client's name a message echoes
_LABELS = frozenset("0123456789")  # label folders (db.labels): a zip's folder goes below


class UploadRefused(ValueError):
    """The upload cannot become a job; the message is the client's one-line answer."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Upload:
    filename: str
    stream: BinaryIO


def upload_root(settings: Settings) -> Path:
    """``SIGNDIGITS_UPLOAD_DIR``, or ``uploads/`` beside a SQLite database (else the data
    folder's)."""
    if settings.upload_dir is not None:
        return real_path(settings.upload_dir)
    url = settings.database_url
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        return real_path(url.removeprefix("sqlite:///")).parent / "uploads"
    return real_path(default_upload_dir())


def shown(name: str) -> str:
    """A client's name quoted for a one-line message, its middle cut past 60 characters."""
    if len(name) > _SHOWN:
        name = f"{name[:40]}...{name[-16:]}"
    return repr(name)


def clean_relative(name: str) -> str:
    """A client's path made safe to join under our folder, or :class:`UploadRefused`
    (hidden parts too: see :func:`upload_path`)."""
    parts = _clean_parts(name)
    if any(part.startswith(".") for part in parts):
        raise UploadRefused(f"{shown(name)}: not a usable file name")
    return "/".join(parts)


def upload_path(name: str) -> str | None:
    """Where an uploaded file or zip entry goes, or None for a hidden one (``.DS_Store``,
    ``.git/...``, a Mac's ``._IMG_1.jpg``): skipped, as the walk skips them."""
    parts = _clean_parts(name)
    return None if any(part.startswith(".") for part in parts) else "/".join(parts)


def _clean_parts(name: str) -> list[str]:
    if not name.strip():
        raise UploadRefused("a file without a name (its filename is empty); refused")
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if not parts or name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise UploadRefused(f"{shown(name)}: absolute paths are refused")
    if ".." in parts:
        raise UploadRefused(f"{shown(name)}: a path that climbs out of the upload is refused")
    if len(parts) > _MAX_DEPTH:
        raise UploadRefused(f"{shown(name)}: nested more than {_MAX_DEPTH} folders deep; "
                            "refused")
    cleaned = [_SAFE.sub("_", part).strip() for part in parts if part not in ("", ".")]
    if not cleaned or not all(cleaned):
        raise UploadRefused(f"{shown(name)}: not a usable file name")
    if any(len(part.encode("utf-8", "surrogatepass")) > _MAX_NAME_BYTES for part in cleaned):
        raise UploadRefused(f"{shown(name)}: a file or folder name over {_MAX_NAME_BYTES} "
                            "bytes, longer than a file system takes; refused")
    return cleaned


def store_uploads(uploads: Iterable[Upload], *, settings: Settings) -> Path:
    """Write every upload into a new folder; its path. Nothing remains if one is refused."""
    folder = upload_root(settings) / uuid.uuid4().hex
    try:
        folder.mkdir(mode=0o700, parents=True)  # its photos are the uploader's alone
    except OSError as exc:
        raise _cannot_store(exc) from None
    budget = _Budget(settings.max_unpacked_bytes)
    uploads = list(uploads)
    # One zip's paths are the images' (beside any files sent with it). Of two zips or
    # more, each gets a folder of its own: two cameras' IMG_0001.jpg are two images.
    several = sum(_zip_name(u.filename or "") and not _hidden_leaf(u.filename or "")
                  for u in uploads) > 1
    zips = _ZipFolders() if several else None
    try:
        images = 0
        for upload in uploads:
            images += _store_one(upload, folder, settings=settings, budget=budget, zips=zips)
        if not images:
            raise UploadRefused("no images in the upload (send images or .zip archives of them)")
    except (OSError, _DiskFailed) as exc:  # the disk, not the request: full, or gone
        shutil.rmtree(folder, ignore_errors=True)
        raise _cannot_store(exc.error if isinstance(exc, _DiskFailed) else exc) from None
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


def _cannot_store(exc: OSError) -> UploadRefused:
    # Its reason only: the OSError's text would name the server's own folder.
    reason = exc.strerror or exc.__class__.__name__
    return UploadRefused(f"the server cannot store uploads now ({reason}); nothing was recorded",
                         status=503)


class _Budget:
    def __init__(self, limit: int) -> None:
        self.left = limit

    def spend(self, count: int, what: str) -> None:
        self.left -= count
        if self.left < 0:
            raise UploadRefused(f"{what}: unpacks to more than SIGNDIGITS_MAX_UNPACKED_BYTES "
                                "(a zip bomb?); refused", status=413)


class _ZipFolders:
    """The folder each zip of a several-zip upload unpacks under: its name without
    ``.zip``, made unique (``day1``, ``day1 (2)``)."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def name_for(self, zip_name: str) -> str:
        leaf = zip_name.replace("\\", "/").rsplit("/", 1)[-1][:-4]
        base = _SAFE.sub("_", leaf).strip().lstrip(".")[:200] or "zip"
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


def _zip_name(name: str) -> bool:
    return name.lower().endswith(".zip")


def _hidden_leaf(name: str) -> bool:
    return name.replace("\\", "/").rsplit("/", 1)[-1].strip().startswith(".")


def _store_one(upload: Upload, folder: Path, *, settings: Settings, budget: _Budget,
               zips: _ZipFolders | None) -> int:
    name = upload.filename or ""
    if _zip_name(name):  # its own name is never a path here
        if _hidden_leaf(name):
            return 0  # a Mac's ._day1.zip, not a zip
        return _unpack_zip(upload, folder, settings=settings, budget=budget,
                           under=zips.name_for(name) if zips else None)
    relative = upload_path(name)  # refuses climbing, an empty name, ... before anything
    if relative is None:
        return 0  # hidden: a system's file (.DS_Store), never the user's photo
    if not is_image_name(PurePosixPath(relative).name):
        raise UploadRefused(f"{shown(name)} is not an image or a .zip of images; refused",
                            status=415)
    # An empty image is kept: the walk records it and its row says "empty file (0 bytes)".
    _write(folder, relative, upload.stream, cap=settings.max_file_bytes, budget=budget,
           what=shown(name))
    return 1


def _unpack_zip(upload: Upload, folder: Path, *, settings: Settings, budget: _Budget,
                under: str | None) -> int:
    name = upload.filename
    try:
        archive = zipfile.ZipFile(upload.stream)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise UploadRefused(f"{shown(name)} is not a readable zip archive") from None
    with archive:
        entries = archive.infolist()
        if len(entries) > _MAX_ZIP_ENTRIES:
            raise UploadRefused(f"{shown(name)} holds over {_MAX_ZIP_ENTRIES:,} entries; "
                                "refused")
        declared = sum(entry.file_size for entry in entries)
        if declared > budget.left:
            budget.spend(declared, shown(name))
        images = 0
        for entry in entries:
            if entry.is_dir():
                continue
            what = f"{shown(name)}: {shown(entry.filename)}"
            relative = upload_path(entry.filename)  # refuses climbing before anything else
            if stat.S_ISLNK(entry.external_attr >> 16):
                raise UploadRefused(f"{what} is a link; refused")
            if relative is None or relative.split("/")[0] == "__MACOSX" or not is_image_name(
                    PurePosixPath(relative).name):
                continue  # an archive's other files are not the user's photos
            if entry.file_size > settings.max_file_bytes:
                raise UploadRefused(f"{what} is over the {_cap(settings.max_file_bytes)} "
                                    "per-file cap (SIGNDIGITS_MAX_FILE_BYTES); refused",
                                    status=413)
            try:
                with archive.open(entry) as data:
                    # The header's size can lie: the cap is enforced on what comes out.
                    _write(folder, _under(under, relative) if under else relative, data,
                           cap=settings.max_file_bytes, declared=entry.file_size,
                           budget=budget, what=what)
            except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError,
                    NotImplementedError, RuntimeError, zlib.error, lzma.LZMAError) as exc:
                # An OSError's text names the server's own path: its reason is enough.
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
                raise UploadRefused(f"{what}: cannot unpack it: {reason}") from None
            images += 1
        return images


def _cap(count: int) -> str:
    """``20 MB (20,971,520 bytes)``: a cap as people read it, and exactly."""
    return f"{count / (1024 * 1024):,.4g} MB ({count:,} bytes)"


def _write(folder: Path, relative: str, stream: IO[bytes], *, cap: int, budget: _Budget,
           what: str, declared: int | None = None) -> int:
    """``what``: the file as messages name it (:func:`shown`). ``declared``: the size
    a zip's header gives."""
    target = folder / relative
    try:
        if target.exists():
            raise UploadRefused(f"{what}: two files in the upload have the path "
                                f"{shown(relative)}")
        target.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL | O_NOFOLLOW: never through a link, never over a file.
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o640)
    except OSError as exc:  # a name too long, or a file where the path needs a folder
        raise UploadRefused(f"{what}: cannot be stored as {shown(relative)} "
                            f"({exc.strerror or exc})") from None
    written = 0
    out = os.fdopen(fd, "wb")
    try:
        while chunk := stream.read(_CHUNK):
            written += len(chunk)
            budget.spend(len(chunk), what)
            if written > cap:
                raise UploadRefused(f"{what} is over the {_cap(cap)} per-file cap "
                                    "(SIGNDIGITS_MAX_FILE_BYTES); refused", status=413)
            if declared is not None and written > declared:
                raise UploadRefused(f"{what} unpacks to more than the {declared:,} bytes "
                                    "its zip declares; refused", status=413)
            _on_our_disk(out.write, chunk)
    finally:
        _on_our_disk(out.close)  # a buffered write's failure shows here
    return written


def _on_our_disk(write, *args) -> None:
    try:
        write(*args)
    except OSError as exc:  # the server's disk (full, quota): not the client's zip
        raise _DiskFailed(exc) from None


class _DiskFailed(Exception):
    """A write to our own disk failed; not an OSError, which unpacking reports as the zip's."""

    def __init__(self, error: OSError) -> None:
        super().__init__(error)
        self.error = error
