"""A job's answers checked against labels people already have: folders named ``0``-``9``
(an image's path starting ``3/`` is labelled 3) or a ``path,digit`` CSV.

What counts: classified photos with one hand or none (a photo where no hand was found
is a wrong answer); photos of several hands have a digit per hand and no single answer
to check, and error rows no answer at all: both are counted apart, never in the figures.
The model's answers are checked (what its threshold decides on); the answers after the
people's reviews are given beside.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import String, cast, func, or_, select
from sqlalchemy.orm import Session

from signdigits.db.export import reviewed_digit
from signdigits.db.models import Image, ImageStatus, Job
from signdigits.db.reviews import with_current_review

LABEL_FOLDERS = tuple(f"{d}/" for d in range(10))
NO_HAND = 10  # the confusion matrix's last column: no hand found, no answer
BINS = 1000  # the threshold curve's resolution: thresholds on a 0.001 grid are exact
MAX_LABELS_FILE = 64 << 20


class LabelsError(ValueError):
    """A labels file that cannot be read: one line saying where."""


def label_of(path: str) -> int | None:
    """The label a folder name gives: the path's first component when it is 0-9."""
    head = path[:2]
    return int(head[0]) if head in LABEL_FOLDERS else None


def _first_two():
    return func.substr(Image.path, 1, 2)


def labelled():
    """The row is under a label folder (its path starts ``0/`` to ``9/``)."""
    return _first_two().in_(LABEL_FOLDERS)


def label_is(digit: int):
    return _first_two() == f"{digit}/"


def labelled_wrong() -> tuple:
    """Labelled, classified one-hand (or no-hand) rows whose model answer is not the label."""
    return (labelled(), Image.status == ImageStatus.DONE,
            or_(Image.hand_count.is_(None), Image.hand_count <= 1),
            or_(Image.digit.is_(None), cast(Image.digit, String) != func.substr(Image.path, 1, 1)))


def read_labels_csv(text: str) -> dict[str, int]:
    """``path,digit`` lines (a header line is skipped) as path -> digit."""
    labels: dict[str, int] = {}
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or not "".join(row).strip():
            continue
        if len(row) != 2:
            raise LabelsError(f"line {number}: expected path,digit, got {len(row)} fields")
        path, digit = row[0].strip(), row[1].strip()
        if number == 1 and not digit.isdigit():
            continue  # a header
        if digit not in {str(d) for d in range(10)}:
            raise LabelsError(f"line {number}: the digit must be 0-9, not {digit[:20]!r}")
        labels[path.removeprefix("./")] = int(digit)
    if not labels:
        raise LabelsError("no path,digit line in it")
    return labels


@dataclass
class Evaluation:
    threshold: float
    counted: int = 0  # labelled photos with one hand or none
    right: int = 0
    several_hands: int = 0  # labelled, not counted
    errors: int = 0  # labelled error rows, not counted
    pending: int = 0  # labelled rows not read yet
    cancelled: int = 0  # labelled rows the job's cancel left unread
    unlabelled: int = 0  # rows of the job with no label
    kept: int = 0  # counted rows at or above the job's threshold
    kept_right: int = 0
    final_right: int = 0  # with the reviews applied, over counted rows not marked unusable
    final_counted: int = 0
    matrix: list[list[int]] = field(default_factory=lambda: [[0] * 11 for _ in range(10)])
    by_confidence: list[list[int]] = field(
        default_factory=lambda: [[0, 0] for _ in range(BINS)])  # [counted, right] per bin

    def at(self, threshold: float) -> tuple[int, int]:
        """(kept, right among them) at ``threshold``, from the 0.001 bins."""
        start = min(BINS, max(0, round(threshold * BINS)))
        kept = sum(b[0] for b in self.by_confidence[start:])
        return kept, sum(b[1] for b in self.by_confidence[start:])

    def add(self, *, label: int, status: str, digit: int | None, confidence: float | None,
            below: bool | None, hand_count: int | None, review) -> None:
        if status == ImageStatus.ERROR:
            self.errors += 1
            return
        if status == ImageStatus.CANCELLED:
            self.cancelled += 1
            return
        if status != ImageStatus.DONE:
            self.pending += 1
            return
        if (hand_count or 0) > 1:
            self.several_hands += 1
            return
        self.counted += 1
        right = digit == label
        self.right += right
        self.matrix[label][NO_HAND if digit is None else digit] += 1
        if not below:
            self.kept += 1
            self.kept_right += right
        cell = self.by_confidence[min(BINS - 1, max(0, int((confidence or 0.0) * BINS)))]
        cell[0] += 1
        cell[1] += right
        if review is None or not review.unusable:
            final = digit if review is None else reviewed_digit(review)
            self.final_counted += 1
            self.final_right += final == label


def evaluate(session: Session, *, job: Job, labels: Mapping[str, int] | None = None
             ) -> Evaluation:
    """The job's answers against the folder labels (``labels`` None) or ``labels``."""
    columns = select(Image.path, Image.status, Image.digit, Image.confidence,
                     Image.below_threshold, Image.hand_count)
    query = with_current_review(columns).where(Image.job_id == job.id)
    if labels is None:
        query = query.where(labelled())
    result = Evaluation(threshold=job.threshold)
    for path, status, digit, confidence, below, hand_count, review in session.execute(
            query.execution_options(yield_per=5000)):
        label = label_of(path) if labels is None else labels.get(path)
        if label is None:
            result.unlabelled += 1
            continue
        result.add(label=label, status=status, digit=digit, confidence=confidence,
                   below=below, hand_count=hand_count, review=review)
    if labels is None:
        result.unlabelled = session.scalar(
            select(func.count()).select_from(Image)
            .where(Image.job_id == job.id, ~labelled())) or 0
    return result
