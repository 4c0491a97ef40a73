"""A job's photos as the classifier sees them: the features of each hand with an answer.

``adapt`` and ``compare`` read the jobs' photos again, through the workers' own path
(:class:`files.reading.JobFolder`, :func:`serving.reader.look`, the hand finder,
:func:`serving.hands.features.hand_features`): the stored rows keep the landmarks in two
dimensions only, and the features need the third.

A photo answered as a whole (one digit, or none yet) gives one example when exactly one
hand is found again; with no hand or several it is left out, and counted. A photo
reviewed hand by hand gives one example per hand answered with a digit, each matched to
the stored hand it answers by :func:`matched_hands`; a hand it cannot match is left out
("hand not found again"), never guessed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from signdigits.db.models import Image, Job
from signdigits.files.reading import (
    ChangedSinceReview,
    ImageError,
    JobFolder,
    unchanged_since_review,
)
from signdigits.serving.hands.finder import MAX_HANDS, Hand
from signdigits.serving.model_input import FEATURE_COUNT

Progress = Callable[[int, int], None]
# A photo's answer: a digit for the whole photo, one per hand in reading order (None:
# "not a hand") for a photo reviewed hand by hand, or None (not reviewed).
Answer = int | list[int | None] | None
Box = tuple[float, float, float, float]
SAME_BOX_IOU = 0.5  # or each box's centre inside the other: the same hand found again
# Why a photo or a hand gave no example. The first four count photos, the last two hands.
UNREADABLE, NO_HAND, SEVERAL = "unreadable now", "no hand", "several hands"
CHANGED = "changed since it was reviewed"  # export-reviews' own check (files.reading)
NOT_FOUND, NOT_A_HAND = "hand not found again", "not a hand"


@dataclass
class JobPhotos:
    """One example per hand read with its answer: the image it is on, its place among the
    photo's hands (reading order), its features and (when known) its digit."""

    image_ids: list[int] = field(default_factory=list)
    places: list[int] = field(default_factory=list)  # the hand's place; 0: a one-hand photo
    x: np.ndarray = field(default_factory=lambda: np.zeros((0, FEATURE_COUNT), np.float32))
    digits: list[int | None] = field(default_factory=list)  # the review's digit, if any
    left_out: dict[str, int] = field(default_factory=dict)  # why -> how many (see above)

    def __len__(self) -> int:
        return len(self.image_ids)

    @property
    def photos(self) -> int:
        """How many photos the examples come from."""
        return len(set(self.image_ids))

    def leave_out(self, why: str, count: int = 1) -> None:
        if count:
            self.left_out[why] = self.left_out.get(why, 0) + count


def review_answer(review: Any) -> Answer:
    """A review's answer (``db.models.Review``): per hand when it reviewed the hands."""
    return list(review.hand_digits) if review.hand_digits is not None else review.digit


def matched_hands(stored: Sequence[dict[str, Any]], found: Sequence[Hand], *, scale: float,
                  max_hands: int = MAX_HANDS) -> list[Hand | None]:
    """For each stored hand (``images.hand``'s records, in reading order, boxes in the
    photo's own pixels), the hand found again that it is, or None.

    The hands found again are chosen and put in reading order as the workers do
    (:func:`serving.reader.choose_hands`); a stored hand is
    matched to the one at its place when there are as many, its box agrees (IoU at least
    :data:`SAME_BOX_IOU`, or each centre inside the other box, on the photo's own pixels:
    ``scale`` is the decoded copy's pixels per photo pixel) and neither box agrees with
    another hand's. Anything else is not told apart, and not guessed."""
    from signdigits.serving.reader import choose_hands

    kept = [found[i] for i in choose_hands(found, max_hands).read]
    again = [_box(v / scale for v in hand.box) for hand in kept]
    try:
        boxes = [_box(float(v) for v in record["box"]) for record in stored]
    except (KeyError, TypeError, ValueError):  # a stored hand without its box
        return [None] * len(stored)
    if len(again) != len(boxes):
        return [None] * len(boxes)
    agree = [[_same_box(s, a) for a in again] for s in boxes]
    return [kept[i] if agree[i][i] and sum(agree[i]) == 1
            and sum(row[i] for row in agree) == 1 else None for i in range(len(boxes))]


def _box(values: Iterable[float]) -> Box:
    x0, y0, x1, y1 = values
    return x0, y0, x1, y1


def _same_box(a: Box, b: Box) -> bool:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    shared = max(width, 0.0) * max(height, 0.0)
    union = _area(a) + _area(b) - shared
    if union > 0 and shared / union >= SAME_BOX_IOU:
        return True
    return _inside(_centre(a), b) and _inside(_centre(b), a)


def _area(box: Box) -> float:
    return max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0)


def _centre(box: Box) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def _inside(point: tuple[float, float], box: Box) -> bool:
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


def read_job_photos(items: Iterable[tuple[Image, Job, Answer]], *, total: int,
                    hand_models: Path, max_bytes: int, allowed_roots: list[Path],
                    max_pixels: int, max_hands: int = MAX_HANDS,
                    reviewed_at: Mapping[int, datetime] | None = None,
                    progress: Progress | None = None) -> JobPhotos:
    """The features of each (image, its job, its answer): one example per photo with
    exactly one hand, or per matched hand answered with a digit (see the module).

    A photo whose file was written after ``reviewed_at[image id]`` is left out
    (:data:`CHANGED`): its answer is for another photo."""
    from signdigits.serving.hands.features import hand_features
    from signdigits.serving.hands.finder import HandFinder
    from signdigits.serving.reader import choose_hands, look

    finder = HandFinder(hand_models, max_hands=max_hands)
    folders: dict[str, JobFolder] = {}
    photos = JobPhotos()
    rows: list[np.ndarray] = []

    def example(image: Image, place: int, digit: int | None, hand: Hand) -> None:
        photos.image_ids.append(image.id)
        photos.places.append(place)
        photos.digits.append(digit)
        rows.append(hand_features(hand.landmarks.points))

    for done, (image, job, answer) in enumerate(items, start=1):
        folder = folders.setdefault(job.id, JobFolder(job.root, allowed_roots=allowed_roots))
        relative = os.fsdecode(image.raw_path) if image.raw_path else image.path
        changed = False
        try:
            if reviewed_at and image.id in reviewed_at and folder.allowed \
                    and not folder.object_url:
                unchanged_since_review(folder, relative, reviewed_at[image.id])
            photo, found = look(finder, folder.read(relative, max_bytes=max_bytes),
                                max_pixels=max_pixels)
            hands: list[Hand] | None = found
        except ChangedSinceReview:
            hands, changed = None, True
        except (ImageError, OSError):
            hands = None
        if changed:
            photos.leave_out(CHANGED)
        elif hands is None:
            photos.leave_out(UNREADABLE)
        elif isinstance(answer, list):
            stored = (image.hand or {}).get("hands") or []
            photos.leave_out(NOT_A_HAND, answer.count(None))
            matches = matched_hands(stored, hands, scale=photo.scale, max_hands=max_hands) \
                if len(stored) == len(answer) else [None] * len(answer)
            for place, (digit, hand) in enumerate(zip(answer, matches, strict=True)):
                if digit is not None and hand is None:
                    photos.leave_out(NOT_FOUND)
                elif digit is not None and hand is not None:
                    example(image, place, digit, hand)
        elif len(read := choose_hands(hands, max_hands).read) == 1:
            example(image, 0, answer, hands[read[0]])
        else:
            photos.leave_out(SEVERAL if read else NO_HAND)
        if progress:
            progress(done, total)
    if rows:
        photos.x = np.stack(rows).astype(np.float32)
    return photos


def left_out_text(left_out: dict[str, int]) -> str:
    """``left_out`` in words, each count with its unit: "2 photos with no hand, 1 hand
    not found again"; "" for nothing left out."""
    words = {UNREADABLE: ("photo", "unreadable now"), NO_HAND: ("photo", "with no hand"),
             CHANGED: ("photo", "changed since it was reviewed"),
             SEVERAL: ("photo", "with several hands, answered as a whole"),
             NOT_FOUND: ("hand", "not found again"), NOT_A_HAND: ("hand", "answered not a hand")}
    parts = []
    for why, count in left_out.items():
        unit, said = words.get(why, ("", why))
        parts.append(f"{count} {unit}{'s' * (count != 1)} {said}" if unit else f"{count} {said}")
    return ", ".join(parts)
