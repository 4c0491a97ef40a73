"""``export-reviews``: reviewed images as digit folders, for ``signdigits train --data``.

Each image whose current review is one digit becomes ``OUT/<digit>/<job8>-<image id>-<name>``
(a hard link to the job's file when the file system allows, else a copy read through the
workers' :class:`files.reading.JobFolder`, so nothing outside the job's folder is taken),
and one row of ``OUT/reviews.csv``: ``file, job, path, reviewer, digit, reviewed_at,
model_digit, confidence``. ``training.data`` reads that manifest to group the photos by
signer: runs of the photo counter of the original name, within each job. A photo whose
hands were reviewed one by one as different digits fits no digit folder and is counted,
not exported (``adapt`` learns from its hands).
"""

from __future__ import annotations

import csv
import os
import re
import stat
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from signdigits.db.export import spreadsheet_safe
from signdigits.db.models import as_utc
from signdigits.db.reviews import reviewed_images
from signdigits.files.names import printable
from signdigits.files.reading import ImageError, JobFolder, unchanged_since_review
from signdigits.training.data import REVIEW_MANIFEST

MANIFEST_COLUMNS = ["file", "job", "path", "reviewer", "digit", "reviewed_at", "model_digit",
                    "confidence"]
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_NAME_MAX = 255  # bytes in a file name on ext4, XFS, btrfs and tmpfs; the names are ASCII


class ExportError(OSError):
    """The export cannot be written; the message names the folder."""


@dataclass
class ExportSummary:
    written: int = 0
    linked: int = 0
    skipped: int = 0  # a file gone or refused since its job ran
    several_digits: int = 0  # reviewed hand by hand: no one digit folder holds the photo


def check_out_folder(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"--out {out}: exists and is not an empty folder (choose a new one)")
    if not out.parent.is_dir():
        raise ExportError(f"--out {out}: no folder {out.parent}")


def export_reviews(session, *, job_ids: list[str], out: Path, max_bytes: int,
                   allowed_roots: list[Path], warn=print) -> ExportSummary:
    check_out_folder(out)
    out.mkdir(exist_ok=True)
    summary = ExportSummary()
    folders: dict[str, JobFolder] = {}
    # One photo in several jobs may be answered differently; both go to training, on
    # either side of the split, so a person is told (file -> first job and digit).
    answered: dict[str, tuple[str, int | None]] = {}
    with (out / REVIEW_MANIFEST).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        for image, job, review in reviewed_images(session, job_ids=job_ids):
            if review.digit is None:
                # Hands reviewed one by one with different digits: a digit folder says one
                # digit a photo. `adapt` learns from each hand (training.job_photos).
                summary.several_digits += 1
                continue
            folder = folders.setdefault(job.id, JobFolder(job.root, allowed_roots=allowed_roots))
            relative = os.fsdecode(image.raw_path) if image.raw_path else image.path
            name = _export_name(job.id, image.id, image.path)
            target = out / str(review.digit) / name
            target.parent.mkdir(exist_ok=True)
            source = os.path.realpath(os.path.join(folder.real_root, relative))
            try:
                summary.linked += _place(folder, relative, target,
                                         max_bytes=max_bytes, reviewed_at=review.reviewed_at)
            except (ImageError, OSError) as exc:
                warn(f"skipped {job.id[:8]} {printable(image.path)}: {exc}")
                summary.skipped += 1
                continue
            summary.written += 1
            first = answered.setdefault(source, (job.id, review.digit))
            if first[1] != review.digit:
                warn(f"{printable(image.path)}: reviewed as {first[1]} in job {first[0][:8]} "
                     f"and as {review.digit} in job {job.id[:8]}; both exported")
            writer.writerow({
                "file": f"{review.digit}/{name}", "job": job.id,
                "path": spreadsheet_safe(image.path), "reviewer": spreadsheet_safe(review.reviewer),
                "digit": review.digit, "reviewed_at": as_utc(review.reviewed_at).isoformat(),
                "model_digit": image.digit, "confidence": image.confidence})
    return summary


def _export_name(job_id: str, image_id: int, path: str) -> str:
    """``<job8>-<image id>-<name>``, ASCII, its stem cut to fit a file name's 255 bytes.

    A long original name had made the export skip the photo ("File name too long").
    """
    prefix = f"{job_id[:8]}-{image_id}-"
    stem, suffix = os.path.splitext(_UNSAFE.sub("_", Path(path).name))
    return prefix + stem[: _NAME_MAX - len(prefix) - len(suffix)] + suffix


def _place(folder: JobFolder, relative: str, target: Path, *, max_bytes: int,
           reviewed_at: datetime) -> bool:
    """Hard-link the job's file at ``target`` (True) or copy its bytes (False).

    A file written after its review is not what the person looked at: exported, another
    photo went into training under the reviewed digit (or a text file, which then failed
    the training). ``adapt`` leaves it out by the same check."""
    if not folder.allowed:
        raise ImageError("the job's folder is outside SIGNDIGITS_ALLOWED_ROOTS (refused)")
    real, found = unchanged_since_review(folder, relative, reviewed_at)
    if found is not None:  # else the read below refuses it, as workers do
        try:
            if stat.S_ISREG(found.st_mode):
                os.link(real, target, follow_symlinks=False)
                return True
        except OSError:
            pass  # another file system, or not allowed to link: copy instead
    target.write_bytes(folder.read(relative, max_bytes=max_bytes))
    return False
