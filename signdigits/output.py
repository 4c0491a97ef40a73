"""Results as a table, CSV or JSON, streamed: a million rows never sit in memory."""

from __future__ import annotations

import csv
import json
import sys
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.orm import Session

from db.models import Job
from db.queries import iter_results

COLUMNS = ["path", "digit", "confidence", "below_threshold", "error", "status",
           "model_version", "worker", "finished_at"]


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


@contextmanager
def _opened(output: Path | None):
    if output is None:
        yield sys.stdout
    else:
        with output.open("w", newline="", encoding="utf-8") as handle:
            yield handle


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
            writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: "" if v is None else v for k, v in row.items()})
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
                # A file name may hold a newline; the table keeps one image per line.
                path = row["path"].replace("\n", "\\n")
                tail = path + (f"  [{row['error']}]" if row["error"] else "")
                out.write(f"{d:>5} {conf:>7} {low:>3}  {tail}\n")
                count += 1
    return count
