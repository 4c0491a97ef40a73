"""Results as a table, CSV or JSON, streamed: a million rows never sit in memory.

Each format is safe for where it goes: JSON keeps every value exact; CSV neutralises text
cells a spreadsheet would run as a formula and quotes any line break; the table escapes
every control character, since it goes to a terminal.
"""

from __future__ import annotations

import csv
import json
import os
import stat
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.orm import Session

from signdigits.db.export import COLUMNS, CSV_LINE_END, csv_row, result_record
from signdigits.db.models import Job
from signdigits.db.results import iter_results
from signdigits.files.names import printable


class OutputError(OSError):
    """The ``--output`` file cannot be written; the message names it."""


def check_writable(output: Path) -> None:
    """Raise :class:`OutputError` now if ``output`` cannot be created, before any query."""
    folder = output.parent
    if not folder.is_dir():
        raise OutputError(f"--output {output}: no folder {folder}")
    if output.is_dir():
        raise OutputError(f"--output {output}: is a folder")
    try:
        found = os.stat(output)
    except OSError:
        found = None
    if found is not None and (not stat.S_ISREG(found.st_mode) or _our_stream(found)):
        # Written into, not replaced (see _opened): /dev/stdout's folder is not the point.
        if not os.access(output, os.W_OK):
            raise OutputError(f"--output {output}: not writable")
        return
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"--output {output}: folder {folder} is not writable")


@contextmanager
def _opened(output: Path | None):
    """stdout, or a temporary file beside ``output`` renamed onto it only once complete.

    A failure halfway (database gone, disk full, Ctrl-C) then leaves any earlier file at
    ``output`` as it was, never half of a new one.
    """
    if output is None:
        if sys.stdout is None:  # started with stdout closed (`>&-`)
            raise OutputError("standard output is closed: pass --output FILE")
        yield sys.stdout
        return
    # A link is followed (its target gets the new file, the link stays a link), and what
    # is not a regular file (/dev/null, a FIFO, /dev/stdout into a pipe) is written into:
    # renaming over it replaced the device node itself with a file (as root, /dev/null
    # too). The path as given is opened: realpath makes /dev/stdout a pipe:[N] that no
    # one can open.
    try:
        found = os.stat(output)  # follows links
    except FileNotFoundError:
        found = None
    except OSError as exc:
        raise OutputError(f"--output {output}: {exc.strerror}") from None
    if found is not None and (stream := _our_stream(found)) is not None:
        yield stream  # `-o /dev/stdout >> file`: appended as the shell arranged, not replaced
        return
    if found is not None and not stat.S_ISREG(found.st_mode):
        try:
            with open(output, "w", newline="", encoding="utf-8") as handle:
                yield handle
        except OSError as exc:
            raise OutputError(f"--output {output}: {exc.strerror}") from None
        return
    output = Path(os.path.realpath(output))
    try:
        descriptor, temporary = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.")
    except OSError as exc:
        raise OutputError(f"--output {output}: {exc.strerror}") from None
    try:
        with open(descriptor, "w", newline="", encoding="utf-8") as handle:
            yield handle
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, output)
    except OSError as exc:  # a full disk, a quota: said with the file it was for
        Path(temporary).unlink(missing_ok=True)
        if isinstance(exc, OutputError):
            raise
        raise OutputError(f"--output {output}: {exc.strerror or exc}") from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _our_stream(found: os.stat_result):
    """sys.stdout or sys.stderr if ``found`` is the very file one of them writes to."""
    for stream in (sys.stdout, sys.stderr):
        try:
            ours = os.fstat(stream.fileno())
        except (OSError, ValueError):  # closed, or not a real file (a test's capture)
            continue
        if (ours.st_dev, ours.st_ino) == (found.st_dev, found.st_ino):
            return stream
    return None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_results(session: Session, *, job: Job, digit: int | None, below_threshold: bool,
                  errors: bool, fmt: str, output: Path | None,
                  thresholds: dict[str, float | None]) -> int:
    rows = (
        result_record(image, review, thresholds)
        for image, review in iter_results(session, job_id=job.id, digit=digit,
                                  below_threshold=below_threshold, errors=errors)
    )
    count = 0
    with _opened(output) as out:
        if fmt == "csv":
            # CRLF line ends (RFC 4180): with "\n" alone, csv quotes a "\n" in a name but
            # not a "\r", and every reader then splits that row in two.
            writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator=CSV_LINE_END)
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
            # The reviewed and final digits come after the model's columns, before the
            # path, which has no fixed width.
            out.write(f"# job {job.id}: {printable(job.name)}\n")
            out.write(f"{'digit':>5} {'conf':>7} {'low':>3} {'rev':>3} {'final':>5}"
                      "  path / error\n")
            for row in rows:
                # A photo of several hands has no one digit: its digits, left to right.
                d = _shown(row["digit"], row["digits"])
                conf = "-" if row["confidence"] is None else f"{row['confidence']:.4f}"
                low = "yes" if row["below_threshold"] else ""
                # One image per line, and nothing from a name reaches the terminal raw.
                # Why there is no digit: the error, or how the photo was read (no hand).
                why = row["error"] or (row["reading"] if d == "-" else None)
                tail = printable(row["path"]) + (f"  [{printable(why)}]" if why else "")
                rev = _shown(row["reviewed_digit"], row["reviewed_digits"])
                final = _shown(row["final_digit"], row["final_digits"])
                out.write(f"{d:>5} {conf:>7} {low:>3} {rev:>3} {final:>5}  {tail}\n")
                count += 1
            filters = [f for f, on in (("--digit", digit is not None),
                                       ("--below-threshold", below_threshold),
                                       ("--errors", errors)) if on]
            if not count and filters:
                both = " together (an image must match each)" if len(filters) > 1 else ""
                out.write(f"# no image matches {' '.join(filters)}{both}\n")
    return count


def _shown(digit: int | None, digits: str | None) -> str:
    """A table cell: the digit, else the several hands' digits ("407"), else "-"."""
    return str(digit) if digit is not None else digits or "-"
