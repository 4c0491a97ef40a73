"""Results as a table, CSV or JSON, streamed: a million rows never sit in memory.

Each format is safe for where it goes: JSON keeps every value exact; CSV neutralises text
cells a spreadsheet would run as a formula and quotes any line break; the table escapes
every control character, since it goes to a terminal.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.orm import Session

from db.models import Job
from db.queries import iter_results
from signdigits.console import printable

COLUMNS = ["path", "digit", "confidence", "below_threshold", "error", "status",
           "model_version", "worker", "finished_at"]
# Cells that hold text from outside (file names, error messages, host names): the only
# ones a spreadsheet could read as a formula. Numbers and our own words are left alone.
TEXT_COLUMNS = ("path", "error", "model_version", "worker")
# Excel, LibreOffice and Google Sheets start a formula (or DDE command) with these.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class OutputError(OSError):
    """The ``--output`` file cannot be written; the message names it."""


def result_record(image) -> dict:
    return {
        "path": image.path,
        "digit": image.digit,
        "confidence": None if image.confidence is None else round(image.confidence, 6),
        "below_threshold": image.below_threshold,
        "error": image.error,
        "status": image.status,
        "model_version": image.model_version,
        "worker": image.worker,
        "finished_at": image.finished_at.isoformat() if image.finished_at else None,
    }


def spreadsheet_safe(value: str) -> str:
    """A text cell no spreadsheet evaluates: a leading ``'`` before a formula character.

    ``=HYPERLINK(...)`` as a file name would otherwise be a live link (or with DDE, a
    command) in the sheet of whoever opens the results. The ``'`` is visible in the CSV.
    """
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def csv_row(record: dict) -> dict:
    return {
        key: "" if value is None else spreadsheet_safe(value) if key in TEXT_COLUMNS else value
        for key, value in record.items()
    }


def check_writable(output: Path) -> None:
    """Raise :class:`OutputError` now if ``output`` cannot be created, before any query."""
    folder = output.parent
    if not folder.is_dir():
        raise OutputError(f"--output {output}: no folder {folder}")
    if output.is_dir():
        raise OutputError(f"--output {output}: is a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"--output {output}: folder {folder} is not writable")


@contextmanager
def _opened(output: Path | None):
    """stdout, or a temporary file beside ``output`` renamed onto it only once complete.

    A failure halfway (database gone, disk full, Ctrl-C) then leaves any earlier file at
    ``output`` as it was, never half of a new one.
    """
    if output is None:
        yield sys.stdout
        return
    try:
        descriptor, temporary = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.")
    except OSError as exc:
        raise OutputError(f"--output {output}: {exc.strerror}") from None
    try:
        with open(descriptor, "w", newline="", encoding="utf-8") as handle:
            yield handle
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, output)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_results(session: Session, *, job: Job, digit: int | None, below_threshold: bool,
                  errors: bool, fmt: str, output: Path | None) -> int:
    rows = (
        result_record(image)
        for image in iter_results(session, job_id=job.id, digit=digit,
                                  below_threshold=below_threshold, errors=errors)
    )
    count = 0
    with _opened(output) as out:
        if fmt == "csv":
            # CRLF line ends (RFC 4180): with "\n" alone, csv quotes a "\n" in a name but
            # not a "\r", and every reader then splits that row in two.
            writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\r\n")
            writer.writeheader()
            for row in rows:
                writer.writerow(csv_row(row))
                count += 1
        elif fmt == "json":
            out.write("[")
            for row in rows:
                out.write(("," if count else "") + "\n  " + json.dumps(row, ensure_ascii=False))
                count += 1
            out.write("\n]\n")
        else:
            out.write(f"{'digit':>5} {'conf':>7} {'low':>3}  path / error\n")
            for row in rows:
                d = "-" if row["digit"] is None else str(row["digit"])
                conf = "-" if row["confidence"] is None else f"{row['confidence']:.4f}"
                low = "yes" if row["below_threshold"] else ""
                # One image per line, and nothing from a name reaches the terminal raw.
                tail = printable(row["path"]) + (
                    f"  [{printable(row['error'])}]" if row["error"] else "")
                out.write(f"{d:>5} {conf:>7} {low:>3}  {tail}\n")
                count += 1
    return count
