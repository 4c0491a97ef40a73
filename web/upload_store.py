"""The pieces an upload is stored with: the folder it goes to, its files' names made safe,
the caps it is held to, and what it left out (:class:`StoredUpload`). :mod:`web.uploads`
stores the loose files and :mod:`web.upload_zips` the archives' entries, both through a
:class:`Store`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, BinaryIO

from signdigits.config.settings import Settings, default_upload_dir
from signdigits.files.paths import real_path

_CHUNK = 1 << 20
# Deeper paths are no one's photo folders; pathlib's mkdir recurses once per level.
_MAX_DEPTH = 32
SAFE = re.compile(r"[^\w.\- ]")  # \w is Unicode: accented names stay readable
_MAX_NAME_BYTES = 255  # a file or folder name, on every common file system
_SHOWN = 60  # characters of a client's name a message echoes
# Lines of what was left out an answer carries: a zip of thousands of stray files must
# not make an answer of megabytes. The count says how many more.
LISTED = 100


class UploadRefused(ValueError):
    """The upload cannot become a job; the message is the client's one-line answer."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Upload:
    filename: str
    stream: BinaryIO


@dataclass
class StoredUpload:
    """The upload's folder, and what it did without."""

    folder: Path
    # (path in the job, error): the job's error rows for images it could not keep, as
    # the walk's own for the same files on disk ("file is N bytes, over the M-byte cap").
    error_rows: list[tuple[str, str]] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)  # one line each, the first LISTED
    left_out_count: int = 0
    images: int = 0
    # The status the upload is refused with if nothing is left to classify: the first
    # part left out's (415 for a PDF alone, 413 for an image over the cap alone).
    first_status: int = 400

    def leave_out(self, line: str, *, status: int, row: tuple[str, str] | None = None) -> None:
        """``line``: the part and why, without its outcome (added here). ``row``: the
        error row's (path in the job, error); the line names that path when it does not
        already (a zip's entry under the zip's folder, a name cleaned), so the line and
        the row can each be found from the other."""
        if not self.left_out_count:
            self.first_status = status
        self.left_out_count += 1
        if len(self.left_out) < LISTED:
            if row is None:
                outcome = "skipped"
            elif shown(row[0]) in line:
                outcome = "an error row says so"
            else:
                outcome = f"the error row {shown(row[0])} says so"
            self.left_out.append(f"{line}; {outcome}")
        if row is not None:
            self.error_rows.append(row)

    def nothing_left(self) -> UploadRefused:
        if not self.left_out_count:
            return UploadRefused("no images in the upload (send images or .zip archives of "
                                 "them)")
        first = self.left_out[0].rsplit("; ", 1)[0]
        if self.left_out_count == 1:
            return UploadRefused(f"{first}; refused", status=self.first_status)
        return UploadRefused(f"nothing in the upload can be classified: {first}, and "
                             f"{self.left_out_count - 1:,} more; refused",
                             status=self.first_status)


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
    cleaned = [SAFE.sub("_", part).strip() for part in parts if part not in ("", ".")]
    if not cleaned or not all(cleaned):
        raise UploadRefused(f"{shown(name)}: not a usable file name")
    if any(len(part.encode("utf-8", "surrogatepass")) > _MAX_NAME_BYTES for part in cleaned):
        raise UploadRefused(f"{shown(name)}: a file or folder name over {_MAX_NAME_BYTES} "
                            "bytes, longer than a file system takes; refused")
    return cleaned


def hidden_zip(name: str) -> bool:
    """Whether an uploaded zip is a system's file, skipped in silence as hidden files are:
    hidden itself (a Mac's ``._day1.zip``) or in a hidden folder (``.git/day1.zip``,
    ``__MACOSX/day1.zip``), which was unpacked while its hidden siblings were skipped."""
    parts = [part.strip() for part in name.replace("\\", "/").split("/")]
    return any(part == "__MACOSX" or (part.startswith(".") and part not in (".", ".."))
               for part in parts)


def cap_text(count: int) -> str:
    """``20 MB (20,971,520 bytes)``: a cap as people read it, and exactly."""
    return f"{count / (1024 * 1024):,.4g} MB ({count:,} bytes)"


def over_cap(what: str, size: int, *, cap: int, store: Store, relative: str) -> None:
    """An image over ``SIGNDIGITS_MAX_FILE_BYTES``: an error row with the walk's own words
    for the same file on disk (files.reading), and a line in the answer."""
    store.claim(relative, what)
    store.stored.leave_out(f"{what} is over the {cap_text(cap)} per-file cap "
                           "(SIGNDIGITS_MAX_FILE_BYTES)", status=413,
                           row=(relative, f"file is {size:,} bytes, over the {cap:,}-byte cap"))


class Store:
    """An upload's folder being written: its budget, the paths taken, what it left out."""

    def __init__(self, folder: Path, settings: Settings) -> None:
        self.folder, self.settings = folder, settings
        self.left = settings.max_unpacked_bytes  # SIGNDIGITS_MAX_UNPACKED_BYTES, all told
        self.stored = StoredUpload(folder)
        self.rows: set[str] = set()  # the error rows' paths

    def spend(self, count: int, what: str) -> None:
        self.left -= count
        if self.left < 0:
            raise UploadRefused(f"{what}: unpacks to more than SIGNDIGITS_MAX_UNPACKED_BYTES "
                                "(a zip bomb?); refused", status=413)

    def claim(self, relative: str, what: str) -> None:
        """``relative`` for an error row: a path no other file of the upload has."""
        if relative in self.rows or (self.folder / relative).exists():
            raise _same_path(what, relative)
        self.rows.add(relative)

    def write(self, relative: str, stream: IO[bytes], *, what: str,
              declared: int | None = None) -> None:
        """``what``: the file as messages name it (:func:`shown`). ``declared``: the size
        a zip's header gives. :class:`OverCap` past ``SIGNDIGITS_MAX_FILE_BYTES``, with
        nothing kept; any other failure leaves nothing of the file either."""
        target = self.folder / relative
        try:
            if relative in self.rows or target.exists():
                raise _same_path(what, relative)
            target.parent.mkdir(parents=True, exist_ok=True)
            # O_EXCL | O_NOFOLLOW: never through a link, never over a file.
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o640)
        except OSError as exc:  # a name too long, or a file where the path needs a folder
            raise UploadRefused(f"{what}: cannot be stored as {shown(relative)} "
                                f"({exc.strerror or exc})") from None
        written = spent = 0
        cap = self.settings.max_file_bytes
        out = os.fdopen(fd, "wb")
        try:
            try:
                while chunk := stream.read(_CHUNK):
                    written += len(chunk)
                    # A zip's header that lies is an attack, not a photo: checked first.
                    if declared is not None and written > declared:
                        raise UploadRefused(f"{what} unpacks to more than the {declared:,} "
                                            "bytes its zip declares; refused", status=413)
                    if written > cap:  # counted to its end, for the row's exact size
                        raise OverCap(written + _drained(stream))
                    spent += len(chunk)
                    self.spend(len(chunk), what)
                    on_our_disk(out.write, chunk)
            finally:
                on_our_disk(out.close)  # a buffered write's failure shows here
        except BaseException:
            target.unlink(missing_ok=True)  # nothing of a file left out stays on disk
            self.left += spent
            raise
        self.stored.images += 1


def _same_path(what: str, relative: str) -> UploadRefused:
    return UploadRefused(f"{what}: two files in the upload have the path {shown(relative)}")


def _drained(stream: IO[bytes]) -> int:
    count = 0
    while chunk := stream.read(_CHUNK):
        count += len(chunk)
    return count


class OverCap(Exception):
    """A file past ``SIGNDIGITS_MAX_FILE_BYTES``; ``size``, all of it."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


def on_our_disk(write, *args) -> None:
    try:
        write(*args)
    except OSError as exc:  # the server's disk (full, quota): not the client's zip
        raise DiskFailed(exc) from None


class DiskFailed(Exception):
    """A write to our own disk failed; not an OSError, which unpacking reports as the zip's."""

    def __init__(self, error: OSError) -> None:
        super().__init__(error)
        self.error = error
